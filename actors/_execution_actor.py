"""Execution actors: long-lived async Ray actors that each run many executions.

An `ExecutionActor` wraps an `ExecutionService`. It is created ahead of demand by the
`ExecutionPool` and reused for every execution after that, so the event path never waits
for an actor (or a worker process) to start. Every incarnation has a fresh owner name:
after a restart it holds no lease, and the executions it had are resumed, by whichever
actor the pool hands them to, once their leases expire.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ray

from flows import (
    NotFoundError,
    Schedule,
    State,
)

from ._execution_host import ExecutionHost
from ._schedule import backfill
from ._service import DEFAULT_LEASE_TTL, ExecutionService
from ._storage import StorageConfig
from ._store._ids import new_id

RUNTIME_ACTOR_OPTIONS: dict[str, Any] = {
    "max_restarts": -1,
    "max_task_retries": 0,
    "max_concurrency": 10_000,
    "num_cpus": 0,
    "scheduling_strategy": "SPREAD",
}
"""Ray options of execution actors and listener hosts: restartable, highly concurrent,
no CPU reserved (they mostly wait), spread over the cluster's nodes (see
docs/architecture.md, "Placement on a Ray cluster")."""


@dataclass(frozen=True)
class ActorLoad:
    """What an execution actor is doing, for the pool's scaling decisions."""

    name: str
    owner: str
    running: int
    pid: int


@dataclass(frozen=True)
class StartResult:
    """What `ExecutionActor.create` did: the execution id and whether it is new."""

    execution_id: str
    created: bool
    state: State


class ExecutionActor:
    """Runs executions on its own event loop; make the Ray class with `execution_actor_class`.

    Args:
        dsn: The store's database.
        name: The actor's name (also the prefix of its lease owner name).
        lease_ttl_s: Lease time to live, in seconds.
        recover_every_s: Seconds between looks for orphaned executions to resume here.
        warm_workers: Warm `TaskWorker` actors for runnable tasks without resources
            (0: every attempt is a Ray task).
        colocate_tasks: Run runnable tasks without resources in this actor's own
            process (no hop; see `ColocatedDispatcher`) instead of on warm workers.
        store_options: Extra `Store` keyword arguments.
        storage: The internal storage (the default local folder when None).
        tracing: An OTLP/HTTP traces URL: trace executions with OpenTelemetry (the
            ``otel`` extra; see `opentelemetry_interceptor`).
    """

    def __init__(
        self,
        dsn: str,
        name: str = "execution-actor",
        *,
        lease_ttl_s: float = DEFAULT_LEASE_TTL.total_seconds(),
        recover_every_s: float | None = 2.0,
        warm_workers: int = 0,
        colocate_tasks: bool = False,
        store_options: Mapping[str, Any] | None = None,
        storage: StorageConfig | None = None,
        tracing: str | None = None,
    ) -> None:
        self._name = name
        self._execution_host = ExecutionHost(
            dsn,
            f"{name}-{new_id()}",
            warm_workers=warm_workers,
            colocate_tasks=colocate_tasks,
            lease_ttl=dt.timedelta(seconds=lease_ttl_s),
            recover_every=recover_every_s,
            store_options=store_options,
            storage=storage,
            tracing=tracing,
        )
        self._store = self._execution_host.store
        self._service = self._execution_host.service
        self._ready: asyncio.Task[None] | None = None

    async def _ensure(self) -> ExecutionService:
        # Constructors cannot await: the store opens on the first call (or `ready`).
        if self._ready is None:
            self._ready = asyncio.ensure_future(self._open())
        await asyncio.shield(self._ready)
        return self._service

    async def _open(self) -> None:
        await self._execution_host.start()

    async def ready(self) -> str:
        """Open the store (and warm workers); returns the lease owner name."""
        service = await self._ensure()
        return service.owner

    async def load(self) -> ActorLoad:
        """How many executions run here."""
        service = await self._ensure()
        return ActorLoad(self._name, service.owner, len(service.running_ids()), os.getpid())

    async def ping(self) -> str:
        """Liveness, answered even while the actor is busy."""
        return self._name

    async def create(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        revision: int | None = None,
        trigger: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
        execution_id: str | None = None,
    ) -> StartResult:
        """Create an execution durably and start it here (the event path's one hop).

        Raises:
            InputError: Invalid inputs; nothing is created.
            NotFoundError: Unknown flow.
            StoreError: The store failed.
        """
        service = await self._ensure()
        flow = await service.flow(namespace, flow_id, revision)
        result = await service.create(
            flow,
            inputs,
            trigger=trigger,
            labels=labels,
            dedupe_key=dedupe_key,
            execution_id=execution_id,
        )
        return StartResult(result.execution.id, result.created, result.execution.state)

    async def submit(self, execution_id: str, restart: bool = False) -> bool:
        """Run (or resume) an existing execution here; False if another owner has it."""
        service = await self._ensure()
        if restart:
            return await service.restart(execution_id)
        return await service.run_execution(execution_id)

    async def wait(self, execution_id: str, within: float | None = None) -> State:
        """The execution's terminal state (waits for it)."""
        service = await self._ensure()
        return (await service.wait(execution_id, within)).state

    async def kill(self, execution_id: str) -> bool:
        """Kill an execution running here."""
        service = await self._ensure()
        return service.kill(execution_id)

    async def resume(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> bool:
        """Resume a paused execution running here (with its `onResume` inputs)."""
        service = await self._ensure()
        return service.resume(execution_id, task_run_id, inputs)

    async def pause(self, execution_id: str) -> bool:
        """Pause a RUNNING execution running here."""
        service = await self._ensure()
        return service.pause(execution_id)

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> str:
        """Replay an execution from a task run; the new execution runs here."""
        service = await self._ensure()
        return await service.replay(execution_id, task_run_id)

    async def backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str | None,
        start: dt.datetime,
        end: dt.datetime,
        inputs: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Run a Schedule trigger's ticks in ``[start, end)`` here (once per tick).

        Raises:
            NotFoundError: No such flow or Schedule trigger.
        """
        service = await self._ensure()
        flow = await service.flow(namespace, flow_id)
        schedules = [
            t
            for t in flow.triggers
            if isinstance(t, Schedule) and (trigger_id is None or t.id == trigger_id)
        ]
        if not schedules:
            which = f" '{trigger_id}'" if trigger_id else ""
            raise NotFoundError(f"flow {flow.uid} has no Schedule trigger{which}")
        return await backfill(service, flow, schedules[0], start, end, inputs=dict(inputs or {}))

    async def running_ids(self) -> list[str]:
        """Ids of the executions running here."""
        service = await self._ensure()
        return service.running_ids()

    async def shutdown(self, drain_s: float = 0.0) -> None:
        """Let running executions end (`drain_s` seconds at most), then stop and close.

        What is still running after `drain_s` is cancelled; its lease is left to expire,
        so another actor resumes it. The stores are closed whatever happens.
        """
        await self._execution_host.shutdown(drain_s)


def execution_actor_class(**options: Any) -> Any:
    """`ExecutionActor` as a Ray actor class (async, restartable, highly concurrent).

    Args:
        **options: Ray actor options over the defaults (``max_restarts=-1``,
            ``max_concurrency=10_000``, ``num_cpus=0``: an execution actor mostly waits).
    """
    return ray.remote(**{**RUNTIME_ACTOR_OPTIONS, **options})(ExecutionActor)
