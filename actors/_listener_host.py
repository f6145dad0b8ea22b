"""Listener hosts: one async Ray actor runs many trigger listeners as asyncio tasks.

A thousand deployed triggers are a handful of processes, not a thousand. A host is also
an execution actor: the executions its triggers create run right here (co-located), so
the event path is listener → durable create → ack → first task, with no actor hop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import ray

from flows import Flow, FlowTrigger, KestrelError, Listener, Schedule, Service, Trigger

from ._execution_actor import RUNTIME_ACTOR_OPTIONS, ExecutionActor
from ._flow_trigger import FlowTriggerListener
from ._interceptors import FirstTaskLatency
from ._schedule import ScheduleListener
from ._service import ExecutionService
from ._triggers import (
    TRIGGER_LABEL,
    Backoff,
    ListenerFactory,
    RunnerContext,
    TriggerInfo,
    TriggerRunner,
    TriggerStats,
    TriggerStatus,
    default_listener_factory,
)


def _schedule(trigger: Trigger, ctx: RunnerContext) -> Listener:
    assert isinstance(trigger, Schedule)
    return ScheduleListener(trigger, ctx)


def _flow(trigger: Trigger, ctx: RunnerContext) -> Listener:
    assert isinstance(trigger, FlowTrigger)
    return FlowTriggerListener(trigger, ctx)


CORE_LISTENERS: dict[str, ListenerFactory] = {"trigger.Schedule": _schedule, "trigger.Flow": _flow}
"""Listeners of the built-in triggers that are not connectors."""


_log = logging.getLogger(__name__)


class TriggerHost(Service):
    """Deploys, redeploys and undeploys the triggers of flows in this process.

    Args:
        service: Where executions are created and run.
        factories: Listener factories by trigger type name, for trigger types whose
            listener is not their own `create_listener` (schedules, flow triggers).
        backoff: Reconnection delays.
    """

    def __init__(
        self,
        service: ExecutionService,
        factories: Mapping[str, ListenerFactory] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self._service = service
        self._factories: dict[str, ListenerFactory] = {**CORE_LISTENERS, **(factories or {})}
        self._backoff = backoff
        self._runners: dict[tuple[str, str, str], TriggerRunner] = {}
        # Triggers a user switched off (``PUT /triggers/...``): shown, not run.
        self._switched_off: dict[tuple[str, str, str], TriggerInfo] = {}
        self._lock = asyncio.Lock()
        service.interceptors.add(FirstTaskLatency(self._stats_of, TRIGGER_LABEL))

    def _stats_of(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerStats | None:
        runner = self._runners.get((namespace, flow_id, trigger_id))
        return None if runner is None else runner.stats

    async def _start(self) -> None:
        return None

    async def _stop(self) -> None:
        async with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        await asyncio.gather(*(r.stop() for r in runners), return_exceptions=True)

    def _factory(self, trigger: Trigger) -> ListenerFactory:
        return self._factories.get(trigger.type, default_listener_factory)

    def listens_to(self, trigger: Trigger) -> bool:
        """True for the trigger types a host runs (not webhooks: the API takes those)."""
        return trigger.type != "trigger.Webhook"

    async def deploy(
        self, flow: Flow, switched_off: set[tuple[str, str, str]] | None = None
    ) -> list[str]:
        """Run the flow's enabled triggers (restarting changed ones); stop removed ones.

        A trigger whose flow revision changed is stopped (its unacknowledged deliveries
        come again) and started on the new revision from its committed position. A
        trigger a user disabled (``PUT /triggers/...``) is not run.

        Args:
            flow: The flow revision.
            switched_off: The disabled triggers, when the caller has just read them
                (``(namespace, flow_id, trigger_id)``); read from the store otherwise.

        Returns:
            The ids of the triggers now running for the flow.
        """
        if switched_off is None:
            switched_off = await self._service.store.disabled_triggers(flow.namespace, flow.id)
        async with self._lock:
            wanted = {
                t.id: t
                for t in flow.triggers
                if not t.disabled and not flow.disabled and self.listens_to(t)
            }
            self._forget_switched_off(flow.namespace, flow.id)
            for key in switched_off:
                if key[:2] != (flow.namespace, flow.id):
                    continue
                trigger = wanted.pop(key[2], None)
                if trigger is not None:
                    self._switched_off[key] = switched_off_info(flow, trigger)
            stale = [
                key
                for key, runner in self._runners.items()
                if key[:2] == (flow.namespace, flow.id)
                and (key[2] not in wanted or runner.flow.revision != flow.revision)
            ]
            await asyncio.gather(*(self._runners.pop(key).stop() for key in stale))
            for trigger_id, trigger in wanted.items():
                key = (flow.namespace, flow.id, trigger_id)
                if key in self._runners:
                    continue
                runner = TriggerRunner(
                    flow, trigger, self._service, self._factory(trigger), self._backoff
                )
                await runner.start()
                self._runners[key] = runner
            return sorted(wanted)

    async def undeploy(self, namespace: str, flow_id: str) -> int:
        """Stop every trigger of a flow; how many were stopped."""
        async with self._lock:
            self._forget_switched_off(namespace, flow_id)
            keys = [k for k in self._runners if k[:2] == (namespace, flow_id)]
            runners = [self._runners.pop(k) for k in keys]
        await asyncio.gather(*(r.stop() for r in runners))
        return len(runners)

    def _forget_switched_off(self, namespace: str, flow_id: str) -> None:
        for key in [k for k in self._switched_off if k[:2] == (namespace, flow_id)]:
            del self._switched_off[key]

    def infos(self) -> list[TriggerInfo]:
        """Status and counters of every trigger deployed here (switched-off ones too)."""
        return [r.info() for r in self._runners.values()] + list(self._switched_off.values())

    def runner(self, namespace: str, flow_id: str, trigger_id: str) -> TriggerRunner | None:
        """The runner of a deployed trigger."""
        return self._runners.get((namespace, flow_id, trigger_id))

    def latencies(self, kind: str = "created") -> dict[str, list[float]]:
        """Recent latencies (seconds) per trigger.

        Args:
            kind: ``created`` (event → execution durably created) or ``first_task``
                (event → first runnable task started).
        """
        if kind == "first_task":
            return {r.name: list(r.stats.first_task_latency_s) for r in self._runners.values()}
        return {r.name: list(r.stats.created_latency_s) for r in self._runners.values()}


def switched_off_info(flow: Flow, trigger: Trigger) -> TriggerInfo:
    """How a trigger a user disabled shows in the trigger list: STOPPED, disabled."""
    return TriggerInfo(
        namespace=flow.namespace,
        flow_id=flow.id,
        trigger_id=trigger.id,
        type=trigger.type,
        revision=flow.revision or 0,
        status=TriggerStatus.STOPPED,
        last_error=None,
        last_event_at=None,
        events=0,
        created=0,
        duplicates=0,
        dead_letters=0,
        reconnects=0,
        disabled=True,
    )


def host_index(namespace: str, flow_id: str, count: int) -> int:
    """Which of `count` listener hosts runs a flow's triggers (stable across restarts)."""
    digest = hashlib.sha256(f"{namespace}.{flow_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % count


class ListenerHost(ExecutionActor):
    """An execution actor that also hosts trigger listeners.

    Make the Ray class with `listener_host_class`. It keeps nothing in memory that matters:
    when it starts (or Ray restarts it) it deploys the stored flows that hash to it
    (`host_index`), and the listeners resume from the committed positions in their
    sources (or the cursors in the store).

    Args:
        dsn: The store's database.
        name: The actor's name.
        index: This host's number among `count` hosts.
        count: How many hosts share the flows.
        factories: Extra listener factories by trigger type.
        **kwargs: `ExecutionActor` options.
    """

    def __init__(
        self,
        dsn: str,
        name: str = "listener-host",
        *,
        index: int = 0,
        count: int = 1,
        factories: Mapping[str, ListenerFactory] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dsn, name, **kwargs)
        self._index = index
        self._count = count
        self._host = TriggerHost(self._service, factories)

    async def _open(self) -> None:
        await super()._open()
        await self._host.start()
        await self._redeploy()

    async def _redeploy(self) -> None:
        """Deploy the stored flows this host is responsible for (after any (re)start)."""
        switched_off = await self._store.disabled_triggers()
        for revision in await self._store.list_flows():
            if host_index(revision.namespace, revision.flow_id, self._count) != self._index:
                continue
            try:
                flow = await self._service.flow(
                    revision.namespace, revision.flow_id, revision.revision
                )
            except KestrelError as exc:
                _log.error(
                    "flow %s.%s does not load: %s", revision.namespace, revision.flow_id, exc
                )
                continue
            await self._host.deploy(flow, switched_off)

    async def _triggers(self) -> TriggerHost:
        await self._ensure()
        return self._host

    @property
    def service(self) -> ExecutionService:
        """The co-located execution service."""
        return self._service

    async def deploy(self, namespace: str, flow_id: str, revision: int | None = None) -> list[str]:
        """Deploy (or redeploy) a stored flow revision's triggers here."""
        host = await self._triggers()
        flow = await self._service.flow(namespace, flow_id, revision)
        return await host.deploy(flow)

    async def undeploy(self, namespace: str, flow_id: str) -> int:
        """Stop a flow's triggers here."""
        host = await self._triggers()
        return await host.undeploy(namespace, flow_id)

    async def triggers(self) -> list[TriggerInfo]:
        """Status of every trigger deployed here."""
        host = await self._triggers()
        return host.infos()

    async def latencies(self, kind: str = "created") -> dict[str, list[float]]:
        """Recent latencies per trigger (``created`` or ``first_task``)."""
        host = await self._triggers()
        return host.latencies(kind)

    async def shutdown(self, drain_s: float = 0.0) -> None:
        """Stop the listeners (unacked deliveries come again), then drain the executions."""
        try:
            await self._host.stop()
        finally:
            await super().shutdown(drain_s)


def listener_host_class(**options: Any) -> Any:
    """`ListenerHost` as a Ray actor class (async, restartable, highly concurrent)."""
    return ray.remote(**{**RUNTIME_ACTOR_OPTIONS, **options})(ListenerHost)
