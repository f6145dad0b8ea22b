"""One execution host: the stores, the dispatcher and the `ExecutionService` they serve.

Every process that runs executions (an execution actor, a listener host, the server
for its webhook executions) needs the same parts wired the same way: a store for
creates, a second store on its own connection for the write-behind history (so a
create never queues behind a batch of history), a dispatcher for runnable tasks (warm
workers, Ray tasks, or this process) and the service. `ExecutionHost` builds them once
and holds the shutdown order in one place (see docs/architecture.md, "Lifecycle"):
let running executions end within a deadline, then cancel what is left (its lease lapses
and another owner resumes it), and always close the stores.

`retire_actor` is the same order seen from outside, for a Ray actor that hosts one.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import ray

from flows import Service

from ._dispatch import ColocatedDispatcher, RayTaskDispatcher, WorkerPoolDispatcher
from ._gc import tune_gc
from ._interceptors import opentelemetry_interceptor
from ._interpreter import Dispatcher
from ._service import DEFAULT_LEASE_TTL, ExecutionService
from ._storage import StorageConfig
from ._store._store import Store

_log = logging.getLogger(__name__)

RETIRE_GRACE_S = 10.0
"""Seconds an actor's shutdown call may take beyond its drain before it is killed."""


class ExecutionHost(Service):
    """The stores, dispatcher and execution service of one process, started and stopped together.

    Args:
        dsn: The database.
        owner: The service's lease owner name (unique per process and incarnation).
        store: A started store to create executions through, owned by the caller (this
            host neither starts nor closes it); a store of its own when None.
        warm_workers: Warm `TaskWorker` actors for runnable tasks without resources
            (0: every attempt is a Ray task).
        colocate_tasks: Run runnable tasks without resources in this process
            (`ColocatedDispatcher`) instead of on warm workers.
        lease_ttl: Lease time to live.
        recover_every: Seconds between looks for orphaned executions; None: never.
        store_options: Extra `Store` keyword arguments for the stores made here.
        storage: The internal storage (the default local folder when None).
        tracing: An OTLP/HTTP traces URL: trace executions with OpenTelemetry.
    """

    def __init__(
        self,
        dsn: str,
        owner: str,
        *,
        store: Store | None = None,
        warm_workers: int = 0,
        colocate_tasks: bool = False,
        lease_ttl: dt.timedelta = DEFAULT_LEASE_TTL,
        recover_every: float | None = None,
        store_options: Mapping[str, Any] | None = None,
        storage: StorageConfig | None = None,
        tracing: str | None = None,
    ) -> None:
        super().__init__()
        options = dict(store_options or {})
        self._own_store = store is None
        self.store = store if store is not None else Store(dsn, migrate=False, **options)
        """The store creates go through."""
        # Creates (the event path) and write-behind history get separate batchers and
        # connections: a create never waits behind a batch of history writes.
        self._history = Store(dsn, migrate=False, **options)
        self._workers = (
            WorkerPoolDispatcher(warm_workers) if warm_workers and not colocate_tasks else None
        )
        dispatcher: Dispatcher = (
            ColocatedDispatcher() if colocate_tasks else self._workers or RayTaskDispatcher()
        )
        self.service = ExecutionService(
            self.store,
            dispatcher,
            owner=owner,
            lease_ttl=lease_ttl,
            recover_every=recover_every,
            history_store=self._history,
            storage=storage,
        )
        """The execution service (add interceptors to it before `start`)."""
        if tracing:
            self.service.interceptors.add(opentelemetry_interceptor(tracing))

    @property
    def owner(self) -> str:
        """The lease owner name of the executions run here."""
        return self.service.owner

    async def _start(self) -> None:
        tune_gc()  # a long-lived process that runs executions (see _gc)
        if self._own_store:
            await self.store.start()
        await self._history.start()
        if self._workers is not None:
            await self._workers.start()
        await self.service.start()

    async def drain(self, within: float) -> int:
        """Let the executions running here end, `within` seconds at most; cancel nothing.

        Returns:
            How many are still running.
        """
        return await self.service.drain(within)

    async def shutdown(self, drain_s: float = 0.0) -> None:
        """Drain for `drain_s` seconds at most, then stop (cancel the rest) and close."""
        try:
            if drain_s > 0 and self.running:
                left = await self.drain(drain_s)
                if left:
                    _log.info("%d execution(s) still running: cancelled, resumed later", left)
        finally:
            await self.stop()

    async def _stop(self) -> None:
        # Cancel first (leases are left to lapse), then close whatever exists, each part
        # whatever the one before did: a store must never stay open.
        parts: list[Service | WorkerPoolDispatcher | None] = [
            self.service,
            self._workers,
            self._history,
        ]
        if self._own_store:
            parts.append(self.store)
        for part in parts:
            if part is None:
                continue
            try:
                await part.stop()
            except Exception as exc:
                _log.warning("stopping %s failed: %r", type(part).__name__, exc)


async def retire_actor(handle: Any, drain_s: float) -> None:
    """Shut a runtime actor down (its executions drain `drain_s` s at most), then kill it.

    The actor's ``shutdown`` gets `RETIRE_GRACE_S` beyond the drain; whatever happens,
    the actor is killed without restart (its leases lapse and others resume its work).
    """
    try:
        await asyncio.wait_for(handle.shutdown.remote(drain_s), drain_s + RETIRE_GRACE_S)
    except Exception as exc:
        _log.warning("an actor did not shut down cleanly: %r", exc)
    finally:
        with contextlib.suppress(Exception):
            ray.kill(handle, no_restart=True)
