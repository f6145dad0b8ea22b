"""The warm pool of execution actors, its scaling, and recovery of orphaned executions.

The pool starts `min_actors` actors before it is used and adds one, in the background,
as soon as the average load crosses `target_load` — ahead of demand, so no execution waits
for an actor to be created. Idle actors above the minimum are let go after `idle_s`.
Every actor also looks for executions whose lease expired (their owner died) and resumes
them from what the store recorded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flows import Service, State, StoreError

from ._autoscale import CapacityRequest
from ._execution_actor import ActorLoad, StartResult, execution_actor_class
from ._execution_host import retire_actor
from ._named import owner_actor_name
from ._placement import spread_over_nodes
from ._ray_errors import remote_call
from ._service import DEFAULT_LEASE_TTL
from ._storage import StorageConfig
from ._store._store import Store

_log = logging.getLogger(__name__)


@dataclass
class PoolOptions:
    """How big the pool is and how it reacts.

    Attributes:
        min_actors: Actors kept warm at all times.
        max_actors: The most actors the pool creates.
        target_load: Running executions per actor above which the pool grows.
        idle_s: Seconds an extra actor may stay idle before it is let go.
        lease_ttl_s: Lease time to live given to the actors.
        recovery_interval_s: How often to look for executions whose owner died.
        warm_workers: Warm task workers per actor for runnable tasks without resources
            (0: every attempt is a Ray task, which may start worker processes under load).
        actor_options: Extra Ray options for the actors.
        name_prefix: Actor names are ``{name_prefix}-{n}``.
        storage: The internal storage (the default local folder when None).
        tracing: An OTLP/HTTP traces URL the actors export OpenTelemetry spans to.
        autoscale: At its largest and still saturated, ask Ray's autoscaler for one CPU
            per running execution (`CapacityRequest`); withdraw it when not saturated.
    """

    min_actors: int = 1
    max_actors: int = 4
    target_load: int = 200
    idle_s: float = 60.0
    lease_ttl_s: float = DEFAULT_LEASE_TTL.total_seconds()
    recovery_interval_s: float = 2.0
    warm_workers: int = 1
    actor_options: dict[str, Any] = field(default_factory=dict)
    name_prefix: str = "kestrel-exec"
    storage: StorageConfig | None = None
    tracing: str | None = None
    autoscale: bool = True


@dataclass
class _Member:
    name: str
    handle: Any
    in_flight: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    load: int = 0


class ExecutionPool(Service):
    """A warm, elastic set of execution actors, with recovery of orphaned executions.

    Args:
        store: A started store (for recovery queries).
        options: Sizes and intervals.
    """

    def __init__(self, store: Store, options: PoolOptions | None = None) -> None:
        super().__init__()
        self._store = store
        self.options = options or PoolOptions()
        self._members: list[_Member] = []
        self._serial = itertools.count()
        self._growing: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._drain_s = 0.0
        self.capacity = CapacityRequest()
        """The standing request to Ray's autoscaler."""

    # ---- lifecycle ----

    async def _start(self) -> None:
        await asyncio.gather(*(self._add() for _ in range(self.options.min_actors)))
        self._loops = [asyncio.create_task(self._scale_loop(), name="pool-scale")]

    async def shutdown(self, drain_s: float) -> None:
        """Stop the pool, letting each actor's executions end (`drain_s` s at most, together)."""
        self._drain_s = drain_s
        await self.stop()

    async def _stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._growing is not None:
            self._growing.cancel()
            await asyncio.gather(self._growing, return_exceptions=True)
        members, self._members = self._members, []
        await asyncio.gather(*(self._retire(m) for m in members), return_exceptions=True)
        await self.capacity.ask(0)

    async def _add(self) -> _Member:
        serial = next(self._serial)
        name = f"{self.options.name_prefix}-{serial}"
        actor_cls = execution_actor_class(**self.options.actor_options)
        placement = await asyncio.to_thread(spread_over_nodes, serial)
        handle = actor_cls.options(name=name, get_if_exists=True, **placement).remote(
            self._store.dsn,
            name,
            lease_ttl_s=self.options.lease_ttl_s,
            recover_every_s=self.options.recovery_interval_s,
            warm_workers=self.options.warm_workers,
            storage=self.options.storage,
            tracing=self.options.tracing,
        )
        await handle.ready.remote()  # warm: store open, before any execution needs it
        member = _Member(name, handle)
        self._members.append(member)
        _log.info("execution actor %s is ready (%d in the pool)", name, len(self._members))
        return member

    async def _retire(self, member: _Member) -> None:
        await retire_actor(member.handle, self._drain_s)

    # ---- choosing an actor ----

    @property
    def size(self) -> int:
        """How many actors the pool has."""
        return len(self._members)

    def handles(self) -> list[Any]:
        """The actor handles (for callers that talk to actors directly)."""
        return [m.handle for m in self._members]

    def _pick(self) -> _Member:
        if not self._members:
            raise StoreError("the execution pool has no actor")
        member = min(self._members, key=lambda m: m.load + m.in_flight)
        if (member.load + member.in_flight) >= self.options.target_load:
            self._grow_soon()
        return member

    def _grow_soon(self) -> None:
        if len(self._members) >= self.options.max_actors:
            return
        if self._growing is None or self._growing.done():
            self._growing = asyncio.create_task(self._grow())

    async def _grow(self) -> None:
        try:
            await self._add()
        except Exception:
            _log.exception("could not add an execution actor")

    async def create(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> StartResult:
        """Create an execution durably and start it on the least-loaded actor."""
        member = self._pick()
        member.in_flight += 1
        try:
            result: StartResult = await remote_call(
                member.handle.create.remote(namespace, flow_id, inputs, **kwargs)
            )
        finally:
            member.in_flight -= 1
        member.load += 1
        return result

    async def submit(self, execution_id: str, *, restart: bool = False) -> bool:
        """Run (or resume) an existing execution on the least-loaded actor."""
        member = self._pick()
        started: bool = await remote_call(member.handle.submit.remote(execution_id, restart))
        if started:
            member.load += 1
        return started

    async def _owner_of(self, execution_id: str) -> Any | None:
        lease = await self._store.get_lease("execution", execution_id)
        if lease is None or lease.expires_at <= dt.datetime.now(dt.UTC):
            return None
        return self.handle_for_owner(lease.owner)

    def handle_for_owner(self, owner: str) -> Any | None:
        """The pool actor whose incarnation holds leases as `owner`, if any."""
        return self.handle_named(owner_actor_name(owner))

    def handle_named(self, name: str) -> Any | None:
        """The pool actor named `name`, if the pool has it."""
        return next((m.handle for m in self._members if m.name == name), None)

    async def kill(self, execution_id: str) -> bool:
        """Kill an execution wherever it runs in the pool."""
        handle = await self._owner_of(execution_id)
        if handle is None:
            return False
        killed: bool = await remote_call(handle.kill.remote(execution_id))
        return killed

    async def resume(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        inputs: dict[str, Any] | None = None,
    ) -> bool:
        """Resume a paused execution wherever it runs in the pool."""
        handle = await self._owner_of(execution_id)
        if handle is None:
            return False
        resumed: bool = await remote_call(handle.resume.remote(execution_id, task_run_id, inputs))
        return resumed

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> str:
        """Replay an execution from a task run on the least-loaded actor."""
        new_id: str = await remote_call(
            self._pick().handle.replay.remote(execution_id, task_run_id)
        )
        return new_id

    async def backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str | None,
        start: dt.datetime,
        end: dt.datetime,
        inputs: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Run a Schedule trigger's ticks in ``[start, end)`` on the least-loaded actor."""
        ids: list[str] = await remote_call(
            self._pick().handle.backfill.remote(namespace, flow_id, trigger_id, start, end, inputs)
        )
        return ids

    async def wait(self, execution_id: str, within: float | None = None) -> State:
        """Wait for an execution's terminal state (reading the store)."""

        async def poll() -> State:
            while True:
                found = await self._store.get_execution(execution_id)
                if found is None:
                    raise StoreError(f"execution {execution_id} does not exist")
                if found.state.terminal:
                    return found.state
                await asyncio.sleep(0.05)

        return await asyncio.wait_for(poll(), within)

    # ---- background loops ----

    async def _scale_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self._rescale()
            except Exception:
                _log.exception("pool rescale failed")

    async def _rescale(self) -> None:
        loads: list[ActorLoad | BaseException] = await asyncio.gather(
            *(m.handle.load.remote() for m in self._members), return_exceptions=True
        )
        now = time.monotonic()
        for member, load in zip(list(self._members), loads, strict=False):
            if isinstance(load, BaseException):
                continue
            member.load = load.running
            if load.running or member.in_flight:
                member.idle_since = now
        total = sum(m.load for m in self._members)
        saturated = total >= self.options.target_load * len(self._members) * 0.8
        if saturated:
            self._grow_soon()
        if self.options.autoscale:
            largest = len(self._members) >= self.options.max_actors
            await self.capacity.ask(total if saturated and largest else 0)
        extra = [
            m
            for m in self._members
            if m.load == 0 and m.in_flight == 0 and now - m.idle_since > self.options.idle_s
        ]
        for member in extra[: max(0, len(self._members) - self.options.min_actors)]:
            self._members.remove(member)
            await self._retire(member)
