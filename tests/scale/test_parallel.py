"""``parallelism: N`` on a realtime trigger: N listeners on N listener hosts share one
source, the source's way, and every event makes exactly one execution.

- JetStream: the listeners share one durable consumer;
- core NATS: the listeners are in one queue group;
- MQTT 5: the listeners hold one shared subscription (``$share/<group>/<filter>``).

- Kafka: the listeners are members of the trigger's consumer group and split the
  partitions (a rebalance mid-stream loses and repeats nothing).

A Postgres trigger refuses parallelism > 1.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import nats
import paho.mqtt.client as mqtt
import pytest

from actors import TRIGGER_LABEL, TriggerStatus
from flows import FlowError, State, parse_flow
from gateway._runtime import Runtime
from gateway._settings import Settings
from tests.polling import eventually
from tests.servers import RayCluster, free_port

pytestmark = pytest.mark.integration

EVENTS = 20


def parallel_flow(
    namespace: str, stream: str, subject: str, topic: str, urls: dict[str, str]
) -> str:
    return f"""\
id: fan-in
namespace: {namespace}
tasks:
  - {{id: say, type: core.Log, message: "{{{{ trigger }}}}"}}
triggers:
  - id: js
    type: nats.RealtimeTrigger
    url: {urls["nats"]}
    subject: "{stream.lower()}.>"
    stream: {stream}
    durableId: kestrel-{stream.lower()}
    deserializer: JSON
    parallelism: 2
  - id: core
    type: nats.RealtimeTrigger
    url: {urls["nats"]}
    subject: {subject}
    queueGroup: fan-in
    deserializer: JSON
    parallelism: 2
  - id: shared
    type: mqtt.RealtimeTrigger
    server: {urls["mqtt"]}
    topic: "$share/fan-in/{topic}"
    mqttVersion: V5
    qos: 1
    serdeType: JSON
    parallelism: 2
"""


@pytest.fixture
async def runtime(
    fresh_database: str, ray_cluster: RayCluster, tmp_path: Path
) -> AsyncIterator[Runtime]:
    settings = Settings(db=fresh_database, port=free_port(), flows=tmp_path, listener_hosts=2)
    started = Runtime(settings)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


async def test_parallel_listeners_on_two_hosts_exactly_once(
    runtime: Runtime, nats_url: str, mqtt_url: str
) -> None:
    namespace = f"scale.par{uuid.uuid4().hex[:8]}"
    stream = f"PAR{uuid.uuid4().hex[:8].upper()}"
    subject = f"par.{uuid.uuid4().hex[:8]}"
    topic = f"par/{uuid.uuid4().hex[:8]}"
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    try:
        await runtime.catalog.deploy(
            parallel_flow(namespace, stream, subject, topic, {"nats": nats_url, "mqtt": mqtt_url})
        )
        # Two listeners per trigger, one on each host, each RUNNING.
        hosts = runtime.hosts

        async def per_host() -> list[dict[str, TriggerStatus]] | None:
            found = await asyncio.gather(*(h.triggers.remote() for h in hosts))
            statuses = [
                {i.trigger_id: i.status for i in infos if i.namespace == namespace}
                for infos in found
            ]
            running = all(
                s == {t: TriggerStatus.RUNNING for t in ("js", "core", "shared")} for s in statuses
            )
            return statuses if running else None

        await eventually(per_host, within=30, what="two listeners per trigger, one per host")

        for n in range(EVENTS):
            body = json.dumps({"n": n}).encode()
            await js.publish(f"{stream.lower()}.created", body)
            await client.publish(subject, body)
        await client.flush()
        await asyncio.to_thread(_mqtt_publish, mqtt_url, topic, EVENTS)

        for trigger_id in ("js", "core", "shared"):
            executions = await eventually(
                lambda t=trigger_id: _done(runtime, namespace, t), what=f"{trigger_id}: {EVENTS}"
            )
            numbers = sorted(_number(e.trigger) for e in executions)
            assert numbers == list(range(EVENTS)), trigger_id  # none lost, none twice
    finally:
        await js.delete_stream(stream)
        await client.close()


def test_sources_that_cannot_share_refuse_parallelism() -> None:
    core = """\
