"""Expression functions over the internal storage: ``read``, ``fileSize``, ``fileExists``.

As in Kestra, each takes a ``kestra:///`` URI or a namespace file path (relative to the
flow's namespace files). A template may only reach files of its own flow's namespace
(its executions' files and its namespace files), and ``read`` only small files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context

from ._errors import ExpressionError
from ._storage import (
    KESTRA_SCHEME,
    FileReader,
    FileTooLargeError,
    StorageError,
    StorageFileNotFoundError,
    is_storage_uri,
    namespace_file_uri,
    storage_key,
)

FILE_FUNCTION_NAMES = ("read", "fileSize", "fileExists", "isFileEmpty")
"""The names `file_functions` defines (known to the load-time template checks)."""

READ_LIMIT = 16 * 1024 * 1024
"""The largest file ``read()`` returns (bigger files belong in a task)."""


def _namespace(context: Context) -> str:
    flow = context.get("flow")
    if isinstance(flow, Mapping) and isinstance(flow.get("namespace"), str):
        return str(flow["namespace"])
    raise ExpressionError("file functions need a flow namespace in the context")


def _uri(context: Context, path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise ExpressionError("expected a kestra:/// URI or a namespace file path")
    namespace = _namespace(context)
    try:
        if not is_storage_uri(path):
            return namespace_file_uri(namespace, path)
        own = storage_key(f"{KESTRA_SCHEME}/{namespace.replace('.', '/')}") + "/"
        if not storage_key(path).startswith(own):
            raise ExpressionError(f"{path!r} is not a file of namespace '{namespace}'")
        return path
    except StorageError as exc:
        raise ExpressionError(str(exc)) from None


class _FileFunctions:
    def __init__(self, reader: FileReader | None) -> None:
        self._reader_or_none = reader

    def _reader(self) -> FileReader:
        if self._reader_or_none is None:
            raise ExpressionError("no internal storage: file functions are not available")
        return self._reader_or_none

    def read(self, context: Context, path: Any) -> str:
        uri = _uri(context, path)
        try:
            return self._reader().read(uri, READ_LIMIT).decode("utf-8", errors="replace")
        except StorageFileNotFoundError:
            raise ExpressionError(f"read(): no file at {uri}") from None
        except FileTooLargeError:
            raise ExpressionError(f"read(): {uri} is larger than {READ_LIMIT} bytes") from None
        except StorageError as exc:
            raise ExpressionError(f"read(): {exc}") from None

    def size(self, context: Context, path: Any) -> int | None:
        uri = _uri(context, path)
        try:
            return self._reader().size(uri)
        except StorageError as exc:
            raise ExpressionError(str(exc)) from None

    def file_size(self, context: Context, path: Any) -> int:
        size = self.size(context, path)
        if size is None:
            raise ExpressionError(f"fileSize(): no file at {path}")
        return size

    def file_exists(self, context: Context, path: Any) -> bool:
        return self.size(context, path) is not None

    def is_file_empty(self, context: Context, path: Any) -> bool:
        size = self.size(context, path)
        if size is None:
            raise ExpressionError(f"isFileEmpty(): no file at {path}")
        return size == 0


def file_functions(reader: FileReader | None) -> dict[str, Callable[..., Any]]:
    """The file functions for an engine's globals (they fail clearly without a reader)."""
    functions = _FileFunctions(reader)

    def bind(method: Callable[[Context, Any], Any]) -> Callable[..., Any]:
        return pass_context(lambda context, path: method(context, path))

    return {
        "read": bind(functions.read),
        "fileSize": bind(functions.file_size),
        "fileExists": bind(functions.file_exists),
        "isFileEmpty": bind(functions.is_file_empty),
    }
