"""The coordinator: the store's API as a named, restartable async Ray actor.

`Coordinator` is a plain class (usable in-process too) whose async methods delegate to a
`Store`. It holds no state of its own: on (re)start it opens the pool and applies
migrations, and everything else is read from Postgres on demand, so Ray may restart it
at any time (``max_restarts=-1``) without losing anything. A housekeeping task purges
expired KV entries.

Create it with `start_coordinator` (or look it up with `get_coordinator`); call methods
with ``await handle.method.remote(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import ray

from flows import Service, State, StoreError

from ._store import (
    Attempt,
    CreateResult,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowRevision,
    FlowSaveResult,
    KVEntry,
    KVType,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    Page,
    Store,
    TriggerState,
)

COORDINATOR_NAME = "kestrel-coordinator"
"""The actor name `start_coordinator` uses by default."""


class Coordinator(Service):
    """Kestrel's coordinator: every state change goes through here to Postgres.

    Args:
        dsn: The Postgres database.
        kv_purge_interval: Seconds between purges of expired KV entries (0: never).
        store_options: Extra `Store` keyword arguments (pool size, batch size, ...).
    """

    def __init__(
        self,
        dsn: str,
        *,
        kv_purge_interval: float = 60.0,
        store_options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self._store = Store(dsn, **dict(store_options or {}))
        self._purge_interval = kv_purge_interval
        self._housekeeping: asyncio.Task[None] | None = None
        self._incarnation = uuid.uuid4().hex

    async def _start(self) -> None:
        await self._store.start()
        if self._purge_interval > 0:
            self._housekeeping = asyncio.create_task(self._purge_loop())

    async def _stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self._store.stop()

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval)
            with contextlib.suppress(StoreError):
                await self._store.kv_purge_expired()

    async def _ready(self) -> Store:
        if not self.running:
            if self._stopped:
                raise StoreError("the coordinator is stopped")
            await self.start()
        return self._store

    async def ready(self) -> bool:
        """Start (connect, migrate) if not yet done; True once the coordinator can serve."""
        await self._ready()
        return True

    async def ping(self) -> str:
        """Liveness check that touches nothing."""
        return "pong"

    async def incarnation(self) -> str:
        """An id of this instance: it changes whenever Ray restarts the actor."""
        return self._incarnation

    # ---- executions ----

    async def create_execution(
        self,
        new: NewExecution,
        *,
        lease_owner: str | None = None,
        lease_ttl: dt.timedelta | None = None,
    ) -> CreateResult:
        """See `Store.create_execution`."""
        store = await self._ready()
        return await store.create_execution(new, lease_owner=lease_owner, lease_ttl=lease_ttl)

    async def add_task_runs(
        self, execution_id: str, runs: Sequence[NewTaskRun], *, lease: Lease | None = None
    ) -> None:
        """See `Store.add_task_runs`."""
        await (await self._ready()).add_task_runs(execution_id, runs, lease=lease)

    async def transition(
        self,
        execution_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        outputs: Mapping[str, Any] | None = None,
        lease: Lease | None = None,
    ) -> None:
        """See `Store.transition`."""
        store = await self._ready()
        await store.transition(execution_id, state, at=at, outputs=outputs, lease=lease)

    async def transition_task_run(
        self,
        execution_id: str,
        task_run_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        lease: Lease | None = None,
    ) -> None:
        """See `Store.transition_task_run`."""
        store = await self._ready()
        await store.transition_task_run(execution_id, task_run_id, state, at=at, lease=lease)

    async def record_attempt(
        self, execution_id: str, task_run_id: str, attempt: Attempt, *, lease: Lease | None = None
    ) -> None:
        """See `Store.record_attempt`."""
        await (await self._ready()).record_attempt(execution_id, task_run_id, attempt, lease=lease)

    async def set_outputs(
        self,
        execution_id: str,
        task_run_id: str,
        outputs: Mapping[str, Any],
        *,
        lease: Lease | None = None,
    ) -> None:
        """See `Store.set_outputs`."""
        await (await self._ready()).set_outputs(execution_id, task_run_id, outputs, lease=lease)

    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """See `Store.append_logs`."""
        await (await self._ready()).append_logs(lines)

    async def get_execution(self, execution_id: str) -> Execution | None:
        """See `Store.get_execution`."""
        return await (await self._ready()).get_execution(execution_id)

    async def get_execution_by_dedupe_key(self, dedupe_key: str) -> Execution | None:
        """See `Store.get_execution_by_dedupe_key`."""
        return await (await self._ready()).get_execution_by_dedupe_key(dedupe_key)

    async def search_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Collection[State] | None = None,
        labels: Mapping[str, str] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Execution]:
        """See `Store.search_executions`."""
        store = await self._ready()
        return await store.search_executions(
            namespace=namespace,
            flow_id=flow_id,
            states=states,
            labels=labels,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )

    async def execution_logs(
        self,
        execution_id: str,
        *,
        since: int = 0,
        limit: int | None = 1000,
        min_level: str | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        """See `Store.execution_logs`."""
        store = await self._ready()
        return await store.execution_logs(
            execution_id, since=since, limit=limit, min_level=min_level, task_run_id=task_run_id
        )

    async def execution_detail(self, execution_id: str) -> ExecutionDetail | None:
        """See `Store.execution_detail`."""
        return await (await self._ready()).execution_detail(execution_id)

    async def find_expired_executions(
        self, *, limit: int = 100, unleased_after: dt.timedelta | None = None
    ) -> list[Execution]:
        """See `Store.find_expired_executions`."""
        store = await self._ready()
        return await store.find_expired_executions(limit=limit, unleased_after=unleased_after)

    # ---- leases ----

    async def take_lease(self, kind: str, key: str, owner: str, ttl: dt.timedelta) -> Lease | None:
        """See `Store.take_lease`."""
        return await (await self._ready()).take_lease(kind, key, owner, ttl)

    async def take_execution_lease(
        self, execution_id: str, owner: str, ttl: dt.timedelta
    ) -> Lease | None:
        """See `Store.take_execution_lease`."""
        return await (await self._ready()).take_execution_lease(execution_id, owner, ttl)

    async def renew_lease(self, lease: Lease, ttl: dt.timedelta) -> Lease:
        """See `Store.renew_lease`."""
        return await (await self._ready()).renew_lease(lease, ttl)

    async def release_lease(self, lease: Lease) -> bool:
        """See `Store.release_lease`."""
        return await (await self._ready()).release_lease(lease)

    async def get_lease(self, kind: str, key: str) -> Lease | None:
        """See `Store.get_lease`."""
        return await (await self._ready()).get_lease(kind, key)

    # ---- flows ----

    async def save_flow(self, namespace: str, flow_id: str, source: str) -> FlowSaveResult:
        """See `Store.save_flow`."""
        return await (await self._ready()).save_flow(namespace, flow_id, source)

    async def get_flow(
        self,
        namespace: str,
        flow_id: str,
        revision: int | None = None,
        *,
        include_deleted: bool = False,
    ) -> FlowRevision | None:
        """See `Store.get_flow`."""
        store = await self._ready()
        return await store.get_flow(namespace, flow_id, revision, include_deleted=include_deleted)

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRevision]:
        """See `Store.flow_revisions`."""
        return await (await self._ready()).flow_revisions(namespace, flow_id)

    async def list_flows(self, namespace: str | None = None) -> list[FlowRevision]:
        """See `Store.list_flows`."""
        return await (await self._ready()).list_flows(namespace)

    async def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """See `Store.delete_flow`."""
        return await (await self._ready()).delete_flow(namespace, flow_id)

    # ---- KV ----

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: dt.timedelta | None = None,
        type: KVType | None = None,
    ) -> KVEntry:
        """See `Store.kv_set`."""
        return await (await self._ready()).kv_set(namespace, key, value, ttl=ttl, type=type)

    async def kv_get(self, namespace: str, key: str) -> KVEntry | None:
        """See `Store.kv_get`."""
        return await (await self._ready()).kv_get(namespace, key)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """See `Store.kv_delete`."""
        return await (await self._ready()).kv_delete(namespace, key)

    async def kv_list(self, namespace: str) -> list[KVEntry]:
        """See `Store.kv_list`."""
        return await (await self._ready()).kv_list(namespace)

    # ---- triggers and dead letters ----

    async def save_trigger_state(self, state: TriggerState, *, lease: Lease | None = None) -> None:
        """See `Store.save_trigger_state`."""
        await (await self._ready()).save_trigger_state(state, lease=lease)

    async def get_trigger_state(
        self, namespace: str, flow_id: str, trigger_id: str
    ) -> TriggerState | None:
        """See `Store.get_trigger_state`."""
        return await (await self._ready()).get_trigger_state(namespace, flow_id, trigger_id)

    async def list_trigger_states(
        self, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        """See `Store.list_trigger_states`."""
        return await (await self._ready()).list_trigger_states(namespace, flow_id)

    async def write_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        """See `Store.write_dead_letter`."""
        return await (await self._ready()).write_dead_letter(letter)

    async def list_dead_letters(
        self,
        *,
        source: str | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """See `Store.list_dead_letters`."""
        store = await self._ready()
        return await store.list_dead_letters(
            source=source, namespace=namespace, flow_id=flow_id, limit=limit
        )


async def start_coordinator(
    dsn: str,
    *,
    name: str = COORDINATOR_NAME,
    namespace: str | None = None,
    detached: bool = False,
    kv_purge_interval: float = 60.0,
    store_options: Mapping[str, Any] | None = None,
    max_task_retries: int = 0,
) -> Any:
    """Get the named coordinator actor, creating it if needed, and wait until it is ready.

    The actor is async, restarted by Ray whenever it dies (``max_restarts=-1``), and
    needs no CPU reservation (it waits on I/O). Calls in flight when it dies fail unless
    ``max_task_retries`` says otherwise; retrying is safe for creates with a dedupe key,
    while a retried transition may be recorded twice.

    Args:
        dsn: The Postgres database.
        name: Actor name; one coordinator per name.
        namespace: Ray namespace for the name (the job's by default).
        detached: Outlive the driver that created it.
        kv_purge_interval: See `Coordinator`.
        store_options: See `Coordinator`.
        max_task_retries: Ray retries of calls interrupted by a restart (-1: forever).

    Returns:
        The actor handle (``ray.actor.ActorHandle``).
    """
    actor_class = ray.remote(Coordinator)
    handle: Any = actor_class.options(
        name=name,
        namespace=namespace,
        get_if_exists=True,
        lifetime="detached" if detached else None,
        max_restarts=-1,
        max_task_retries=max_task_retries,
        num_cpus=0,
    ).remote(dsn, kv_purge_interval=kv_purge_interval, store_options=store_options)
    await handle.ready.remote()
    return handle


def get_coordinator(name: str = COORDINATOR_NAME, namespace: str | None = None) -> Any:
    """The running coordinator actor's handle.

    Raises:
        ValueError: No actor has that name.
    """
    return ray.get_actor(name, namespace=namespace)
