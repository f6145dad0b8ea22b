"""Message bodies and headers: NATS bytes to trigger variables, task values to bytes."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from flows import SerdeError

from ._types import NatsSerde

SENT_AT_HEADER = "Kestrel-Sent-At"
"""Header with the producer's ISO-8601 send time (set by our benchmarks)."""


def _no_constant(name: str) -> Any:
    raise SerdeError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
"""One decoder for every body: ``json.loads`` with an option builds a new one per call."""


def deserialize(serde: NatsSerde, raw: bytes) -> Any:
    """The ``trigger.data`` of a body read as `serde`.

    STRING gives the UTF-8 text, JSON the parsed value (an empty body gives None),
    BYTES the base64 text of the raw bytes.

    Raises:
        SerdeError: The body cannot be read that way (bad UTF-8, bad JSON); the message
            says why.
    """
    if serde is NatsSerde.BYTES:
        return base64.b64encode(raw).decode("ascii")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerdeError(f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if serde is NatsSerde.STRING:
        return text
    if not text.strip():
        return None
    try:
        return _DECODER.decode(text)
    except ValueError as exc:  # json's errors, and SerdeError for NaN/Infinity
        raise SerdeError(f"the body is not JSON: {exc}") from exc


def sent_at(headers: Mapping[str, str]) -> dt.datetime | None:
    """The ``Kestrel-Sent-At`` header as an aware datetime (naive = UTC), if valid."""
    value = headers.get(SENT_AT_HEADER)
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def encode_body(value: Any) -> bytes:
    """The bytes sent for a message body.

    Text is sent as UTF-8, bytes as they are, None as an empty body, anything else
    (mappings, lists, numbers, booleans) as JSON.
    """
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def encode_headers(headers: Mapping[str, str | list[str]]) -> dict[str, str]:
    """NATS headers to send: a list value becomes its items joined by ``", "``.

    nats-py sends each header name once, so several values travel as one, the way
    HTTP combines a repeated field (RFC 9110 §5.3); the trigger reads them back the same.
    """
    return {
        name: ", ".join(value) if isinstance(value, list) else value
        for name, value in headers.items()
    }
