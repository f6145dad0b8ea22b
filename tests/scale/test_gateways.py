"""Several gateways on one Postgres: one in this process (a `Runtime`), one a real
``kestrel server`` process joined to the same (session) Ray cluster.

- a flow changed through one is live on the other (LISTEN/NOTIFY drops the cached
  revision and redeploys its triggers there);
- an execution running on one is killed and replayed from the other (the owner actor is
  found by name in the shared Ray namespace);
- a JetStream trigger runs on exactly one of them (trigger leases), and after
  ``kill -9`` of its holder mid-stream the survivor takes it over once the lease expires:
  exactly N executions for N events.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from actors import TRIGGER_LABEL, TriggerStatus
from flows import NotFoundError, State
from gateway._runtime import Runtime
from gateway._settings import Settings
from tests.polling import eventually
from tests.scale._processes import Gateway, start_gateway
from tests.servers import RayCluster, free_port

pytestmark = pytest.mark.integration

LEASE_S = 2.0
"""Trigger lease TTL of both gateways: takeover within LEASE_S * 4/3 + connect."""

YAML = {"Content-Type": "application/x-yaml"}


def plain_flow(namespace: str, description: str) -> str:
    return (
        f"id: plain\nnamespace: {namespace}\ndescription: {description}\n"
        "tasks:\n  - {id: say, type: core.Log, message: hi}\n"
    )


def sleepy_flow(namespace: str) -> str:
    return (
        f"id: sleepy\nnamespace: {namespace}\n"
        "tasks:\n  - {id: nap, type: flow.Sleep, duration: PT60S}\n"
    )


def stream_flow(namespace: str, stream: str, nats_url: str) -> str:
    return f"""\
id: ingest
namespace: {namespace}
tasks:
  - {{id: say, type: core.Log, message: "got {{{{ trigger.data.n }}}}"}}
triggers:
  - id: orders
    type: nats.RealtimeTrigger
    url: {nats_url}
    subject: "{stream.lower()}.>"
    stream: {stream}
    durableId: kestrel-{stream.lower()}
    deserializer: JSON
    ackWait: PT5S
