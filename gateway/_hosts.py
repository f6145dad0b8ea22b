"""The server's listener hosts: the Ray actors that run its flows' triggers.

Each flow's triggers are deployed on every host; a host runs the listeners (slots) that
fall to it (see `actors.host_index`) under their trigger leases. Hosts are named
``<server>-host-<i>`` in `actors.RAY_NAMESPACE`, so the execution controls of any server
on the same Ray cluster can reach the executions they run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from actors import (
    RAY_NAMESPACE,
    StorageConfig,
    TriggerInfo,
    listener_host_class,
    remote_call,
    retire_actor,
    spread_over_nodes,
)
from flows import Flow, Service


class ListenerHosts(Service):
    """A fixed set of listener-host actors, started together and retired together.

    Args:
        dsn: The database.
        prefix: The server's name: hosts are ``{prefix}-host-{i}``.
        count: How many hosts.
        trigger_lease_s: The TTL of the trigger leases.
        storage: The internal storage.
        tracing: An OTLP/HTTP traces URL, or None.
    """

    def __init__(
        self,
        dsn: str,
        prefix: str,
        count: int,
        *,
        trigger_lease_s: float | None,
        storage: StorageConfig,
        tracing: str | None,
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._names = [f"{prefix}-host-{i}" for i in range(count)]
        self._trigger_lease_s = trigger_lease_s
        self._storage = storage
        self._tracing = tracing
        self._handles: dict[str, Any] = {}
        self._drain_s = 0.0

    @property
    def handles(self) -> list[Any]:
        """The hosts' actor handles (empty unless started)."""
        return list(self._handles.values())

    def handle(self, name: str) -> Any | None:
        """The host actor of this server named `name`, if any."""
        return self._handles.get(name)

    async def _start(self) -> None:
        host_cls = listener_host_class()
        for index, name in enumerate(self._names):
            self._handles[name] = host_cls.options(
                name=name, namespace=RAY_NAMESPACE, **spread_over_nodes(index)
            ).remote(
                self._dsn,
                name,
                index=index,
                count=len(self._names),
                trigger_lease_s=self._trigger_lease_s,
                warm_workers=1,
                storage=self._storage,
                tracing=self._tracing,
            )
        await asyncio.gather(*(h.ready.remote() for h in self._handles.values()))

    async def shutdown(self, drain_s: float) -> None:
        """Stop every host's listeners, let its executions end (`drain_s` s, together)."""
        self._drain_s = drain_s
        await self.stop()

    async def _stop(self) -> None:
        handles, self._handles = list(self._handles.values()), {}
        await asyncio.gather(*(retire_actor(h, self._drain_s) for h in handles))

    async def deploy(self, flow: Flow) -> None:
        """Deploy a stored flow revision's triggers on every host (each runs its slots)."""
        await asyncio.gather(
            *(
                remote_call(h.deploy.remote(flow.namespace, flow.id, flow.revision))
                for h in self._handles.values()
            )
        )

    async def undeploy(self, namespace: str, flow_id: str) -> None:
        """Stop a flow's triggers on every host."""
        await asyncio.gather(
            *(remote_call(h.undeploy.remote(namespace, flow_id)) for h in self._handles.values())
        )

    async def triggers(self) -> list[TriggerInfo]:
        """The status of every trigger deployed on the hosts."""
        found: list[list[TriggerInfo]] = await asyncio.gather(
            *(remote_call(h.triggers.remote()) for h in self._handles.values())
        )
        return [info for infos in found for info in infos]

    async def latencies(self, kind: str) -> dict[str, list[float]]:
        """Recent latencies (seconds) per trigger over the hosts (``created``/``first_task``)."""
        found: list[dict[str, list[float]]] = await asyncio.gather(
            *(remote_call(h.latencies.remote(kind)) for h in self._handles.values())
        )
        merged: dict[str, list[float]] = {}
        for one in found:
            merged.update(one)
        return merged
