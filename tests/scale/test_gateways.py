"""Several gateways on one Postgres: one in this process (a `Runtime`), one a real
``kestrel server`` process joined to the same (session) Ray cluster.

- a flow changed through one is live on the other (LISTEN/NOTIFY drops the cached
  revision and redeploys its triggers there);
- an execution running on one is killed and replayed from the other (the owner actor is
  found by name in the shared Ray namespace);
- JetStream, Kafka, MQTT (QoS 1) and Postgres cursor triggers each run on exactly one of
  them (trigger leases), and after ``kill -9`` of their holder mid-stream the survivor
  takes them over once the leases expire: exactly N executions for N events on each.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import nats
import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from actors import TRIGGER_LABEL, TriggerStatus
from flows import NotFoundError, State
from gateway._runtime import Runtime
from gateway._settings import Settings
from tests.polling import eventually
from tests.servers import KestrelServer, RayCluster, free_port, start_kestrel_server

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


def stream_flow(namespace: str, stream: str, urls: dict[str, str], topic: str) -> str:
    kafka = json.dumps(
        {"bootstrap.servers": urls["kafka"], "fetch.max.wait.ms": "5", **urls["group"]}
    )
    return f"""\
id: ingest
namespace: {namespace}
tasks:
  - {{id: say, type: core.Log, message: hi}}
triggers:
  - id: orders
    type: nats.RealtimeTrigger
    url: {urls["nats"]}
    subject: "{stream.lower()}.>"
    stream: {stream}
    durableId: kestrel-{stream.lower()}
    deserializer: JSON
    ackWait: PT5S
  - id: kafka
    type: kafka.RealtimeTrigger
    topic: {topic}
    groupId: g-{topic}
    valueDeserializer: JSON
    properties: {kafka}
  - id: mqtt
    type: mqtt.RealtimeTrigger
    server: {urls["mqtt"]}
    topic: {topic}/readings
    qos: 1
  - id: rows
    type: postgres.RealtimeTrigger
    url: "{urls["postgres"]}"
    table: {urls["table"]}
    cursorColumn: n
    pollInterval: PT0.2S
