"""kafka.RealtimeTrigger's listener and kafka.Produce against the real (tansu) broker."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError

import connectors.kafka._listener as kafka_listener_module
from connectors.kafka import (
    KafkaListener,
    KafkaProduce,
    KafkaRealtimeTrigger,
    close_producers,
)
from connectors.kafka._beats import grid_tick
from flows import ConnectorError, Delivery, Event, Listener, PoisonMessage, TaskError
from tests.connectors.fakes import FakeListenerContext, FakeRunContext, Pump
from tests.polling import eventually

pytestmark = pytest.mark.integration

TIMEOUT = 15.0


# --------------------------------------------------------------------------- helpers


def offsets(deliveries: list[Delivery]) -> list[int]:
    return [d.metadata["offset"] for d in deliveries]


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def new_topic(kafka_bootstrap: str) -> Callable[..., Awaitable[str]]:
    """Create a uniquely named topic (tansu auto-creates with several partitions)."""

    async def create(partitions: int = 1, prefix: str = "kestrel-kafka") -> str:
        topic = _unique(prefix)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, replication_factor=1)])
        finally:
            await admin.close()
        return topic

    return create


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
def make_trigger(
    kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> Callable[..., KafkaRealtimeTrigger]:
    def make(**fields: Any) -> KafkaRealtimeTrigger:
        properties = {"bootstrap.servers": kafka_bootstrap}
        # tansu joins groups slowly with the default 10 s session; see tests/servers/_kafka.py.
        if "session_timeout_ms" in kafka_group_options:
            properties["session.timeout.ms"] = str(kafka_group_options["session_timeout_ms"])
            properties["heartbeat.interval.ms"] = str(kafka_group_options["heartbeat_interval_ms"])
        properties.update(fields.pop("properties", {}))
        document = {
            "id": "kafka-trigger",
            "type": "kafka.RealtimeTrigger",
            "groupId": _unique("kestrel-group"),
            "properties": properties,
            **fields,
        }
        return KafkaRealtimeTrigger.model_validate(document)

    return make


@pytest.fixture
async def listeners() -> AsyncIterator[Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]]]:
    """Create and connect listeners; every one is closed after the test."""
    opened: list[Listener] = []
    contexts: list[FakeListenerContext] = []

    async def open_listener(trigger: KafkaRealtimeTrigger) -> KafkaListener:
        contexts.append(FakeListenerContext())
        listener = trigger.create_listener(contexts[-1])
        assert isinstance(listener, KafkaListener)
        opened.append(listener)
        await listener.connect()
        return listener

    yield open_listener
    for listener in opened:
        await listener.close()
    assert [ctx.saves for ctx in contexts] == [[] for _ in contexts]  # offsets stay in Kafka


async def _send(
    producer: AIOKafkaProducer, topic: str, values: list[bytes | None], partition: int = 0
) -> None:
    for value in values:
        await producer.send_and_wait(topic, value, partition=partition)


# --------------------------------------------------------------------------- listener


async def test_event_variables_dedupe_key_and_published_at(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    sent_at = "2025-03-04T05:06:07.123456+00:00"
    await producer.send_and_wait(
        topic,
        b'{"total": 120, "items": ["a"]}',
        key=b"order-1",
        partition=0,
        timestamp_ms=1_700_000_000_123,
        headers=[("source", b"shop"), ("blob", b"\xff\x00"), ("Kestrel-Sent-At", sent_at.encode())],
    )
    await producer.send_and_wait(topic, None, key=b"k", partition=0, timestamp_ms=1_700_000_001_000)
    listener = await listeners(make_trigger(topic=topic, valueDeserializer="JSON"))
    pump = Pump(listener)
    try:
        first, second = await pump.wait_for(2)
    finally:
        await pump.stop()
    assert isinstance(first, Event)
    assert first.dedupe_key == f"kafka:{topic}:0:0"
    assert first.variables == {
        "key": "order-1",
        "value": {"total": 120, "items": ["a"]},
        "topic": topic,
        "partition": 0,
        "offset": 0,
        "timestamp": "2023-11-14T22:13:20.123Z",
        "headers": {
            "source": "shop",
            "blob": base64.b64encode(b"\xff\x00").decode(),
            "Kestrel-Sent-At": sent_at,
        },
    }
    json.dumps(first.variables)  # JSON-safe
    assert first.raw == b'{"total": 120, "items": ["a"]}'
    assert first.published_at == datetime.fromisoformat(sent_at)  # the header is more precise
    assert isinstance(second, Event)
    assert second.dedupe_key == f"kafka:{topic}:0:1"
    assert second.variables["value"] is None and second.variables["key"] == "k"
    assert second.variables["headers"] == {}
    assert second.published_at == datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)


async def test_poison_message_does_not_stop_the_listener(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    await _send(producer, topic, [b'{"n": 1}', b"{not json", b'{"n": 3}'])
    listener = await listeners(
        make_trigger(
            topic=topic, partitions=[0], valueDeserializer="JSON", keyDeserializer="INTEGER"
        )
    )
    pump = Pump(listener)
    try:
        deliveries = await pump.wait_for(3)
    finally:
        await pump.stop()
    good, poison, after = deliveries
    assert isinstance(good, Event) and good.variables["value"] == {"n": 1}
    assert isinstance(poison, PoisonMessage)
    assert "JSON" in poison.reason and poison.raw == b"{not json"
    assert poison.metadata["offset"] == 1 and poison.metadata["topic"] == topic
    assert isinstance(after, Event) and after.variables["value"] == {"n": 3}
    for delivery in deliveries:
        await listener.ack(delivery)


async def test_resumes_after_the_acked_records(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    await _send(producer, topic, [b"m%d" % i for i in range(10)])
    trigger = make_trigger(topic=topic)
    listener = await listeners(trigger)
    pump = Pump(listener)
    deliveries = await pump.wait_for(10)
    assert offsets(deliveries) == list(range(10))
    for delivery in reversed(deliveries):  # out of order on purpose
        await listener.ack(delivery)
    await pump.stop()
    await listener.close()

    await _send(producer, topic, [b"m10"])
    again = await listeners(trigger)  # same group
    pump = Pump(again)
    try:
        (first,) = await pump.wait_for(1)
    finally:
        await pump.stop()
    assert offsets([first]) == [10]
    assert first.dedupe_key == f"kafka:{topic}:0:10"


async def test_commits_only_the_contiguous_acked_prefix(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    await _send(producer, topic, [b"m%d" % i for i in range(10)])
    trigger = make_trigger(topic=topic)
    listener = await listeners(trigger)
    pump = Pump(listener)
    deliveries = await pump.wait_for(10)
    acked = [deliveries[i] for i in (0, 1, 2, 3, 4, 7)]
    random.shuffle(acked)
    await asyncio.gather(*(listener.ack(d) for d in acked))  # concurrently, out of order
    await pump.stop()
    await listener.close()

    again = await listeners(trigger)
    pump = Pump(again)
    try:
        redelivered = await pump.wait_for(5)
    finally:
        await pump.stop()
    assert offsets(redelivered) == [5, 6, 7, 8, 9]  # 7 again: 5 and 6 were not durable


async def test_unacked_records_come_again_after_reconnect(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    await _send(producer, topic, [b"a", b"b", b"c"])
    listener = await listeners(make_trigger(topic=topic))
    pump = Pump(listener)
    first = await pump.wait_for(3)
    await listener.ack(first[0])
    await listener.close()  # while `events` is being iterated: the iteration ends
    assert await pump.ended() is None
    await listener.close()  # idempotent

    await listener.connect()  # the same object, as the host does after a failure
    await listener.ack(first[1])  # an ack from before the close is ignored
    pump = Pump(listener)
    try:
        second = await pump.wait_for(2)
    finally:
        await pump.stop()
    assert [d.dedupe_key for d in second] == [d.dedupe_key for d in first[1:]]


async def test_rebalance_hands_over_from_the_last_contiguous_ack(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic(partitions=2)
    for partition in (0, 1):
        await _send(producer, topic, [b"m%d" % i for i in range(4)], partition)
    trigger = make_trigger(topic=topic)
    first = await listeners(trigger)
    first_pump = Pump(first)
    second_pump: Pump | None = None
    try:
        before = await first_pump.wait_for(8)
        for delivery in before:
            if delivery.metadata["partition"] == 0 or delivery.metadata["offset"] < 2:
                await first.ack(delivery)
        second = await listeners(trigger)  # same group: the partitions are shared out again
        second_pump = Pump(second)
        for partition in (0, 1):
            await _send(producer, topic, [b"m4"], partition)
        # Revoked: partition 1 is committed up to 2, so whoever owns it reads 2, 3, 4 again.
        pumps = (first_pump, second_pump)
        await eventually(
            lambda: len(pumps[0].items) + len(pumps[1].items) >= 8 + 4,
            TIMEOUT,
            what="the revoked partition to be read again",
        )
        after = first_pump.items[8:] + second_pump.items
    finally:
        await first_pump.stop()
        if second_pump is not None:
            await second_pump.stop()
    places = sorted((d.metadata["partition"], d.metadata["offset"]) for d in after)
    assert places == [(0, 4), (1, 2), (1, 3), (1, 4)]


async def test_backpressure_pauses_at_max_in_flight(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic(partitions=2)
    for partition in (0, 1):
        await _send(producer, topic, [b"p%d-%d" % (partition, i) for i in range(6)], partition)
    listener = await listeners(make_trigger(topic=topic, maxInFlight=5))
    pump = Pump(listener)
    try:
        held = await pump.wait_for(5)
        # An observation window, not a synchronisation: several poll cycles pass.
        await asyncio.sleep(1.5)
        assert len(pump.items) == 5
        await listener.ack(held[0])
        await listener.ack(held[1])
        await pump.wait_for(7)
        await asyncio.sleep(0.5)
        assert len(pump.items) == 7
        for delivery in list(pump.items):
            await listener.ack(delivery)
        everything = await pump.wait_for(12)
        assert len({d.dedupe_key for d in everything}) == 12
    finally:
        await pump.stop()
    for partition in (0, 1):  # each partition in order
        mine = [d for d in everything if d.metadata["partition"] == partition]
        assert offsets(mine) == list(range(6))


async def test_manual_partitions_and_commit(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic(partitions=2)
    await _send(producer, topic, [b"zero"], partition=0)
    await _send(producer, topic, [b"one-a", b"one-b"], partition=1)
    trigger = make_trigger(topic=topic, partitions=[1])
    listener = await listeners(trigger)
    pump = Pump(listener)
    deliveries = await pump.wait_for(2)
    assert [d.variables["value"] for d in deliveries] == ["one-a", "one-b"]
    assert {d.variables["partition"] for d in deliveries} == {1}
    await listener.ack(deliveries[0])
    await pump.stop()
    await listener.close()

    again = await listeners(trigger)
    pump = Pump(again)
    try:
        (only,) = await pump.wait_for(1)
    finally:
        await pump.stop()
    assert only.variables["value"] == "one-b"


async def test_topic_pattern(
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    prefix = _unique("kestrel-pattern")
    matching = [await new_topic(prefix=prefix), await new_topic(prefix=prefix)]
    await _send(producer, matching[0], [b"first"])
    await _send(producer, matching[1], [b"second"])
    listener = await listeners(make_trigger(topicPattern=f"{prefix}-.*"))
    pump = Pump(listener)
    try:
        deliveries = await pump.wait_for(2)
    finally:
        await pump.stop()
    assert {d.variables["topic"] for d in deliveries} == set(matching)


async def test_since_applies_only_to_a_group_without_commits(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    await _send(producer, topic, [b"m%d" % i for i in range(4)])
    since = datetime.now(UTC) - timedelta(hours=1)
    probe = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await probe.start()
    try:
        tp = TopicPartition(topic, 0)
        found = await probe.offsets_for_times({tp: int(since.timestamp() * 1000)})
    finally:
        await probe.stop()
    expected = found[tp].offset if found.get(tp) else None
    assert expected is not None
    # LATEST would start after m3: only the seek to `since` delivers the records.
    trigger = make_trigger(topic=topic, since=since.isoformat(), autoOffsetReset="LATEST")
    listener = await listeners(trigger)
    pump = Pump(listener)
    deliveries = await pump.wait_for(4 - expected)
    assert offsets(deliveries) == list(range(expected, 4))
    await listener.ack(deliveries[0])
    await pump.stop()
    await listener.close()

    again = await listeners(trigger)  # the group has a commit now: since is ignored
    pump = Pump(again)
    try:
        resumed = await pump.wait_for(3 - expected)
    finally:
        await pump.stop()
    assert offsets(resumed) == list(range(expected + 1, 4))


async def test_configuration_errors(
    make_trigger: Callable[..., KafkaRealtimeTrigger], unused_tcp_port: int
) -> None:
    trigger = make_trigger(topic="x", properties={"foo.bar": "1", "fetch.max.wait.ms": "5"})
    with pytest.raises(ConnectorError, match=r"'foo\.bar'"):
        trigger.create_listener(FakeListenerContext())
    bad_value = make_trigger(topic="x", properties={"max.poll.records": "many"})
    with pytest.raises(ConnectorError, match=r"max\.poll\.records"):
        bad_value.create_listener(FakeListenerContext())

    nowhere = make_trigger(
        topic="x", properties={"bootstrap.servers": f"127.0.0.1:{unused_tcp_port}"}
    )
    ctx = FakeListenerContext()
    listener = nowhere.create_listener(ctx)
    with pytest.raises(ConnectorError, match="cannot consume from Kafka"):
        await listener.connect()
    await listener.close()
    assert ctx.saves == []  # Kafka keeps its offsets in the broker


# --------------------------------------------------------------------------- produce


@pytest.fixture
async def produce_task(kafka_bootstrap: str) -> AsyncIterator[Callable[..., KafkaProduce]]:
    def make(**fields: Any) -> KafkaProduce:
        document = {
            "id": "produce",
            "type": "kafka.Produce",
            "properties": {"bootstrap.servers": kafka_bootstrap, "acks": "all"},
            "transactional": False,  # tansu does not implement Kafka transactions
            **fields,
        }
        return KafkaProduce.model_validate(document)

    yield make
    await close_producers()


async def _consume_raw(bootstrap: str, topic: str, partitions: int, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        records: list[Any] = []
        deadline = time.monotonic() + TIMEOUT
        while len(records) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(r for rs in batch.values() for r in rs)
        return records
    finally:
        await consumer.stop()


async def test_produce_round_trip(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    produce_task: Callable[..., KafkaProduce],
) -> None:
    topic = await new_topic(partitions=2)
    task = produce_task(
        topic=topic,
        keySerializer="STRING",
        valueSerializer="JSON",
        **{
            "from": [
                {
                    "key": "k1",
                    "value": {"total": 5},
                    "headers": {"h": "v"},
                    "partition": 1,
                    "timestamp": "2024-01-02T03:04:05.678Z",
                },
                {
                    "key": "k2",
                    "value": '{"already": "json"}',
                    "partition": 0,
                    "timestamp": 1_700_000_000_000,
                },
                {"key": "gone", "value": None, "partition": 0},
            ]
        },
    )
    ctx = FakeRunContext()
    assert await task.run(ctx) == {"messagesCount": 3}
    # The same properties reuse the cached producer.
    single = produce_task(topic=topic, value=7, partition=1, valueSerializer="INTEGER")
    assert await single.run(ctx) == {"messagesCount": 1}
    rendered = produce_task(topic=topic, **{"from": '[{"value": "text", "partition": 0}]'})
    assert await rendered.run(ctx) == {"messagesCount": 1}

    records = await _consume_raw(kafka_bootstrap, topic, 2, 5)
    by_place = {(r.partition, r.offset): r for r in records}
    first = by_place[(1, 0)]
    assert (first.key, first.value) == (b"k1", b'{"total":5}')
    assert list(first.headers) == [("h", b"v")]
    assert first.timestamp == int(
        datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC).timestamp() * 1000
    )
    second = by_place[(0, 0)]
    assert (second.key, second.value, second.timestamp) == (
        b"k2",
        b'{"already": "json"}',
        1_700_000_000_000,
    )
    assert by_place[(0, 1)].value is None  # tombstone
    assert by_place[(1, 1)].value == struct.pack(">i", 7)  # Kafka's IntegerSerializer layout
    assert by_place[(0, 2)].value == b"text"


@pytest.mark.parametrize(
    ("serde", "value", "wire"),
    [
        ("STRING", "héllo", "héllo".encode()),
        ("JSON", {"a": [1, 2]}, b'{"a":[1,2]}'),
        ("BYTES", base64.b64encode(b"\x00\xff").decode(), b"\x00\xff"),
        ("SHORT", -300, struct.pack(">h", -300)),
        ("INTEGER", 123456, struct.pack(">i", 123456)),
        ("LONG", 2**40, struct.pack(">q", 2**40)),
        ("FLOAT", 0.25, struct.pack(">f", 0.25)),
        ("DOUBLE", 1.5, struct.pack(">d", 1.5)),
        ("UUID", "7d444840-9dc0-11d1-b245-5ffdce74fad2", b"7d444840-9dc0-11d1-b245-5ffdce74fad2"),
        ("VOID", None, None),
    ],
)
async def test_serde_round_trip_through_the_broker(
    serde: str,
    value: Any,
    wire: bytes | None,
    new_topic: Callable[..., Awaitable[str]],
    produce_task: Callable[..., KafkaProduce],
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    topic = await new_topic()
    key_serde, key = ("STRING", "k") if serde == "VOID" else (serde, value)  # aiokafka needs one
    task = produce_task(
        topic=topic, key=key, value=value, keySerializer=key_serde, valueSerializer=serde
    )
    assert await task.run(FakeRunContext()) == {"messagesCount": 1}
    listener = await listeners(
        make_trigger(
            topic=topic, partitions=[0], keyDeserializer=key_serde, valueDeserializer=serde
        )
    )
    pump = Pump(listener)
    try:
        (event,) = await pump.wait_for(1)
    finally:
        await pump.stop()
    assert isinstance(event, Event)
    assert event.raw == (wire or b"")
    assert event.variables["value"] == value
    assert event.variables["key"] == key


async def test_produce_errors(produce_task: Callable[..., KafkaProduce]) -> None:
    with pytest.raises(TaskError, match="not a valid INTEGER") as bad_value:
        await produce_task(topic="t", value="abc", valueSerializer="INTEGER").run(FakeRunContext())
    assert not bad_value.value.retriable
    with pytest.raises(TaskError, match="neither a key nor a value"):
        await produce_task(topic="t", value=None).run(FakeRunContext())
    unknown = produce_task(
        topic="t", value="x", properties={"bootstrap.servers": "127.0.0.1:1", "linger": "5"}
    )
    with pytest.raises(TaskError, match=r"'linger'") as bad_property:
        await unknown.run(FakeRunContext())
    assert not bad_property.value.retriable


async def test_transactional_produce_works_or_says_how_to_opt_out(
    kafka_bootstrap: str,
    new_topic: Callable[..., Awaitable[str]],
    produce_task: Callable[..., KafkaProduce],
) -> None:
    topic = await new_topic()
    task = produce_task(topic=topic, value="v", transactional=True)  # Kestra's default
    try:
        outputs = await task.run(FakeRunContext())
    except TaskError as exc:  # tansu has no transactions
        assert "set transactional: false" in str(exc)
    else:
        assert outputs == {"messagesCount": 1}
        (record,) = await _consume_raw(kafka_bootstrap, topic, 1, 1)
        assert record.value == b"v"


# --------------------------------------------------------------------------- idle watch


async def _until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    await eventually(condition, timeout, what=what)


def _covered(listener: KafkaListener) -> bool:
    session = listener._session
    return session is not None and session.parking is not None and bool(session.watch_paused)


async def test_idle_listeners_share_one_watch_and_each_gets_its_records(
    monkeypatch: pytest.MonkeyPatch,
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    monkeypatch.setattr(kafka_listener_module, "IDLE_AFTER_S", 0.2)
    topic = await new_topic(partitions=2)
    first = await listeners(make_trigger(topic=topic, autoOffsetReset="LATEST"))
    second = await listeners(make_trigger(topic=topic, autoOffsetReset="LATEST"))
    pumps = [Pump(first), Pump(second)]
    try:
        await _until(lambda: _covered(first) and _covered(second), "both listeners parked")
        assert first._session is not None and second._session is not None
        watch = first._session.watch
        assert watch is not None and watch is second._session.watch
        assert watch.parked == 2
        # Parked: the consumers' own fetchers wait (their partitions are paused).
        assert first._session.consumer.paused() == first._session.watch_paused
        await _send(producer, topic, [b"a"], partition=1)
        for pump in pumps:
            (delivery,) = await pump.take(1)
            assert isinstance(delivery, Event) and delivery.raw == b"a"
            assert delivery.dedupe_key == f"kafka:{topic}:1:0"
        # One listener closing while parked leaves the other parked and delivering.
        await _until(lambda: _covered(first) and _covered(second), "both parked again")
        await first.close()
        await pumps[0].task
        assert watch.parked == 1 and watch.users == 1
        await _until(lambda: _covered(second), "the other still parked")
        await _send(producer, topic, [b"b"], partition=0)
        delivery = await pumps[1].get()
        assert isinstance(delivery, Event) and delivery.raw == b"b"
        assert pumps[0].drain() == []
    finally:
        for pump in pumps:
            await pump.stop()


async def test_parked_listener_commits_and_resumes_after_acks(
    monkeypatch: pytest.MonkeyPatch,
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    monkeypatch.setattr(kafka_listener_module, "IDLE_AFTER_S", 0.2)
    topic = await new_topic()
    trigger = make_trigger(topic=topic, partitions=[0], maxInFlight=1)
    listener = await listeners(trigger)
    pump = Pump(listener)
    try:
        for n, value in enumerate([b"1", b"2"]):
            await _until(lambda: _covered(listener), "the listener parked")
            await _send(producer, topic, [value])
            delivery = await pump.get()
            assert delivery.metadata["offset"] == n
            await listener.ack(delivery)  # maxInFlight 1: the next needs this ack
    finally:
        await pump.stop()
    await listener.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=trigger.properties["bootstrap.servers"],
                                group_id=trigger.group_id)  # fmt: skip
    await consumer.start()
    try:
        assert await consumer.committed(TopicPartition(topic, 0)) == 2  # commit-after-persist
    finally:
        await consumer.stop()


def _membership(listener: KafkaListener) -> tuple[int, str]:
    """The consumer's group generation and member id (a new one after any rejoin)."""
    assert listener._session is not None
    coordinator = listener._session.consumer._coordinator
    return coordinator.generation, coordinator.member_id


