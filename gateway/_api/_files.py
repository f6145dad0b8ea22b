"""Files over HTTP: streamed FILE input uploads, execution file downloads and previews.

Routes: ``/api/v1/executions/{id}/file`` and ``.../file/preview``.

Uploads are parsed by Starlette's multipart parser (python-multipart), which spools each
file to a temporary file past 1 MiB, then streamed to the internal storage under the
new execution's id: a large upload never sits in memory. Downloads stream from storage.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.types import Message

from flows import (
    Flow,
    InputType,
    Storage,
    StorageError,
    execution_prefix,
    input_file_uri,
    safe_relative_path,
    storage_key,
)

from .._runtime import Runtime
from ._bodies import MAX_BODY_BYTES, refuse_nul
from ._deps import RuntimeDep
from ._errors import ApiError
from ._models import ErrorBody

router = APIRouter(prefix="/executions", tags=["executions"])

_CHUNK = 1024 * 1024
PREVIEW_BYTES = 1024 * 1024
"""How much of a file a preview reads at most."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
}


def _file_input_ids(flow: Flow) -> set[str]:
    return {
        spec.id
        for spec in flow.inputs
        if spec.type is InputType.FILE
        or (spec.type is InputType.ARRAY and spec.item_type is InputType.FILE)
    }


def _file_name(upload: UploadFile, fallback: str) -> str:
    raw = (upload.filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    try:
        return safe_relative_path(raw)
    except StorageError:
        return fallback


FORM_OVERHEAD_BYTES = 1024 * 1024
"""What a multipart body may carry beyond its files (fields, part headers)."""


def limited_request(request: Request, limit: int) -> Request:
    """The same request, whose body is refused with 413 once it passes `limit` bytes.

    A declared ``Content-Length`` over the limit is refused at once; a chunked body is
    counted as it arrives, so an upload without a length cannot fill the spool either.

    Raises:
        ApiError: 413 (from the check, or later while the body is read).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise ApiError(413, f"request body larger than {limit} bytes")
        return message

    return Request(request.scope, receive)


async def upload_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(_CHUNK):
        yield chunk


async def read_upload_inputs(
    request: Request, storage: Storage, flow: Flow, execution_id: str, limit: int
) -> dict[str, Any]:
    """Inputs of a multipart body; FILE inputs' files streamed to storage (their URIs).

    Raises:
        ApiError: 413 beyond `limit` bytes, 400 for a malformed body.
    """
    limited = limited_request(request, limit + FORM_OVERHEAD_BYTES)
    try:
        form = await limited.form(max_files=1000, max_fields=1000)
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart/form-data body: {exc.message}", "body") from None
    files = _file_input_ids(flow)
    out: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            item: Any = value
            if isinstance(value, str):
                refuse_nul(value, name)
            elif isinstance(value, UploadFile):
                if name in files:
                    uri = input_file_uri(
                        flow.namespace, flow.id, execution_id, name, _file_name(value, name)
                    )
                    await storage.put(uri, upload_chunks(value), limit=limit)
                    item = uri
                else:
                    item = await value.read(MAX_BODY_BYTES + 1)
                    if len(item) > MAX_BODY_BYTES:
                        raise ApiError(413, f"field '{name}' larger than {MAX_BODY_BYTES} bytes")
            if name in out:
                previous = out[name]
                out[name] = [*previous, item] if isinstance(previous, list) else [previous, item]
            else:
                out[name] = item
    finally:
        await form.close()
    return out


async def _execution_file(runtime: Runtime, execution_id: str, path: str) -> str:
    """The URI `path`, checked to be a file of this execution that exists."""
    execution = await runtime.control.execution(execution_id)
    prefix = execution_prefix(execution.namespace, execution.flow_id, execution.id)
    try:
        inside = storage_key(path).startswith(storage_key(prefix.rstrip("/")) + "/")
    except StorageError as exc:
        raise ApiError(400, str(exc), "path") from None
    if not inside:
        raise ApiError(403, f"{path} is not a file of execution {execution_id}", "path")
    await runtime.storage.size(path)  # 404 before any byte is sent
    return path


def _disposition(uri: str) -> str:
    name = PurePosixPath(storage_key(uri)).name
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "file"
    return f'attachment; filename="{safe}"'


@router.get(
    "/{execution_id}/file",
    responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def download_file(
    execution_id: str,
    runtime: RuntimeDep,
    path: Annotated[str, Query(description="a kestra:/// URI of this execution's files")],
) -> StreamingResponse:
    """Download one of the execution's files (inputs, task outputs), streamed."""
    uri = await _execution_file(runtime, execution_id, path)
    return StreamingResponse(
        runtime.storage.get(uri),
        media_type="application/octet-stream",
        headers={"Content-Disposition": _disposition(uri)},
    )


@router.get("/{execution_id}/file/metas", responses=_ERRORS)
async def file_metas(
    execution_id: str,
    runtime: RuntimeDep,
    path: Annotated[str, Query(description="a kestra:/// URI of this execution's files")],
) -> dict[str, int]:
    """A file's size in bytes (Kestra's ``file/metas``)."""
    uri = await _execution_file(runtime, execution_id, path)
    return {"size": await runtime.storage.size(uri)}


def _preview(name: str, data: bytes, truncated: bool, max_rows: int) -> dict[str, Any]:
    text = data.decode("utf-8", errors="replace")
    suffix = PurePosixPath(name).suffix.lower()
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the last line may be cut in the middle
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO("\n".join(lines[: max_rows + 1]))))
        return {"type": "LIST", "extension": "csv", "content": rows, "truncated": truncated}
    if suffix in (".jsonl", ".ndjson", ".ion"):
        items: list[Any] = []
        for line in lines[:max_rows]:
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError:
                items.append(line)
        return {"type": "LIST", "extension": suffix[1:], "content": items, "truncated": truncated}
    if suffix == ".json" and not truncated:
        try:
            return {"type": "JSON", "extension": "json", "content": json.loads(text)}
        except json.JSONDecodeError:
            pass
    return {"type": "TEXT", "extension": suffix[1:], "content": text, "truncated": truncated}


@router.get("/{execution_id}/file/preview", responses=_ERRORS)
async def preview_file(
    execution_id: str,
    runtime: RuntimeDep,
    path: Annotated[str, Query(description="a kestra:/// URI of this execution's files")],
    max_rows: Annotated[int, Query(alias="maxRows", ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """The beginning of a text, JSON, JSON-lines or CSV file, parsed for display."""
    uri = await _execution_file(runtime, execution_id, path)
    size = await runtime.storage.size(uri)
    head = bytearray()
    async for chunk in runtime.storage.get(uri):
        head.extend(chunk)
        if len(head) >= PREVIEW_BYTES:
            break
    truncated = size > PREVIEW_BYTES
    return {**_preview(uri, bytes(head[:PREVIEW_BYTES]), truncated, max_rows), "size": size}
