"""Flows-folder sync: files in a folder are the flows; edits go live within a second."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from flows import FlowError, KestrelError, Service, iter_flow_files

from ._runtime import Runtime
from ._sync_files import NamespaceFilesSync, is_namespace_file

_log = logging.getLogger("kestrel.sync")


@dataclass(frozen=True)
class _Known:
    digest: str
    namespace: str | None
    flow_id: str | None


class FlowFolderSync(Service):
    """Watch a folder of flow files and keep the deployed flows in step with it.

    A new or changed file becomes a new revision (its triggers are redeployed), a deleted
    file deletes (disables) its flow, and an invalid file is logged with
    ``file:line:col`` while the previous revision keeps running. Files in a
    ``<namespace>/_files/`` folder are that namespace's files (`NamespaceFilesSync`).

    Args:
        runtime: Where flows are deployed.
        folder: The folder (searched recursively for ``*.yaml``/``*.yml``).
        interval_s: How often to look.
    """

    def __init__(self, runtime: Runtime, folder: Path, interval_s: float = 0.25) -> None:
        super().__init__()
        self._runtime = runtime
        self._folder = folder
        self._interval = interval_s
        self._known: dict[Path, _Known] = {}
        self._task: asyncio.Task[None] | None = None
        self._files = NamespaceFilesSync(runtime, folder)

    async def _start(self) -> None:
        await self.scan()
        self._task = asyncio.create_task(self._loop(), name="flows-folder-sync")

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.scan()
            except Exception:
                _log.exception("flows folder scan failed")

    async def scan(self) -> int:
        """Apply what changed in the folder since the last scan; how many files changed."""
        files = await asyncio.to_thread(self._read_all)
        changes = 0
        for path, text in files.items():
            digest = hashlib.sha256(text.encode()).hexdigest()
            known = self._known.get(path)
            if known is not None and known.digest == digest:
                continue
            changes += 1
            self._known[path] = await self._apply(path, text, digest, known)
        for path in set(self._known) - set(files):
            changes += 1
            gone = self._known.pop(path)
            if gone.namespace and gone.flow_id:
                self._runtime.folder_files.pop((gone.namespace, gone.flow_id), None)
                with contextlib.suppress(KestrelError):
                    await self._runtime.catalog.delete(
                        gone.namespace, gone.flow_id, from_folder=True
                    )
                _log.info("%s was removed: flow %s.%s disabled", path, gone.namespace, gone.flow_id)
        return changes + await self._files.scan()

    async def _apply(self, path: Path, text: str, digest: str, known: _Known | None) -> _Known:
        try:
            flow, changed = await self._runtime.catalog.deploy(text, str(path), from_folder=True)
        except FlowError as exc:
            for problem in exc.problems:
                _log.error("%s", problem)
            kept = (
                "the previous revision keeps running" if known and known.flow_id else "not loaded"
            )
            _log.error("%s is invalid: %s", path, kept)
            return _Known(
                digest, known.namespace if known else None, known.flow_id if known else None
            )
        if changed:
            _log.info("%s: flow %s now at revision %s", path, flow.uid, flow.revision)
        if known is not None and (known.namespace, known.flow_id) != (flow.namespace, flow.id):
            self._runtime.folder_files.pop((known.namespace or "", known.flow_id or ""), None)
        return _Known(digest, flow.namespace, flow.id)

    def _read_all(self) -> dict[Path, str]:
        out: dict[Path, str] = {}
        if not self._folder.is_dir():
            return out
        for path in iter_flow_files([self._folder]):
            if is_namespace_file(self._folder, path):
                continue  # a namespace file, not a flow
            with contextlib.suppress(OSError, UnicodeDecodeError):
                out[path] = path.read_text(encoding="utf-8")
        return out
