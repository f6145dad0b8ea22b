"""Where a benchmarked flow runs: a `ListenerHost` actor, or the API server for webhooks.

Both mirror production: the host is the same Ray actor `kestrel server` starts (with one
warm `TaskWorker`), and the webhook path is the real FastAPI app over a `Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from actors import Execution, ExecutionDetail, Store, listener_host_class
from flows import State, parse_flow

TERMINAL = [s for s in State if s.terminal]


@dataclass
class Target:
    """A deployed flow: how to watch its executions and which process runs them."""

    store: Store
    namespace: str
    flow_id: str
    pid: int
    host: Any = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    running: Callable[[], Awaitable[bool]] | None = None
    """Whether the flow's listeners all run, where no `host` of ours runs them."""

    async def count(self, *, ended: bool = False) -> int:
        page = await self.store.search_executions(
            namespace=self.namespace,
            flow_id=self.flow_id,
            states=TERMINAL if ended else None,
            limit=1,
        )
        return page.total

    async def wait_for(self, n: int, *, ended: bool = False, within: float = 120) -> None:
        """Poll the store until `n` executions exist (or have ended)."""
        deadline = time.monotonic() + within
        while (found := await self.count(ended=ended)) < n:
            if time.monotonic() > deadline:
                what = "ended" if ended else "created"
                raise TimeoutError(f"only {found} of {n} executions {what} after {within:.0f}s")
            await asyncio.sleep(0.1)

    async def executions(self, limit: int = 100_000) -> list[Execution]:
        page = await self.store.search_executions(
            namespace=self.namespace, flow_id=self.flow_id, limit=limit
        )
        return list(page.items)

    async def details(self, ids: list[str], concurrency: int = 8) -> list[ExecutionDetail]:
        """`Store.execution_detail` of each id (bounded concurrency)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(execution_id: str) -> ExecutionDetail | None:
            async with gate:
                return await self.store.execution_detail(execution_id)

        found = await asyncio.gather(*(one(i) for i in ids))
        return [d for d in found if d is not None]

    async def wait_running(self, within: float = 90) -> None:
        """Until the flow's trigger reports RUNNING (webhooks have no listener)."""
        deadline = time.monotonic() + within
        while self.running is not None:
            if await self.running():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"listeners not all RUNNING after {within:.0f}s")
            await asyncio.sleep(0.1)
        if self.host is None:
            return
        while True:
            infos = await self.host.triggers.remote()
            status = str(infos[0].status) if infos else "NONE"
            if status == "RUNNING":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"trigger not RUNNING after {within:.0f}s: {status}")
            await asyncio.sleep(0.05)


async def save_flow(store: Store, source: str) -> tuple[str, str]:
    flow = parse_flow(source)
    await store.save_flow(flow.namespace, flow.id, source)
    return flow.namespace, flow.id


@contextlib.asynccontextmanager
async def on_listener_host(dsn: str, source: str, warm_workers: int = 1) -> AsyncIterator[Target]:
    """Save the flow, start a listener host (it deploys the flow), yield, stop it."""
    async with Store(dsn) as store:  # also applies the migrations
        namespace, flow_id = await save_flow(store, source)
        name = f"bench-host-{uuid.uuid4().hex[:8]}"
        # KESTREL_BENCH_COLOCATE=1 measures the co-located mode: runnable tasks without
        # resources run in the host's own process instead of on a warm worker actor.
        colocate = os.environ.get("KESTREL_BENCH_COLOCATE") == "1"
        host = (
            listener_host_class()
            .options(name=name)
            .remote(dsn, name, warm_workers=warm_workers, colocate_tasks=colocate)
        )
        try:
            await host.ready.remote()
            load = await host.load.remote()
            yield Target(store, namespace, flow_id, load.pid, host=host)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(host.shutdown.remote(), 30)
            ray.kill(host, no_restart=True)


Route = Callable[..., Awaitable[Any]]


@contextlib.asynccontextmanager
async def on_api_server(
    dsn: str, source: str, extra_routes: dict[str, Route] | None = None
) -> AsyncIterator[Target]:
    """The real HTTP API (`create_app` over a `Runtime`) on a free loopback port.

    `extra_routes` (path → handler) are added to the same app, for the HTTP baseline.
    """
    from gateway._api import create_app
    from gateway._runtime import Runtime
    from gateway._server import api_serving
    from gateway._settings import Settings
    from tests.servers import free_port

    settings = Settings(
        db=dsn,
        host="127.0.0.1",
        port=free_port(),
        listener_hosts=1,
        execution_actors=1,
        no_auth=True,  # loopback only, for the length of a benchmark run
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        flow, _ = await runtime.catalog.deploy(source)
        app = create_app(runtime, settings)
        for path, handler in (extra_routes or {}).items():
            app.add_api_route(path, handler, methods=["POST"])
        async with api_serving(app, settings, access_log=False, timeout_graceful_shutdown=2):
            load = await runtime.pool.handles()[0].load.remote()
            yield Target(
                runtime.store,
                flow.namespace,
                flow.id,
                load.pid,
                url=f"http://{settings.host}:{settings.port}",
            )
    finally:
        await runtime.stop()