"""


@pytest.fixture
async def runtime_a(
    fresh_database: str, ray_cluster: RayCluster, tmp_path: Path
) -> AsyncIterator[Runtime]:
    folder = tmp_path / "flows-a"
    folder.mkdir()
    settings = Settings(db=fresh_database, port=free_port(), flows=folder, trigger_lease_s=LEASE_S)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest.fixture
async def gateway_b(
    fresh_database: str, ray_cluster: RayCluster, tmp_path: Path
) -> AsyncIterator[Gateway]:
    folder = tmp_path / "flows-b"
    folder.mkdir()
    gateway = await asyncio.to_thread(
        start_gateway,
        fresh_database,
        folder,
        tmp_path / "b.log",
        ray_address=ray_cluster.address,
        KESTREL_TRIGGER_LEASE_S=str(LEASE_S),
    )
    try:
        yield gateway
    finally:
        await asyncio.to_thread(gateway.stop)


async def _status(runtime: Runtime, namespace: str, trigger_id: str) -> TriggerStatus | None:
    found = [
        i
        for i in await runtime.triggers()
        if (i.namespace, i.trigger_id) == (namespace, trigger_id)
    ]
    return found[0].status if found else None


async def _executions(runtime: Runtime, namespace: str) -> list[Any]:
    page = await runtime.store.search_executions(
        namespace=namespace, labels={TRIGGER_LABEL: "orders"}, limit=1000
    )
    return list(page.items)


async def test_two_gateways_share_flows_executions_and_triggers(
    runtime_a: Runtime, gateway_b: Gateway, nats_url: str
) -> None:
    namespace = f"scale.gw{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=gateway_b.base_url, timeout=30) as b:
        # A flow changed through B is live on A: A's cached revision is dropped.
        assert (
            await b.post("/api/v1/flows", content=plain_flow(namespace, "one"), headers=YAML)
        ).status_code == 201
        first = await eventually(
            lambda: _revision(runtime_a, namespace), within=10, what="A sees the flow"
        )
        assert first == 1
        assert (
            await b.put(
                f"/api/v1/flows/{namespace}/plain",
                content=plain_flow(namespace, "two"),
                headers=YAML,
            )
        ).status_code == 200
        assert await eventually(
            lambda: _revision_is(runtime_a, namespace, 2), within=10, what="A sees revision 2"
        )

        # An execution running on B is killed, then replayed, from A.
        assert (
            await b.post("/api/v1/flows", content=sleepy_flow(namespace), headers=YAML)
        ).status_code == 201
        started = await b.post(f"/api/v1/executions/{namespace}/sleepy")
        assert started.status_code == 200, started.text
        execution_id = started.json()["id"]
        await eventually(
            lambda: _state_is(runtime_a, execution_id, State.RUNNING), what="running on B"
        )
        killed = await runtime_a.kill(execution_id)
        assert killed.state is State.KILLED
        # B's actor itself stopped the run (not just a row written): its task run is KILLED.
        await eventually(lambda: _task_runs_are(runtime_a, execution_id, [State.KILLED]))
        replayed = await runtime_a.replay(execution_id)
        assert replayed.original_id == execution_id
        await runtime_a.kill(replayed.id)

        # One JetStream trigger: run by exactly one gateway (B deployed it: B holds it).
        stream = f"SCALE{uuid.uuid4().hex[:8].upper()}"
        client = await nats.connect(nats_url)
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        try:
            source = stream_flow(namespace, stream, nats_url)
            assert (await b.post("/api/v1/flows", content=source, headers=YAML)).status_code == 201
            await eventually(
                lambda: _b_status_is(b, namespace, "RUNNING"), within=10, what="B runs it"
            )
            await eventually(
                lambda: _status_is(runtime_a, namespace, TriggerStatus.STANDBY),
                within=10,
                what="A stands by",
            )

            async def publish(numbers: range) -> None:
                for n in numbers:
                    await js.publish(f"{stream.lower()}.created", json.dumps({"n": n}).encode())

            await publish(range(0, 10))
            await eventually(lambda: _all_done(runtime_a, namespace, 10), what="10 executions")

            # kill -9 of the holder, mid-stream: A takes the trigger over.
            await asyncio.to_thread(gateway_b.kill9)
            killed_at = time.monotonic()
            await publish(range(10, 20))
            await eventually(
                lambda: _status_is(runtime_a, namespace, TriggerStatus.RUNNING),
                within=30,
                what="A takes the trigger over",
            )
            takeover_s = time.monotonic() - killed_at
            print(f"trigger takeover after kill -9: {takeover_s:.2f}s (lease TTL {LEASE_S:g}s)")
            executions = await eventually(
                lambda: _all_done(runtime_a, namespace, 20), what="20 executions"
            )
            numbers = sorted(e.trigger["data"]["n"] for e in executions)
            assert numbers == list(range(20))  # exactly once each: none lost, none twice
            assert len({e.dedupe_key for e in executions}) == 20
        finally:
            await js.delete_stream(stream)
            await client.close()


async def _revision(runtime: Runtime, namespace: str) -> int | None:
    try:
        return (await runtime.flow(namespace, "plain")).revision
    except NotFoundError:
        return None


async def _revision_is(runtime: Runtime, namespace: str, revision: int) -> bool:
    return (await runtime.flow(namespace, "plain")).revision == revision


async def _state_is(runtime: Runtime, execution_id: str, state: State) -> bool:
    return (await runtime.execution(execution_id)).state is state


async def _task_runs_are(runtime: Runtime, execution_id: str, states: list[State]) -> bool:
    detail = await runtime.store.execution_detail(execution_id)
    return detail is not None and [d.task_run.state for d in detail.task_runs] == states


async def _status_is(runtime: Runtime, namespace: str, status: TriggerStatus) -> bool:
    return await _status(runtime, namespace, "orders") is status


async def _b_status(b: httpx.AsyncClient, namespace: str) -> str | None:
    found = (await b.get("/api/v1/triggers")).json()["results"]
    mine = [
        t["status"] for t in found if t["namespace"] == namespace and t["triggerId"] == "orders"
    ]
    return mine[0] if mine else None


async def _b_status_is(b: httpx.AsyncClient, namespace: str, status: str) -> bool:
    return await _b_status(b, namespace) == status


async def _all_done(runtime: Runtime, namespace: str, count: int) -> list[Any] | None:
    executions = await _executions(runtime, namespace)
    assert len(executions) <= count, f"{len(executions)} executions for {count} events"
    if len(executions) == count and all(e.state is State.SUCCESS for e in executions):
        return executions
    return None
