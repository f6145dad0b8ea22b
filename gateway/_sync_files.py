"""Namespace files from the flows folder: ``<flows>/<namespace>/_files/**`` → storage.

A folder named ``_files`` whose parent folder is named like a namespace holds that
namespace's files, with their relative paths. New and changed files are uploaded, files
removed from the folder are deleted from storage (only those this sync put there).
Symlinks, and anything whose real path leaves the flows folder, are skipped with a log
line: the folder cannot be used to publish files from elsewhere on the server.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from flows import KestrelError, namespace_file_uri

from ._runtime import Runtime

_log = logging.getLogger("kestrel.sync")

FILES_FOLDER = "_files"
_NAMESPACE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_CHUNK = 1024 * 1024


def is_namespace_file(folder: Path, path: Path) -> bool:
    """Whether a path below the flows folder lies in a ``_files`` folder."""
    return FILES_FOLDER in path.relative_to(folder).parts


def _found(folder: Path) -> dict[Path, tuple[str, str, tuple[int, int]]]:
    """``{path: (namespace, relative path, (mtime_ns, size))}`` of every namespace file."""
    out: dict[Path, tuple[str, str, tuple[int, int]]] = {}
    root = folder.resolve()
    for files_dir in folder.rglob(FILES_FOLDER):
        namespace = files_dir.parent.name
        if not files_dir.is_dir() or files_dir.is_symlink() or not _NAMESPACE.match(namespace):
            continue
        for path in files_dir.rglob("*"):
            if path.is_symlink():
                _log.warning("%s is a symlink: not published as a namespace file", path)
                continue
            real = Path(os.path.realpath(path))
            if root not in real.parents or not path.is_file():
                continue
            stat = path.stat()
            relative = path.relative_to(files_dir).as_posix()
            out[path] = (namespace, relative, (stat.st_mtime_ns, stat.st_size))
    return out


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(handle.read, _CHUNK):
        yield chunk


class NamespaceFilesSync:
    """Keeps storage in step with the ``_files`` folders of a flows folder.

    Args:
        runtime: Whose storage receives the files.
        folder: The flows folder.
    """

    def __init__(self, runtime: Runtime, folder: Path) -> None:
        self._runtime = runtime
        self._folder = folder
        self._known: dict[Path, tuple[str, str, tuple[int, int]]] = {}

    async def scan(self) -> int:
        """Upload new and changed files, delete removed ones; how many changed."""
        if not self._folder.is_dir():
            return 0
        found = await asyncio.to_thread(_found, self._folder)
        changes = 0
        for path, entry in found.items():
            if self._known.get(path) == entry:
                continue
            namespace, relative, _ = entry
            try:
                uri = namespace_file_uri(namespace, relative)
                handle = await asyncio.to_thread(path.open, "rb")
                try:
                    await self._runtime.storage.put(uri, _chunks(handle))
                finally:
                    handle.close()
            except (KestrelError, OSError) as exc:
                _log.error("%s: not published as a namespace file: %s", path, exc)
                continue
            self._known[path] = entry
            changes += 1
            _log.info("%s: namespace file %s of %s", path, relative, namespace)
        for path in set(self._known) - set(found):
            namespace, relative, _ = self._known.pop(path)
            try:
                await self._runtime.storage.delete(namespace_file_uri(namespace, relative))
            except KestrelError as exc:
                _log.error("namespace file %s of %s not deleted: %s", relative, namespace, exc)
            changes += 1
        return changes
