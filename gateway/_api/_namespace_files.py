"""``/api/v1/namespaces/{namespace}/files``: namespace files, at Kestra's paths.

Files live in the internal storage under ``kestra:///<ns>/_files/<path>``. ``path`` is
relative to the namespace's files (a leading ``/`` is allowed, as Kestra writes it);
``..``, encoded slashes and the like are refused with 400.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from flows import namespace_file_uri, namespace_files_prefix, safe_relative_path

from .._runtime import Runtime
from ._bodies import media_type
from ._deps import RuntimeDep, SettingsDep
from ._errors import ApiError
from ._files import FORM_OVERHEAD_BYTES, limited_request, upload_chunks
from ._models import ErrorBody

router = APIRouter(prefix="/namespaces", tags=["namespace files"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    404: {"model": ErrorBody},
    413: {"model": ErrorBody},
}
PathQuery = Annotated[str, Query(description="path below the namespace's files, e.g. /a/b.csv")]


class FileEntry(BaseModel):
    """One entry of a namespace files folder."""

    file_name: str = Field(serialization_alias="fileName")
    type: str = Field(description="File or Directory")
    size: int = 0
    uri: str | None = None


def _relative(path: str) -> str:
    return safe_relative_path(path.strip().lstrip("/"))


async def _chunks_of(request: Request) -> Any:
    async for chunk in request.stream():
        yield chunk


@router.post("/{namespace}/files", responses=_ERRORS, status_code=201)
async def upload_namespace_file(
    namespace: str,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    path: PathQuery,
) -> FileEntry:
    """Upload a file: multipart with a ``fileContent`` part (Kestra's), or the raw body."""
    uri = namespace_file_uri(namespace, _relative(path))
    limit = settings.max_file_bytes
    if media_type(request) == "multipart/form-data":
        limited = limited_request(request, limit + FORM_OVERHEAD_BYTES)
        try:
            form = await limited.form(max_files=1, max_fields=10)
        except MultiPartException as exc:
            raise ApiError(400, f"malformed multipart body: {exc.message}", "body") from None
        try:
            part = form.get("fileContent")
            if not isinstance(part, UploadFile):
                raise ApiError(400, "the multipart body needs a 'fileContent' file", "fileContent")
            size = await runtime.storage.put(uri, upload_chunks(part), limit=limit)
        finally:
            await form.close()
    else:
        size = await runtime.storage.put(
            uri, _chunks_of(limited_request(request, limit)), limit=limit
        )
    return FileEntry(file_name=PurePosixPath(uri).name, type="File", size=size, uri=uri)


@router.get(
    "/{namespace}/files",
    responses={**_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
)
async def download_namespace_file(
    namespace: str, runtime: RuntimeDep, path: PathQuery
) -> StreamingResponse:
    """A namespace file's content, streamed."""
    uri = namespace_file_uri(namespace, _relative(path))
    await runtime.storage.size(uri)  # 404 before streaming
    return StreamingResponse(runtime.storage.get(uri), media_type="application/octet-stream")


async def _listing(runtime: Runtime, namespace: str, path: str) -> list[FileEntry]:
    base = namespace_files_prefix(namespace)
    folder = base + (_relative(path) + "/" if path.strip().strip("/") else "")
    entries: dict[str, FileEntry] = {}
    for info in await runtime.storage.list(folder):
        rest = info.uri[len(folder) :]
        head, sep, _ = rest.partition("/")
        if sep:
            entries.setdefault(head, FileEntry(file_name=head, type="Directory"))
        else:
            entries[head] = FileEntry(file_name=head, type="File", size=info.size, uri=info.uri)
    return [entries[k] for k in sorted(entries)]


@router.get("/{namespace}/files/directory", responses=_ERRORS)
async def list_namespace_files(
    namespace: str, runtime: RuntimeDep, path: Annotated[str, Query()] = "/"
) -> list[FileEntry]:
    """The files and folders directly inside a folder of the namespace's files."""
    return await _listing(runtime, namespace, path)


@router.delete("/{namespace}/files", responses=_ERRORS, status_code=204)
async def delete_namespace_file(namespace: str, runtime: RuntimeDep, path: PathQuery) -> None:
    """Delete a file, or a folder with everything in it; 404 when there is neither."""
    uri = namespace_file_uri(namespace, _relative(path))
    if await runtime.storage.delete(uri):
        return
    if await runtime.storage.delete_prefix(uri + "/") == 0:
        raise ApiError(404, f"no file or folder {path!r} in namespace {namespace}", "path")
