"""End-to-end: a real broker → a listener host actor on Ray → executions in Postgres."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import ray

from actors import Store, listener_host_class
from flows import State, parse_flow
from tests.polling import eventually

HOST_OPTIONS: dict[str, Any] = {}
CHEAP_TASKS = "tasks:\n  - {id: seen, type: core.Return, value: ok}\n"


@dataclass
class Deployment:
    """A flow deployed on a listener host actor, with ways to watch and disturb it."""

    store: Store
    host: Any
    namespace: str
    flow_id: str

    async def executions(self) -> list[Any]:
        page = await self.store.search_executions(
            namespace=self.namespace, flow_id=self.flow_id, limit=5000
        )
        return list(page.items)

    async def count(self) -> int:
        page = await self.store.search_executions(
            namespace=self.namespace, flow_id=self.flow_id, limit=1
        )
        return page.total

    async def wait_for_count(self, n: int, within: float = 120) -> list[Any]:
        async def enough() -> bool:
            return await self.count() >= n

        await eventually(enough, within, what=f"{n} executions", interval=0.1)
        return await self.executions()

    async def wait_all_ended(self, within: float = 120) -> None:
        async def ended() -> list[Any] | None:
            items = await self.executions()
            return items if all(e.state.terminal for e in items) else None

        items = await eventually(ended, within, what="every execution to end", interval=0.1)
        assert {e.state for e in items} <= {State.SUCCESS}, {e.state for e in items}

    async def trigger_status(self) -> str:
        infos = await self.host.triggers.remote()
        return str(infos[0].status) if infos else "NONE"

    async def wait_running(self, within: float = 60) -> None:
        async def running() -> bool:
            return await self.trigger_status() == "RUNNING"

        await eventually(running, within, what="the trigger to run", interval=0.05)

    async def kill_host(self) -> None:
        """Kill the host process; Ray restarts it and it redeploys from the store."""
        ray.kill(self.host, no_restart=False)


@contextlib.asynccontextmanager
async def deployed(
    dsn: str, source: str, *, host_dsn: str | None = None
) -> AsyncIterator[Deployment]:
    """Save `source`, start a listener host actor that deploys it, and keep it alive.

    ``host_dsn``: where the host reaches the store (e.g. through a proxy a test cuts).
    """
    flow = parse_flow(source)
    async with Store(dsn) as store:
        await store.save_flow(flow.namespace, flow.id, source)
        name = f"e2e-host-{uuid.uuid4().hex[:8]}"
        host = (
            listener_host_class()
            .options(name=name)
            .remote(host_dsn or dsn, name, **{"warm_workers": 0, **HOST_OPTIONS})
        )
        await host.ready.remote()
        deployment = Deployment(store, host, flow.namespace, flow.id)
        keeper = asyncio.create_task(_keep_alive(host))
        try:
            yield deployment
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            with contextlib.suppress(Exception):
                await asyncio.wait_for(host.shutdown.remote(), 30)
            ray.kill(host, no_restart=True)


async def _keep_alive(host: Any) -> None:
    """What the server's supervisor does: after a restart, the first call reopens the host."""
    while True:
        with contextlib.suppress(Exception):
            await host.ready.remote()
        await asyncio.sleep(0.5)


def assert_exactly_once(
    executions: list[Any], expected: set[Any], key: Callable[[Any], Any]
) -> None:
    seen = [key(e) for e in executions]
    assert len(seen) == len(set(seen)), "a source message made two executions"
    assert set(seen) == expected
