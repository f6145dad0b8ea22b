"""Internal storage: the interface tasks and expressions use, and Kestra-shaped file URIs.

Files an execution touches live in an internal storage (a local folder or an
S3-compatible bucket; the backends live in `actors`) and are addressed by URIs in
Kestra's shape::

    kestra:///<namespace as a/b/c>/<flow>/executions/<id>/tasks/<task>/<taskrun>/<file>
    kestra:///<namespace as a/b/c>/<flow>/executions/<id>/inputs/<input>/<file>
    kestra:///<namespace as a/b/c>/_files/<path>            (namespace files)

The store keeps these URIs, never file bodies. Every URI and relative path is checked by
`storage_key` / `safe_relative_path` before it reaches a backend: no ``..`` or ``.``
segment, no empty segment, no backslash or NUL, percent-encoding decoded first (so an
encoded slash or dot cannot sneak through), so a key never leaves the storage root.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import unquote

from ._errors import KestrelError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "KESTRA_SCHEME",
    "FileInfo",
    "FileReader",
    "FileTooLargeError",
    "Storage",
    "StorageError",
    "StorageFileNotFoundError",
    "execution_prefix",
    "input_file_uri",
    "is_storage_uri",
    "namespace_file_uri",
    "namespace_files_prefix",
    "safe_relative_path",
    "storage_key",
    "storage_uri",
    "task_file_uri",
]

KESTRA_SCHEME = "kestra://"
DEFAULT_MAX_FILE_BYTES = 1024**3 * 4
"""The largest file stored by default (4 GiB); servers set their own limit."""

_NAMESPACE_FILES = "_files"
_SEGMENT_FORBIDDEN = re.compile(r"[\x00-\x1f\\]")


class StorageError(KestrelError):
    """The internal storage refused or failed an operation.

    Attributes:
        uri: The file concerned, when there is one.
    """

    def __init__(self, message: str, *, uri: str = "") -> None:
        self.uri = uri
        super().__init__(message)


class StorageFileNotFoundError(StorageError):
    """No file at this URI."""


class FileTooLargeError(StorageError):
    """A file is bigger than the limit it was written under (HTTP 413).

    Attributes:
        limit: The limit, in bytes.
    """

    def __init__(self, limit: int, *, uri: str = "") -> None:
        self.limit = limit
        super().__init__(f"file larger than the {limit} bytes allowed", uri=uri)


@dataclass(frozen=True)
class FileInfo:
    """One stored file.

    Attributes:
        uri: Its ``kestra:///`` URI.
        size: Its size in bytes.
        modified: When it was last written (aware UTC), if known.
    """

    uri: str
    size: int
    modified: datetime | None = None


@runtime_checkable
class Storage(Protocol):
    """The internal storage, as tasks, expressions and the API see it.

    Every method takes ``kestra:///`` URIs (checked with `storage_key`). Reads and writes
    stream: no method but `read_bytes` holds a whole file in memory.
    """

    async def put(
        self,
        uri: str,
        data: bytes | AsyncIterable[bytes],
        *,
        limit: int | None = None,
    ) -> int:
        """Write a file (replacing any), streaming `data`; returns its size.

        Raises:
            FileTooLargeError: More than `limit` bytes came; nothing is kept.
            StorageError: The backend failed.
        """

    def get(self, uri: str) -> AsyncIterator[bytes]:
        """The file's bytes, chunk by chunk.

        Raises:
            StorageFileNotFoundError: No such file (when iteration starts).
        """

    async def read_bytes(self, uri: str, *, limit: int | None = None) -> bytes:
        """The whole file (for small files: `read()`, previews).

        Raises:
            StorageFileNotFoundError: No such file.
            FileTooLargeError: The file is bigger than `limit`.
        """

    async def size(self, uri: str) -> int:
        """The file's size in bytes.

        Raises:
            StorageFileNotFoundError: No such file.
        """

    async def exists(self, uri: str) -> bool:
        """Whether a file is stored at `uri`."""

    async def delete(self, uri: str) -> bool:
        """Delete one file; True when it existed."""

    async def list(self, prefix: str) -> list[FileInfo]:
        """Every file under a URI prefix (a folder), sorted by URI."""

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every file under a URI prefix; returns how many."""


