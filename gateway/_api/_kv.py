"""``/api/v1/namespaces/{namespace}/kv``: typed key-value pairs with optional expiry."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from actors import (
    KVType,
    encode_value,
)
from flows import NotFoundError, StoreError, parse_duration

from ._bodies import decode_text, is_json, media_type, parse_json, read_body
from ._deps import RuntimeDep
from ._errors import ApiError
from ._models import ErrorBody, KVBody, KVKey, KVValue, kv_body, kv_json_value, kv_key

router = APIRouter(prefix="/namespaces/{namespace}/kv", tags=["kv"])

MAX_KV_BYTES = 1024 * 1024
"""The largest KV value accepted."""

KEY_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 404: {"model": ErrorBody}}
_VALUE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The value: JSON (its type inferred, or given with ?type=), or text.",
        "content": {
            "application/json": {"schema": {}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


def _check_names(namespace: str, key: str | None = None) -> None:
    if not NAMESPACE_PATTERN.match(namespace):
        raise ApiError(400, f"invalid namespace {namespace!r}", "namespace")
    if key is not None and (not KEY_PATTERN.match(key) or len(key) > 255):
        raise ApiError(
            400, f"invalid key {key!r}: letters, digits, '.', '_' and '-' (max 255)", "key"
        )


@router.get("", responses=_ERRORS)
async def list_keys(namespace: str, runtime: RuntimeDep) -> list[KVKey]:
    """The live keys of a namespace (without their values)."""
    _check_names(namespace)
    return [kv_key(e) for e in await runtime.store.kv_list(namespace)]


@router.get("/{key}", responses=_ERRORS)
async def get_value(namespace: str, key: str, runtime: RuntimeDep) -> KVValue:
    """``{"type", "value"}``; 404 when absent or expired."""
    _check_names(namespace, key)
    entry = await runtime.store.kv_get(namespace, key)
    if entry is None:
        raise NotFoundError(f"no key {key!r} in namespace {namespace}")
    return KVValue(type=str(entry.type), value=kv_json_value(entry.value))


@router.put("/{key}", openapi_extra=_VALUE_BODY, responses=_ERRORS)
async def put_value(
    namespace: str,
    key: str,
    request: Request,
    runtime: RuntimeDep,
    ttl: Annotated[str | None, Query(description="ISO-8601 duration, e.g. PT1H")] = None,
    type: Annotated[KVType | None, Query(description="store as this type")] = None,
) -> KVBody:
    """Set a value. JSON bodies are parsed (invalid JSON is 400); anything else is text."""
    _check_names(namespace, key)
    expires = None
    if ttl is not None:
        try:
            expires = parse_duration(ttl)
        except ValueError as exc:
            raise ApiError(400, str(exc), "ttl") from None
    raw = await read_body(request, MAX_KV_BYTES)
    value: Any = parse_json(raw, "value") if is_json(media_type(request)) else decode_text(raw)
    try:
        encode_value(value, type)
    except StoreError as exc:
        raise ApiError(400, str(exc), "value") from None
    entry = await runtime.store.kv_set(namespace, key, value, ttl=expires, type=type)
    return kv_body(entry)


@router.delete("/{key}", status_code=204, responses=_ERRORS)
async def delete_value(namespace: str, key: str, runtime: RuntimeDep) -> Response:
    """Delete a key; 404 when there was no live value."""
    _check_names(namespace, key)
    if not await runtime.store.kv_delete(namespace, key):
        raise NotFoundError(f"no key {key!r} in namespace {namespace}")
    return Response(status_code=204)
