"""The `RunContext` a runnable task gets inside a Ray worker.

Log lines are collected in memory and travel back with the task's outcome (the
execution actor masks and records them). KV goes straight to Postgres through a `Store`
cached per worker process and event loop, so its pool survives from task to task.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

from flows import Storage, StoreError, TaskError

from ._storage import StorageConfig, open_storage
from ._store._kv import encode_value
from ._store._records import KVType, utcnow
from ._store._store import Store

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_LEVEL_ALIASES = {"WARNING": "WARN", "CRITICAL": "ERROR", "FATAL": "ERROR", "ERR": "ERROR"}
DEFAULT_MAX_LOG_LINES = 10_000

# A worker process holds few connections: there may be one such process per core.
_STORE_MIN_CONNECTIONS = 1
_STORE_MAX_CONNECTIONS = 4


class LogEntry(NamedTuple):
    """One log line of an attempt."""

    at: dt.datetime
    level: str
    message: str


class WorkerRunContext:
    """The running attempt of a task, inside a worker.

    Args:
        execution_id: The execution's id.
        task_run_id: The task run's id.
        task_id: The task's id in the flow.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        namespace: The flow's namespace (the default KV namespace).
        flow_id: The flow's id.
        variables: The expression context the task was rendered with.
        dsn: The store's DSN, for KV; without one, KV operations fail.
        max_log_lines: Lines kept; later ones are counted and reported in one last line.
        storage: The internal storage (the default local folder when None).
    """

    def __init__(
        self,
        *,
        execution_id: str,
        task_run_id: str,
        task_id: str,
        attempt: int,
        namespace: str,
        flow_id: str,
        variables: Mapping[str, Any],
        dsn: str | None = None,
        max_log_lines: int = DEFAULT_MAX_LOG_LINES,
        storage: StorageConfig | None = None,
    ) -> None:
        self._storage_config = storage
        self._execution_id = execution_id
        self._task_run_id = task_run_id
        self._task_id = task_id
        self._attempt = attempt
        self._namespace = namespace
        self._flow_id = flow_id
        self._variables = variables
        self._dsn = dsn
        self._max_log_lines = max_log_lines
        self._logs: list[LogEntry] = []
        self._dropped = 0
        self._log_lock = threading.Lock()  # scripts log from their own threads

    @property
    def execution_id(self) -> str:
        """The execution's id."""
        return self._execution_id

    @property
    def task_run_id(self) -> str:
        """The task run's id."""
        return self._task_run_id

    @property
    def task_id(self) -> str:
        """The task's id in the flow."""
        return self._task_id

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        return self._attempt

    @property
    def namespace(self) -> str:
        """The flow's namespace (the default KV namespace)."""
        return self._namespace

    @property
    def flow_id(self) -> str:
        """The flow's id."""
        return self._flow_id

    @property
    def variables(self) -> Mapping[str, Any]:
        """The expression context the task's properties were rendered with."""
        return self._variables

    @property
    def dsn(self) -> str | None:
        """The store's DSN, if KV is available."""
        return self._dsn

    @property
    def storage(self) -> Storage:
        """The internal storage, opened in this process (one client per config)."""
        return open_storage(self._storage_config)

    def log(self, level: str, message: str) -> None:
        """Record a log line; unknown levels become INFO, ``WARNING`` becomes ``WARN``."""
        name = str(level).upper()
        name = _LEVEL_ALIASES.get(name, name)
        entry = LogEntry(utcnow(), name if name in LEVELS else "INFO", str(message))
        with self._log_lock:
            if len(self._logs) < self._max_log_lines:
                self._logs.append(entry)
            else:
                self._dropped += 1

    def logs(self) -> list[LogEntry]:
        """The lines logged so far, in order (with a last WARN line if some were dropped)."""
        with self._log_lock:
            lines = list(self._logs)
            dropped = self._dropped
        if dropped:
            note = f"{dropped} more log lines dropped (limit {self._max_log_lines})"
            lines.append(LogEntry(utcnow(), "WARN", note))
        return lines

    async def kv_get(self, key: str, namespace: str | None = None) -> tuple[bool, Any]:
        """``(found, value)`` for a KV key; expired keys are not found."""
        store = await self._store()
        try:
            entry = await store.kv_get(namespace or self._namespace, key)
        except StoreError as exc:
            raise TaskError(f"kv get '{key}': {exc}") from exc
        return (False, None) if entry is None else (True, entry.value)

    async def kv_set(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        ttl: dt.timedelta | None = None,
        kv_type: str | None = None,
        overwrite: bool = True,
    ) -> None:
        """Store a KV value; refuses to replace an existing key when not `overwrite`.

        Raises:
            TaskError: Not retriable when the key exists and not ``overwrite``, or the
                value does not fit ``kv_type``; retriable when the store failed.
        """
        ns = namespace or self._namespace
        try:
            kind = None if kv_type is None else KVType(str(kv_type).upper())
            encode_value(value, kind)  # a value that cannot be stored fails for good
        except (ValueError, StoreError) as exc:
            raise TaskError(f"kv set '{key}': {exc}", retriable=False) from exc
        store = await self._store()
        try:
            # Not atomic: the store has no insert-if-absent for KV yet.
            if not overwrite and await store.kv_get(ns, key) is not None:
                raise TaskError(
                    f"key '{key}' already exists in namespace '{ns}' and overwrite is false",
                    retriable=False,
                )
            await store.kv_set(ns, key, value, ttl=ttl, type=kind)
        except StoreError as exc:
            raise TaskError(f"kv set '{key}': {exc}") from exc

    async def kv_delete(self, key: str, namespace: str | None = None) -> bool:
        """Delete a KV key; True when a live value existed."""
        store = await self._store()
        try:
            return await store.kv_delete(namespace or self._namespace, key)
        except StoreError as exc:
            raise TaskError(f"kv delete '{key}': {exc}") from exc

    async def _store(self) -> Store:
        if self._dsn is None:
            raise TaskError("kv needs a store", retriable=False)
        return await worker_store(self._dsn)


# ---- one store per (event loop, DSN) in this process --------------------------------------

_StoreKey = tuple[asyncio.AbstractEventLoop, str]
_STORES: dict[_StoreKey, asyncio.Task[Store]] = {}


async def worker_store(dsn: str) -> Store:
    """The started `Store` for ``dsn`` on the running loop, opened on first use.

    It applies no migrations (the server does) and keeps a small pool. Concurrent
    first callers share one opening; a failed opening is forgotten, so the next call
    tries again.

    Raises:
        TaskError: The store could not be opened (retriable).
    """
    loop = asyncio.get_running_loop()
    key = (loop, dsn)
    opening = _STORES.get(key)
    if opening is None:
        opening = loop.create_task(_open_store(dsn))
        _STORES[key] = opening
    try:
        return await asyncio.shield(opening)
    except StoreError as exc:
        if _STORES.get(key) is opening:
            del _STORES[key]
        raise TaskError(f"kv: {exc}") from exc


async def _open_store(dsn: str) -> Store:
    store = Store(
        dsn,
        min_connections=_STORE_MIN_CONNECTIONS,
        max_connections=_STORE_MAX_CONNECTIONS,
        migrate=False,
    )
    await store.start()
    return store


async def close_worker_stores() -> None:
    """Stop the stores opened on the running loop (idempotent)."""
    loop = asyncio.get_running_loop()
    for key in [k for k in _STORES if k[0] is loop]:
        opening = _STORES.pop(key)
        if not opening.done():
            await asyncio.wait({opening})
        if opening.cancelled() or opening.exception() is not None:
            continue
        await opening.result().stop()