class FileReader(Protocol):
    """Blocking reads of small stored files, for expressions (``read()``, ``fileSize()``)."""

    def read(self, uri: str, limit: int) -> bytes:
        """The whole file.

        Raises:
            StorageFileNotFoundError: No such file.
            FileTooLargeError: Bigger than `limit` bytes.
        """

    def size(self, uri: str) -> int | None:
        """The file's size; None when there is no such file."""


def _segments(path: str, what: str) -> list[str]:
    decoded = unquote(path)
    parts = decoded.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise StorageError(f"{what} {path!r} has an empty, '.' or '..' segment")
        if _SEGMENT_FORBIDDEN.search(part):
            raise StorageError(f"{what} {path!r} has a control character or a backslash")
    return parts


def safe_relative_path(path: str) -> str:
    """A relative file path (``a/b.csv``) checked to stay below its folder.

    Raises:
        StorageError: Absolute, empty, or with ``.``/``..``/empty segments (also when
            percent-encoded), a backslash or a control character.
    """
    if not path or path.startswith("/"):
        raise StorageError(f"path {path!r} must be relative and not empty")
    return "/".join(_segments(path, "path"))


def is_storage_uri(value: object) -> bool:
    """Whether a value is a ``kestra://`` URI."""
    return isinstance(value, str) and value.startswith(KESTRA_SCHEME)


def storage_key(uri: str) -> str:
    """The backend key of a ``kestra:///`` URI (its path, without the leading slash).

    Raises:
        StorageError: Not a ``kestra:///`` URI, or a path that could leave the root.
    """
    if not uri.startswith(KESTRA_SCHEME + "/"):
        raise StorageError(f"not an internal storage URI (kestra:///...): {uri[:200]!r}", uri=uri)
    rest = uri[len(KESTRA_SCHEME) + 1 :]
    if "?" in rest or "#" in rest:
        raise StorageError(f"a storage URI has no query or fragment: {uri[:200]!r}", uri=uri)
    return "/".join(_segments(rest, "storage URI"))


def storage_uri(key: str) -> str:
    """The ``kestra:///`` URI of a backend key."""
    return f"{KESTRA_SCHEME}/{key}"


def _ns(namespace: str) -> str:
    return "/".join(_segments(namespace.replace(".", "/"), "namespace"))


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    """``kestra:///ns/flow/executions/<id>/``: the folder of an execution's files."""
    flow = safe_relative_path(flow_id)
    run = safe_relative_path(execution_id)
    return f"{KESTRA_SCHEME}/{_ns(namespace)}/{flow}/executions/{run}/"


def task_file_uri(
    namespace: str, flow_id: str, execution_id: str, task_id: str, task_run_id: str, name: str
) -> str:
    """The URI of a file a task run produced."""
    base = execution_prefix(namespace, flow_id, execution_id)
    task = safe_relative_path(task_id)
    run = safe_relative_path(task_run_id)
    return f"{base}tasks/{task}/{run}/{safe_relative_path(name)}"


def input_file_uri(
    namespace: str, flow_id: str, execution_id: str, input_id: str, name: str
) -> str:
    """The URI of a FILE input's upload."""
    base = execution_prefix(namespace, flow_id, execution_id)
    return f"{base}inputs/{safe_relative_path(input_id)}/{safe_relative_path(name)}"


def namespace_files_prefix(namespace: str) -> str:
    """``kestra:///ns/_files/``: the folder of a namespace's files."""
    return f"{KESTRA_SCHEME}/{_ns(namespace)}/{_NAMESPACE_FILES}/"


def namespace_file_uri(namespace: str, path: str) -> str:
    """The URI of a namespace file (`path` relative to the namespace's files)."""
    return namespace_files_prefix(namespace) + safe_relative_path(path.lstrip("/"))
