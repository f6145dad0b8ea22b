"""One real round trip against each test server the fixtures provide."""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import nats
import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from nats.js.api import StorageType
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.servers import RayCluster, parse_mqtt_url

pytestmark = pytest.mark.integration

TIMEOUT = 15.0


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --------------------------------------------------------------------------- postgres


async def test_postgres_insert_select(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database, timeout=TIMEOUT)
    try:
        # A fresh database has no tables from other tests.
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname='public'") == 0
        assert fresh_database.endswith("/" + await conn.fetchval("SELECT current_database()"))
        await conn.execute("CREATE TABLE smoke (id uuid PRIMARY KEY, body text NOT NULL)")
        row_id = uuid.uuid4()
        await conn.execute("INSERT INTO smoke (id, body) VALUES ($1, $2)", row_id, "hello")
        assert await conn.fetchval("SELECT body FROM smoke WHERE id = $1", row_id) == "hello"
    finally:
        await conn.close()


# --------------------------------------------------------------------------- kafka


async def _consume_one(
    bootstrap: str, topic: str, group: str, options: dict[str, int]
) -> tuple[bytes | None, int]:
    """Join ``group``, read one record, commit it; return (value, offset)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), TIMEOUT)
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, record.partition))
        assert committed == record.offset + 1
        return record.value, record.offset
    finally:
        await consumer.stop()


async def test_kafka_produce_consume_and_commit(
    kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = _unique("kestrel-smoke")
    group = _unique("kestrel-smoke-group")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"first", key=b"k")
        assert await _consume_one(kafka_bootstrap, topic, group, kafka_group_options) == (
            b"first",
            0,
        )
        # The committed offset survives the consumer: the group resumes after "first".
        await producer.send_and_wait(topic, b"second", key=b"k")
        assert await _consume_one(kafka_bootstrap, topic, group, kafka_group_options) == (
            b"second",
            1,
        )
    finally:
        await producer.stop()


# --------------------------------------------------------------------------- nats


async def test_nats_publish_subscribe_and_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        subject = _unique("kestrel.smoke").replace("-", ".")
        sub = await nc.subscribe(subject)
        await nc.publish(subject, b"hello")
        msg = await sub.next_msg(timeout=TIMEOUT)
        assert msg.data == b"hello"
        await sub.unsubscribe()

        js = nc.jetstream()
        stream = _unique("KESTREL_SMOKE").replace("-", "_")
        await js.add_stream(name=stream, subjects=[f"{subject}.js"], storage=StorageType.FILE)
        try:
            ack = await js.publish(f"{subject}.js", b"persisted", timeout=TIMEOUT)
            assert (ack.stream, ack.seq) == (stream, 1)
            stored = await js.get_msg(stream, seq=1)
            assert stored.data == b"persisted"
        finally:
            await js.delete_stream(stream)
    finally:
        await nc.close()


# --------------------------------------------------------------------------- mqtt


@contextmanager
def _mqtt_client(
    url: str, client_id: str, *, clean_session: bool = True
) -> Iterator[tuple[mqtt.Client, queue.Queue[mqtt.MQTTMessage], dict[str, Any]]]:
    """A connected paho v2 client with its network loop running; messages go to a queue."""
    host, port = parse_mqtt_url(url)
    messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    state: dict[str, Any] = {}
    connected = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )

    def on_connect(
        _c: mqtt.Client, _u: object, flags: Any, reason: ReasonCode, _p: Properties | None
    ) -> None:
        state["reason"] = reason
        state["session_present"] = flags.session_present
        connected.set()

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        messages.put(message)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        assert connected.wait(TIMEOUT), f"no CONNACK from {url}"
        assert not state["reason"].is_failure, state["reason"]
        yield client, messages, state
    finally:
        client.disconnect()
        client.loop_stop()


def _subscribe(client: mqtt.Client, topic: str) -> None:
    done = threading.Event()
    client.on_subscribe = lambda *_args: done.set()
    result, _mid = client.subscribe(topic, qos=1)
    assert result == mqtt.MQTT_ERR_SUCCESS
    assert done.wait(TIMEOUT), "no SUBACK"


def _publish(url: str, topic: str, payload: bytes) -> None:
    with _mqtt_client(url, _unique("kestrel-pub")) as (publisher, _messages, _state):
        publisher.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)


def test_mqtt_publish_subscribe(mqtt_url: str) -> None:
    topic = f"kestrel/smoke/{uuid.uuid4().hex}"
    with _mqtt_client(mqtt_url, _unique("kestrel-sub")) as (subscriber, messages, _state):
        _subscribe(subscriber, topic)
        _publish(mqtt_url, topic, b"hello")
        message = messages.get(timeout=TIMEOUT)
        assert (message.topic, message.payload) == (topic, b"hello")


def test_mqtt_persistent_session_queues_while_offline(mqtt_url: str) -> None:
    topic = f"kestrel/smoke/{uuid.uuid4().hex}"
    client_id = _unique("kestrel-durable")
    with _mqtt_client(mqtt_url, client_id, clean_session=False) as (subscriber, _m, _s):
        _subscribe(subscriber, topic)
    _publish(mqtt_url, topic, b"while-offline")
    with _mqtt_client(mqtt_url, client_id, clean_session=False) as (_client, messages, state):
        assert state["session_present"], "broker did not keep the persistent session"
        message = messages.get(timeout=TIMEOUT)
        assert (message.topic, message.payload) == (topic, b"while-offline")
    # Leave nothing behind on a shared broker: a clean connect discards the session.
    with _mqtt_client(mqtt_url, client_id, clean_session=True):
        pass


# --------------------------------------------------------------------------- ray


def _double(value: int) -> int:
    return 2 * value


def test_ray_remote_task(ray_cluster: RayCluster) -> None:
    import ray

    @ray.remote
    def add(a: int, b: int) -> int:
        return a + b

    assert ray_cluster.address
    assert ray.get(add.remote(2, 3), timeout=120) == 5
    # Module-level functions are pickled by reference: workers must import tests.* too.
    assert ray.get(ray.remote(_double).remote(21), timeout=120) == 42