"""


TRIGGERS = ("orders", "kafka", "mqtt", "rows")
"""The durable sources of the takeover scenario: JetStream, Kafka, MQTT QoS 1, and a
Postgres cursor (rows of a table in the same database)."""


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
) -> AsyncIterator[KestrelServer]:
    folder = tmp_path / "flows-b"
    folder.mkdir()
    gateway = await asyncio.to_thread(
        start_kestrel_server,
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
        for i in await runtime.trigger_view.triggers()
        if (i.namespace, i.trigger_id) == (namespace, trigger_id)
    ]
    return found[0].status if found else None


async def _executions(runtime: Runtime, namespace: str, trigger_id: str) -> list[Any]:
    page = await runtime.store.search_executions(
        namespace=namespace, labels={TRIGGER_LABEL: trigger_id}, limit=1000
    )
    return list(page.items)


async def test_two_gateways_share_flows_executions_and_triggers(
    runtime_a: Runtime,
    gateway_b: KestrelServer,
    nats_url: str,
    mqtt_url: str,
    kafka_bootstrap: str,
    kafka_group_options: dict[str, int],
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
        killed = await runtime_a.control.kill(execution_id)
        assert killed.state is State.KILLED
        # B's actor itself stopped the run (not just a row written): its task run is KILLED.
        await eventually(lambda: _task_runs_are(runtime_a, execution_id, [State.KILLED]))
        replayed = await runtime_a.control.replay(execution_id)
        assert replayed.original_id == execution_id
        await runtime_a.control.kill(replayed.id)

        # A webhook execution runs in B's own process (no actor): A's kill reaches it
        # through Postgres (NOTIFY on the control channel).
        hook = (
            f"id: hooked\nnamespace: {namespace}\n"
            "tasks:\n  - {id: nap, type: flow.Sleep, duration: PT60S}\n"
            "triggers:\n  - {id: hook, type: trigger.Webhook, key: scale-key-123456}\n"
        )
        assert (await b.post("/api/v1/flows", content=hook, headers=YAML)).status_code == 201
        called = await b.post(f"/api/v1/executions/webhook/{namespace}/hooked/scale-key-123456")
        assert called.status_code == 200, called.text
        hooked_id = called.json()["id"]
        await eventually(lambda: _state_is(runtime_a, hooked_id, State.RUNNING), what="hooked")
        assert (await runtime_a.control.kill(hooked_id)).state is State.KILLED
        await eventually(lambda: _task_runs_are(runtime_a, hooked_id, [State.KILLED]))

        # Durable triggers (JetStream, Kafka, MQTT QoS 1): each run by exactly one gateway
        # (B deployed them: B holds them).
        stream = f"SCALE{uuid.uuid4().hex[:8].upper()}"
        topic = f"scale-{uuid.uuid4().hex[:8]}"
        client = await nats.connect(nats_url)
        js = client.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        finally:
            await admin.close()
        table = f"rows_{uuid.uuid4().hex[:8]}"
        source_db = await asyncpg.connect(runtime_a.settings.db)
        await source_db.execute(f"CREATE TABLE {table} (n bigint PRIMARY KEY)")
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            group = {
                k.replace("_ms", ".ms").replace("_", "."): str(v)
                for k, v in kafka_group_options.items()
            }
            urls = {"nats": nats_url, "kafka": kafka_bootstrap, "mqtt": mqtt_url, "group": group}
            urls |= {"postgres": runtime_a.settings.db, "table": table}
            source = stream_flow(namespace, stream, urls, topic)
            assert (await b.post("/api/v1/flows", content=source, headers=YAML)).status_code == 201
            await eventually(
                lambda: _b_statuses_are(b, namespace, "RUNNING"), within=20, what="B runs them"
            )
            await eventually(
                lambda: _statuses_are(runtime_a, namespace, TriggerStatus.STANDBY),
                within=10,
                what="A stands by",
            )

            async def publish(numbers: range) -> None:
                for n in numbers:
                    body = json.dumps({"n": n}).encode()
                    await js.publish(f"{stream.lower()}.created", body)
                    await producer.send(topic, body, key=str(n).encode())
                await producer.flush()
                await asyncio.to_thread(_mqtt_publish, mqtt_url, f"{topic}/readings", numbers)
                await source_db.executemany(
                    f"INSERT INTO {table} (n) VALUES ($1)", [(n,) for n in numbers]
                )

            await publish(range(0, 10))
            for trigger_id in TRIGGERS:
                await eventually(
                    lambda t=trigger_id: _all_done(runtime_a, namespace, t, 10), what=trigger_id
                )

            # kill -9 of the holder, mid-stream: A takes the triggers over.
            await asyncio.to_thread(gateway_b.kill9)
            killed_at = time.monotonic()
            await publish(range(10, 20))
            await eventually(
                lambda: _statuses_are(runtime_a, namespace, TriggerStatus.RUNNING),
                within=30,
                what="A takes the triggers over",
            )
            takeover_s = time.monotonic() - killed_at
            print(f"trigger takeover after kill -9: {takeover_s:.2f}s (lease TTL {LEASE_S:g}s)")
            for trigger_id in TRIGGERS:
                executions = await eventually(
                    lambda t=trigger_id: _all_done(runtime_a, namespace, t, 20),
                    within=60,
                    what=f"{trigger_id}: 20 executions",
                )
                numbers = sorted(_number(e.trigger) for e in executions)
                assert numbers == list(range(20)), trigger_id  # none lost, none twice
                assert len({e.dedupe_key for e in executions}) == 20
        finally:
            await producer.stop()
            await source_db.close()
            await js.delete_stream(stream)
            await client.close()


def _number(trigger: Any) -> int:
    for key in ("data", "value", "payload"):
        if key in trigger:
            return int(trigger[key]["n"])
    raise AssertionError(trigger)


def _mqtt_publish(mqtt_url: str, topic: str, numbers: range) -> None:
    url = urlparse(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    try:
        for info in [client.publish(topic, json.dumps({"n": n}), qos=1) for n in numbers]:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


async def _revision(runtime: Runtime, namespace: str) -> int | None:
    try:
        return (await runtime.catalog.flow(namespace, "plain")).revision
    except NotFoundError:
        return None


async def _revision_is(runtime: Runtime, namespace: str, revision: int) -> bool:
    return (await runtime.catalog.flow(namespace, "plain")).revision == revision


async def _state_is(runtime: Runtime, execution_id: str, state: State) -> bool:
    return (await runtime.control.execution(execution_id)).state is state


async def _task_runs_are(runtime: Runtime, execution_id: str, states: list[State]) -> bool:
    detail = await runtime.store.execution_detail(execution_id)
    return detail is not None and [d.task_run.state for d in detail.task_runs] == states


async def _statuses_are(runtime: Runtime, namespace: str, status: TriggerStatus) -> bool:
    return all([await _status(runtime, namespace, t) is status for t in TRIGGERS])


async def _b_statuses_are(b: httpx.AsyncClient, namespace: str, status: str) -> bool:
    found = (await b.get("/api/v1/triggers")).json()["results"]
    mine = {
        t["triggerId"]: t["status"]
        for t in found
        if (t["namespace"], t["flowId"]) == (namespace, "ingest")
    }
    return mine == dict.fromkeys(TRIGGERS, status)


async def _all_done(
    runtime: Runtime, namespace: str, trigger_id: str, count: int
) -> list[Any] | None:
    executions = await _executions(runtime, namespace, trigger_id)
    assert len(executions) <= count, f"{len(executions)} executions for {count} events"
    if len(executions) == count and all(e.state is State.SUCCESS for e in executions):
        return executions
    return None
