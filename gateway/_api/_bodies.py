"""Reading request bodies: size-capped, YAML text, JSON, forms and multipart uploads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from ._errors import ApiError
from ._nul import NUL_REFUSED, has_nul

MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body accepted (flows, inputs with uploads, KV values, webhooks)."""


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, refused with 413 beyond `limit` bytes (checked while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    """The request's media type, lower case, without parameters."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def is_json(kind: str) -> bool:
    """Whether a media type is JSON (``application/json`` or ``*/*+json``)."""
    return kind == "application/json" or kind.endswith("+json")


def refuse_nul(value: Any, field: str) -> None:
    """400 naming `field` when `value` holds a NUL character (see `NUL_REFUSED`)."""
    if has_nul(value):
        raise ApiError(400, NUL_REFUSED, field)


def decode_text(raw: bytes, field: str = "body") -> str:
    """UTF-8 text without NUL characters, or 400."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not valid UTF-8 text", field) from None
    refuse_nul(text, field)
    return text


async def read_yaml(request: Request) -> str:
    """A flow's YAML source from the body (any text content type; JSON is YAML too)."""
    text = decode_text(await read_body(request))
    if not text.strip():
        raise ApiError(400, "the body is empty: send the flow's YAML", "body")
    return text


def parse_json(raw: bytes, field: str = "body") -> Any:
    """JSON without NUL characters, or 400 naming `field`."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON: {exc}", field) from None
    if b"\\u0000" in raw:  # JSON can only carry a NUL escaped; walk only when it might
        refuse_nul(value, field)
    return value


def _collect(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Form pairs to a dict; a repeated name becomes a list of its values."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            existing = out[name]
            out[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            out[name] = value
    return out


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """Fields (text) and files (bytes) of a ``multipart/form-data`` body.

    Raises:
        ApiError: 400 when the body is not well-formed multipart.
    """
    if "boundary=" not in content_type.lower():
        raise ApiError(400, "multipart/form-data without a boundary", "body")
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=policy.HTTP).parsebytes(head + raw)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise ApiError(400, "malformed multipart/form-data body", "body")
    pairs: list[tuple[str, Any]] = []
    for part in message.iter_parts():
        if not isinstance(part, EmailMessage):
            continue
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "a multipart part has no name", "body")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            pairs.append((name, data))
        else:
            charset = part.get_content_charset() or "utf-8"
            try:
                text = data.decode(charset)
            except (UnicodeDecodeError, LookupError):
                raise ApiError(400, f"field '{name}' is not valid {charset} text", name) from None
            refuse_nul(text, name)
            pairs.append((name, text))
    return _collect(pairs)


async def read_inputs(request: Request) -> dict[str, Any]:
    """Execution inputs from a JSON object, a form, or a multipart body (files as bytes).

    Raises:
        ApiError: 400 for a malformed body, 415 for another content type.
    """
    raw = await read_body(request)
    kind = media_type(request)
    if not raw.strip():
        return {}
    if is_json(kind) or not kind:
        value = parse_json(raw, "inputs")
        if not isinstance(value, dict):
            raise ApiError(400, "inputs must be a JSON object", "inputs")
        return value
    if kind == "multipart/form-data":
        return parse_multipart(raw, request.headers["content-type"])
    if kind == "application/x-www-form-urlencoded":
        text = decode_text(raw, "inputs")
        pairs = parse_qsl(text, keep_blank_values=True)
        refuse_nul(pairs, "inputs")
        return _collect(pairs)
    raise ApiError(
        415,
        f"unsupported content type {kind!r}: send application/json, "
        "multipart/form-data or application/x-www-form-urlencoded",
        "content-type",
    )


def parse_labels(values: Iterable[str], field: str = "labels") -> dict[str, str]:
    """``["key:value", ...]`` to a dict.

    Raises:
        ApiError: 400 for an entry without ``:`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ApiError(400, f"label {item!r} is not key:value", field)
        out[key.strip()] = value.strip()
    return out