id: f
namespace: scale.par
tasks: [{id: l, type: core.Log, message: hi}]
triggers:
  - {id: t, type: nats.RealtimeTrigger, url: "nats://127.0.0.1:4222", subject: a, parallelism: 2}
"""
    with pytest.raises(FlowError, match="queueGroup"):
        parse_flow(core, "core.yaml")
    mqtt_plain = core.replace(
        'nats.RealtimeTrigger, url: "nats://127.0.0.1:4222", subject: a',
        'mqtt.RealtimeTrigger, server: "tcp://127.0.0.1:1883", topic: a/b',
    )
    with pytest.raises(FlowError, match=r"\$share"):
        parse_flow(mqtt_plain, "mqtt.yaml")
    postgres = core.replace(
        'nats.RealtimeTrigger, url: "nats://127.0.0.1:4222", subject: a',
        'postgres.RealtimeTrigger, url: "postgresql://u@127.0.0.1/db", channel: c',
    )
    with pytest.raises(FlowError, match="one listener"):
        parse_flow(postgres, "pg.yaml")


def _number(trigger: Any) -> int:
    value = trigger.get("data", trigger.get("payload"))
    return int(value["n"])


async def _done(runtime: Runtime, namespace: str, trigger_id: str) -> list[Any] | None:
    page = await runtime.store.search_executions(
        namespace=namespace, labels={TRIGGER_LABEL: trigger_id}, limit=1000
    )
    items = list(page.items)
    assert len(items) <= EVENTS, f"{trigger_id}: {len(items)} executions for {EVENTS} events"
    if len(items) == EVENTS and all(e.state is State.SUCCESS for e in items):
        return items
    return None


def _mqtt_publish(mqtt_url: str, topic: str, count: int) -> None:
    url = urlparse(mqtt_url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    try:
        infos = [client.publish(topic, json.dumps({"n": n}), qos=1) for n in range(count)]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_kafka_group_members_on_two_hosts_exactly_once_across_the_rebalance(
    runtime: Runtime, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    """Two group members on two hosts split a 2-partition topic. Events are published
    while the second member joins (a rebalance mid-stream) and after: exactly once."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    namespace = f"scale.kpar{uuid.uuid4().hex[:8]}"
    topic = f"par-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    props = {
        "bootstrap.servers": kafka_bootstrap,
        "fetch.max.wait.ms": "5",
        "rebalance.timeout.ms": "2000",
        "max.poll.interval.ms": "10000",
    }
    props |= {
        k.replace("_ms", ".ms").replace("_", "."): str(v) for k, v in kafka_group_options.items()
    }
    source = (
        f"id: kfan\nnamespace: {namespace}\n"
        "tasks:\n  - {id: say, type: core.Log, message: hi}\n"
        f"triggers:\n  - id: k\n    type: kafka.RealtimeTrigger\n    topic: {topic}\n"
        f"    groupId: g-{topic}\n    valueDeserializer: JSON\n    parallelism: 2\n"
        f"    properties: {json.dumps(props)}\n"
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:

        async def publish(numbers: range) -> None:
            for n in numbers:
                await producer.send(topic, json.dumps({"n": n}).encode(), key=str(n).encode())
            await producer.flush()

        await runtime.catalog.deploy(source)
        await publish(range(0, 10))  # while the members join and the group rebalances
        hosts = runtime.hosts

        async def one_per_host() -> bool:
            found = await asyncio.gather(*(h.triggers.remote() for h in hosts))
            return all(
                [i.status for i in infos if i.namespace == namespace] == [TriggerStatus.RUNNING]
                for infos in found
            )

        await eventually(one_per_host, within=30, what="one group member per host")
        await publish(range(10, EVENTS))
        executions = await eventually(lambda: _done(runtime, namespace, "k"), what="kafka")
        assert sorted(int(e.trigger["value"]["n"]) for e in executions) == list(range(EVENTS))
    finally:
        await producer.stop()
