"""Files in and out of a script task's working directory.

Kestra's ``inputFiles``, ``outputFiles`` and ``namespaceFiles``: a script task with
files gets a fresh working directory on its worker:

- ``inputFiles``: name → content, or name → ``kestra:///`` URI (streamed from storage);
- ``namespaceFiles: {enabled: true}``: the namespace's files (``include``/``exclude``
  globs) are copied in, keeping their relative paths;
- ``outputFiles``: globs, relative to the directory; every matching regular file is
  streamed to storage after the script and exposed as
  ``outputs.<task>.outputFiles['relative/name']`` (its URI).

Names are checked with `safe_relative_path` and every path is resolved inside the
directory: a name with ``..`` or an absolute path, or a symlink leading out, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import Field

from ._errors import TaskError
from ._model import KestrelModel
from ._run_context import RunContext
from ._storage import (
    StorageError,
    is_storage_uri,
    namespace_files_prefix,
    safe_relative_path,
    task_file_uri,
)

_CHUNK = 1024 * 1024
_CWD_LOCK = threading.Lock()
_CWD_POLL_S = 0.005


class NamespaceFiles(KestrelModel):
    """Which namespace files a script task gets in its working directory."""

    enabled: bool = False
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)

    def wants(self, path: str) -> bool:
        """Whether a namespace file (relative path) is copied in."""
        if self.include and not any(fnmatch.fnmatch(path, g) for g in self.include):
            return False
        return not any(fnmatch.fnmatch(path, g) for g in self.exclude)


class TaskFiles(KestrelModel):
    """The file properties a script task accepts (mixed into `scripts.*` tasks)."""

    input_files: dict[str, str] = Field(default_factory=dict)
    output_files: list[str] = Field(default_factory=list)
    namespace_files: NamespaceFiles | None = None

    def uses_files(self) -> bool:
        """Whether the task needs a working directory with files."""
        enabled = self.namespace_files is not None and self.namespace_files.enabled
        return bool(self.input_files or self.output_files or enabled)


def _inside(workdir: Path, name: str) -> Path:
    try:
        relative = safe_relative_path(name)
    except StorageError as exc:
        raise TaskError(f"file name {name!r}: {exc}", retriable=False) from None
    path = workdir / relative
    real = Path(os.path.realpath(path))
    if workdir not in real.parents:
        raise TaskError(f"file {name!r} leads outside the working directory", retriable=False)
    return path


async def _download(ctx: RunContext, uri: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        async for chunk in ctx.storage.get(uri):
            await asyncio.to_thread(out.write, chunk)


async def _file_chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, _CHUNK):
        yield chunk


async def write_input_files(ctx: RunContext, workdir: Path, files: TaskFiles) -> None:
    """Write ``inputFiles`` and the wanted namespace files into `workdir`.

    Raises:
        TaskError: A bad name (not retriable) or a storage failure (retriable).
    """
    try:
        spec = files.namespace_files
        if spec is not None and spec.enabled:
            prefix = namespace_files_prefix(ctx.namespace)
            for info in await ctx.storage.list(prefix):
                relative = info.uri[len(prefix) :]
                if spec.wants(relative):
                    await _download(ctx, info.uri, _inside(workdir, relative))
        for name, value in files.input_files.items():
            target = _inside(workdir, name)
            if is_storage_uri(value):
                await _download(ctx, value, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(value)
    except StorageError as exc:
        raise TaskError(f"input files: {exc}") from exc


def _matches(workdir: Path, patterns: list[str]) -> list[str]:
    found: set[str] = set()
    for pattern in patterns:
        for path in workdir.glob(pattern):
            if path.is_symlink() or not path.is_file():
                continue
            real = Path(os.path.realpath(path))
            if workdir in real.parents:
                found.add(path.relative_to(workdir).as_posix())
    return sorted(found)


async def store_output_files(ctx: RunContext, workdir: Path, patterns: list[str]) -> dict[str, str]:
    """Stream every file matching ``outputFiles`` to storage; ``{name: uri}``.

    Raises:
        TaskError: A storage failure (retriable).
    """
    out: dict[str, str] = {}
    for name in _matches(workdir, patterns):
        uri = task_file_uri(
            ctx.namespace, ctx.flow_id, ctx.execution_id, ctx.task_id, ctx.task_run_id, name
        )
        try:
            with (workdir / name).open("rb") as handle:
                await ctx.storage.put(uri, _file_chunks(handle))
        except StorageError as exc:
            raise TaskError(f"output file {name!r}: {exc}") from exc
        out[name] = uri
    return out


@contextlib.contextmanager
def working_directory() -> Iterator[Path]:
    """A fresh, resolved temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kestrel-task-") as name:
        yield Path(name).resolve()


@contextlib.asynccontextmanager
async def current_directory(workdir: Path) -> AsyncIterator[None]:
    """Make `workdir` the process's current directory while an in-process script runs.

    The current directory belongs to the whole process: in-process scripts with files
    take turns in one worker process (the lock is polled, so a cancelled waiter never
    holds it).
    """
    # A threading lock: the directory is the process's, whatever loop the script is on.
    while not _CWD_LOCK.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(_CWD_POLL_S)
    previous = os.getcwd()
    try:
        os.chdir(workdir)
        yield
    finally:
        os.chdir(previous)
        _CWD_LOCK.release()


async def run_with_files(
    ctx: RunContext,
    files: TaskFiles,
    body: Callable[[Path], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Prepare a working directory, run ``await body(workdir)``, collect output files.

    Returns:
        The body's outputs, plus ``outputFiles`` when the task declares any.
    """
    with working_directory() as workdir:
        await write_input_files(ctx, workdir, files)
        outputs: dict[str, Any] = await body(workdir)
        if files.output_files:
            outputs["outputFiles"] = await store_output_files(ctx, workdir, files.output_files)
        return outputs