async def test_parked_consumers_heartbeat_over_the_watch_and_keep_their_membership(
    monkeypatch: pytest.MonkeyPatch,
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    monkeypatch.setattr(kafka_listener_module, "IDLE_AFTER_S", 0.2)
    topic = await new_topic()
    first = await listeners(make_trigger(topic=topic, autoOffsetReset="EARLIEST"))
    second = await listeners(make_trigger(topic=topic, autoOffsetReset="EARLIEST"))
    pumps = [Pump(first), Pump(second)]
    try:
        await _send(producer, topic, [b"a"])
        for pump in pumps:  # both joined their groups
            assert (await pump.get()).raw == b"a"
        await _until(lambda: _covered(first) and _covered(second), "both listeners parked")
        assert first._session is not None and first._session.watch is not None
        beats = first._session.watch.heartbeats
        joined = [_membership(first), _membership(second)]
        sent = beats.sent
        # Heartbeats enough to outlive several sessions go the shared way, fewer writes
        # than heartbeats; the broker takes them as the members' own (no rejoin).
        session_s = float(first._trigger.properties.get("session.timeout.ms", "10000")) / 1000
        interval_s = float(first._trigger.properties.get("heartbeat.interval.ms", "3000")) / 1000
        enough = sent + 2 * 2 * round(session_s / interval_s)
        await eventually(lambda: beats.sent >= enough, 4 * session_s + TIMEOUT,
                         what=f"{enough} shared heartbeats")  # fmt: skip
        assert beats.writes < beats.sent
        assert [_membership(first), _membership(second)] == joined
        await _send(producer, topic, [b"b"])
        for pump in pumps:
            assert (await pump.get()).raw == b"b"
    finally:
        for pump in pumps:
            await pump.stop()


async def test_heartbeats_go_alone_when_the_shared_way_fails(
    monkeypatch: pytest.MonkeyPatch,
    new_topic: Callable[..., Awaitable[str]],
    producer: AIOKafkaProducer,
    make_trigger: Callable[..., KafkaRealtimeTrigger],
    listeners: Callable[[KafkaRealtimeTrigger], Awaitable[KafkaListener]],
) -> None:
    monkeypatch.setattr(kafka_listener_module, "IDLE_AFTER_S", 0.2)
    topic = await new_topic()
    listener = await listeners(make_trigger(topic=topic, autoOffsetReset="EARLIEST"))
    pump = Pump(listener)
    try:
        await _send(producer, topic, [b"a"])
        assert (await pump.get()).raw == b"a"
        await _until(lambda: _covered(listener), "the listener parked")
        assert listener._session is not None and listener._session.watch is not None
        beats = listener._session.watch.heartbeats
        joined = _membership(listener)
        tries: list[int] = []

        async def broken() -> Any:
            tries.append(1)
            raise KafkaConnectionError("shared connection lost")

        beats._client = broken
        session_s = float(listener._trigger.properties.get("session.timeout.ms", "10000")) / 1000
        # Two failures, each pausing the shared way: the heartbeats meanwhile go alone.
        await eventually(lambda: len(tries) >= 2, 4 * 5.0 + TIMEOUT, what="two failed tries")
        assert _membership(listener) == joined
        await _send(producer, topic, [b"b"])
        delivery = await pump.get(session_s + TIMEOUT)
        assert delivery.raw == b"b" and _membership(listener) == joined
    finally:
        await pump.stop()


def test_the_heartbeat_grid_cuts_the_interval_in_whole_ticks() -> None:
    # Whole ticks: a heartbeat round that starts on a grid point starts the next one on a
    # grid point too, so idle consumers keep waking together.
    for interval in (0.4, 2.0, 3.0, 4.5, 10.0, 45.0):
        tick = grid_tick(interval)
        assert tick <= min(1.0, interval / 4) + 1e-9
        assert abs(interval / tick - round(interval / tick)) < 1e-9
