"""Throughput scaled out: the throughput part's steps on two Ray nodes, and with two gateways.

- ``two-nodes``: Ray's own multi-node test cluster (`ray.cluster_utils.Cluster`: a head
  and a worker raylet of 1 CPU each, in a process of its own, `tests.servers.
  multinode_cluster`) and one ``kestrel server`` joined to it with two listener hosts and
  two execution actors (Kestrel puts one of each on each node);
- ``two-gateways``: two ``kestrel server`` processes on the run's database, both joined to
  the benchmark's Ray, one listener host and one execution actor each.

The flow is the throughput part's (NATS JetStream, one runnable task, every state change
in Postgres) with ``parallelism: 2``: two listeners share the stream's durable consumer.
With two gateways, the flow is deployed with one listener through the first gateway, then
changed to two through the second, so each gateway takes one listener's lease (a gateway
takes every free lease of a flow it deploys). Who holds each listener is read from the
trigger leases and reported (``slots``). The gateways are real processes, started like
the scale-out tests start them (`tests.servers.start_kestrel_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from actors import Store

from ._deploy import Target
from ._servers import Brokers, Postgres
from ._sources import JetStream
from ._throughput import ThroughputOptions, figures, run_steps

TOPOLOGIES = ("two-nodes", "two-gateways")
LISTENERS = 2
YAML = {"Content-Type": "application/x-yaml"}


def _flow(source: JetStream, parallelism: int) -> str:
    return f"{source.flow()}    parallelism: {parallelism}\n"


async def _running_listeners(urls: list[str], flow_id: str) -> int:
    """How many of the flow's listeners report RUNNING, over every gateway."""
    running = 0
    async with httpx.AsyncClient(timeout=10) as client:
        for url in urls:
            answer = await client.get(f"{url}/api/v1/triggers")
            if answer.status_code != 200:
                return 0
            running += sum(
                1
                for t in answer.json()["results"]
                if t["flowId"] == flow_id and t["status"] == "RUNNING"
            )
    return running


async def _deploy(url: str, source: JetStream, parallelism: int, *, update: bool) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        body = _flow(source, parallelism)
        if update:
            answer = await client.put(
                f"/api/v1/flows/{source.namespace}/{source.flow_id}", content=body, headers=YAML
            )
        else:
            answer = await client.post("/api/v1/flows", content=body, headers=YAML)
        if answer.status_code not in (200, 201):
            raise RuntimeError(f"deploy through {url}: {answer.status_code} {answer.text}")


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 90) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} after {within:.0f}s")
        await asyncio.sleep(0.1)


async def _slots(dsn: str, source: JetStream) -> dict[str, str]:
    """Listener lease → the listener host holding it (``kestrel-<gateway>-host-<n>``)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT key, owner FROM leases WHERE kind = 'trigger' AND key LIKE $1 ORDER BY key",
            f"{source.namespace}.{source.flow_id}/%",
        )
    finally:
        await conn.close()
    return {r["key"]: r["owner"].removesuffix("-triggers") for r in rows}


@contextlib.asynccontextmanager
async def _gateways(
    topology: str, dsn: str, brokers: Brokers, workdir: Path
) -> AsyncIterator[list[str]]:
    """Start the topology's gateways (and cluster); yield their base URLs."""
    from tests.servers import multinode_cluster, start_kestrel_server

    with contextlib.ExitStack() as stack:

        def start(name: str, ray_address: str, **env: str) -> str:
            flows = workdir / f"flows-{name}"
            flows.mkdir()
            server = start_kestrel_server(
                dsn, flows, workdir / f"{name}.log", ray_address=ray_address, **env
            )
            stack.callback(server.stop)
            return server.base_url

        if topology == "two-nodes":
            cluster = await asyncio.to_thread(
                stack.enter_context, multinode_cluster(workdir / "cluster.log")
            )
            urls = [
                await asyncio.to_thread(
                    start,
                    "gateway",
                    cluster.address,
                    KESTREL_LISTENER_HOSTS="2",
                    KESTREL_EXECUTION_ACTORS="2",
                )
            ]
        else:
            assert brokers.ray is not None
            urls = [
                await asyncio.to_thread(start, name, brokers.ray.address) for name in ("a", "b")
            ]
        try:
            yield urls
        finally:
            await asyncio.to_thread(stack.close)


async def run_topology(
    topology: str, brokers: Brokers, pg: Postgres, opts: ThroughputOptions
) -> dict[str, Any]:
    """The throughput steps on one topology."""
    dsn = await pg.new_database()
    async with Store(dsn):  # the migrations, before two gateways race to apply them
        pass
    source = JetStream(brokers, dsn, namespace="bench.scaleout")
    await source.open()
    print(f"scaleout: {topology}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="kestrel-bench-scaleout-") as tmp:
            async with _gateways(topology, dsn, brokers, Path(tmp)) as urls, Store(dsn) as store:
                if len(urls) == 1:
                    await _deploy(urls[0], source, LISTENERS, update=False)
                else:  # one listener each: the first deploys one, the second adds one
                    await _deploy(urls[0], source, 1, update=False)
                    await _until(lambda: _enough(urls[:1], source.flow_id, 1), "the first listener")
                    await _deploy(urls[1], source, LISTENERS, update=True)

                async def all_running() -> bool:
                    return await _enough(urls, source.flow_id, LISTENERS)

                target = Target(store, source.namespace, source.flow_id, 0, running=all_running)
                await target.wait_running()
                slots = await _slots(dsn, source)
                print(f"  listeners: {slots}", flush=True)
                steps = await run_steps(source, target, dsn, opts)
    finally:
        await source.close()
    return {**figures(f"{source.label}, {topology}", steps), "slots": slots}


async def _enough(urls: list[str], flow_id: str, count: int) -> bool:
    return await _running_listeners(urls, flow_id) >= count


async def run(
    brokers: Brokers, pg: Postgres, topologies: list[str], opts: ThroughputOptions
) -> dict[str, Any]:
    """Every topology asked for, one after the other."""
    results = {t: await run_topology(t, brokers, pg, opts) for t in topologies}
    return {"options": asdict(opts), "sources": results}  # the throughput report's shape
