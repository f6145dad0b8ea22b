"""MQTT connector against a real broker (mosquitto): the listener and the publish task."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from connectors.mqtt import (
    MqttListener,
    MqttPublish,
    MqttRealtimeTrigger,
    close_publish_clients,
    default_client_id,
)
from flows import ConnectorError, Delivery, Event, PoisonMessage, TaskError
from tests.connectors.fakes import FakeListenerContext, FakeRunContext, Pump
from tests.servers import parse_mqtt_url
from tests.servers._process import LOOPBACK, ServerSpec, require_port_open, run_server

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class RawClient:
    """A plain paho client with its own network thread, for publishing and checking."""

    def __init__(self, url: str, *, v5: bool = False) -> None:
        host, port = parse_mqtt_url(url)
        self.messages: list[paho.MQTTMessage] = []
        self._got = threading.Condition()
        self._ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"raw-{uuid.uuid4().hex[:12]}",
            protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        )
        self.client.on_connect = lambda *_a: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        assert self._ready.wait(TIMEOUT), "raw client: no CONNACK"

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        with self._got:
            self.messages.append(message)
            self._got.notify_all()

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        user: dict[str, str] | None = None,
    ) -> None:
        properties = None
        if user:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = list(user.items())
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published()

    def subscribe(self, topic: str, qos: int = 2) -> None:
        done = threading.Event()
        self.client.on_subscribe = lambda *_a: done.set()
        self.client.subscribe(topic, qos=qos)
        assert done.wait(TIMEOUT), "raw client: no SUBACK"

    def wait_for(self, count: int) -> list[paho.MQTTMessage]:
        with self._got:
            assert self._got.wait_for(lambda: len(self.messages) >= count, TIMEOUT)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def raw(mqtt_url: str) -> Iterator[RawClient]:
    client = RawClient(mqtt_url, v5=True)
    yield client
    client.close()


@pytest.fixture
def base() -> str:
    return f"kestrel/test/{uuid.uuid4().hex}"


def make_trigger(url: str, topic: str | list[str], **extra: Any) -> MqttRealtimeTrigger:
    return MqttRealtimeTrigger.model_validate(
        {"id": "on-message", "type": "mqtt.RealtimeTrigger", "server": url, "topic": topic, **extra}
    )


@contextlib.asynccontextmanager
async def listening(
    trigger: MqttRealtimeTrigger, ctx: FakeListenerContext
) -> AsyncIterator[tuple[MqttListener, Pump]]:
    listener = trigger.create_listener(ctx)
    assert isinstance(listener, MqttListener)
    await listener.connect()
    pump = Pump(listener)
    try:
        yield listener, pump
    finally:
        await pump.stop()
        await listener.close()


def events(deliveries: list[Delivery]) -> list[Event]:
    assert all(isinstance(d, Event) for d in deliveries), deliveries
    return [d for d in deliveries if isinstance(d, Event)]


async def ack_all(listener: MqttListener, deliveries: Sequence[Delivery]) -> None:
    for delivery in deliveries:
        await listener.ack(delivery)


# --------------------------------------------------------------------------- round trips


async def test_v311_round_trip_with_wildcards(mqtt_url: str, raw: RawClient, base: str) -> None:
    trigger = make_trigger(mqtt_url, [f"{base}/+/temp", f"{base}/alarm/#"], version="V3")
    ctx = FakeListenerContext("tests.mqtt", trigger_id="on-message")
    async with listening(trigger, ctx) as (listener, pump):
        assert listener.client_id == default_client_id(ctx.namespace, ctx.flow_id, "on-message")
        raw.publish(f"{base}/room1/temp", json.dumps({"t": 21.5}))
        raw.publish(f"{base}/other", "not matched")
        raw.publish(f"{base}/alarm/door/1", json.dumps([1, "two"]))
        got = events(await pump.take(2))
        assert await pump.quiet() == []
        first, second = got
        assert first.variables == {
            "id": first.variables["id"],
            "topic": f"{base}/room1/temp",
            "qos": 1,
            "retain": False,
            "properties": {},
            "payload": {"t": 21.5},
        }
        assert isinstance(first.variables["id"], int) and first.variables["id"] > 0
        assert second.variables["topic"] == f"{base}/alarm/door/1"
        assert second.variables["payload"] == [1, "two"]
        assert first.raw == b'{"t": 21.5}'
        keys = {e.dedupe_key for e in got}
        assert len(keys) == 2 and all(k and k.startswith("mqtt:") for k in keys)
        assert first.published_at is None and first.received_at.tzinfo is not None
        json.dumps([e.variables for e in got])  # JSON-safe
        await ack_all(listener, got)


async def test_v5_round_trip_properties_and_serdes(
    mqtt_url: str, raw: RawClient, base: str
) -> None:
    sent_at = "2024-05-01T12:00:00.123456+00:00"
    raw.publish(f"{base}/retained", json.dumps({"kept": True}), retain=True)
    trigger = make_trigger(mqtt_url, f"{base}/#", mqttVersion="V5")
    async with listening(trigger, FakeListenerContext()) as (listener, pump):
        [retained] = events(await pump.take(1))
        assert retained.variables["retain"] is True
        assert retained.variables["payload"] == {"kept": True}
        raw.publish(f"{base}/a", json.dumps({"n": 1}), user={"Kestrel-Sent-At": sent_at, "k": "v"})
        raw.publish(f"{base}/b", json.dumps({"n": 2}), user={"Kestrel-Msg-Id": "order-42"})
        raw.publish(f"{base}/c", json.dumps({"n": 3}), qos=0)
        props, with_id, qos0 = events(await pump.take(3))
        assert props.variables["properties"] == {"Kestrel-Sent-At": sent_at, "k": "v"}
        assert props.published_at == dt.datetime.fromisoformat(sent_at)
        assert with_id.dedupe_key == f"mqtt:msg:{base}/b:order-42"
        assert qos0.variables["qos"] == 0 and qos0.dedupe_key is None
        assert qos0.variables["id"] == 0
        await ack_all(listener, [retained, props, with_id, qos0])
    raw.publish(f"{base}/retained", b"", retain=True)  # clear it

    serdes: list[tuple[str, bytes | str, str]] = [
        ("STRING", "plain text", "plain text"),
        ("BYTES", b"\x00\xffbin", base64.b64encode(b"\x00\xffbin").decode()),
    ]
    for serde, payload, expected in serdes:
        trigger = make_trigger(mqtt_url, f"{base}/{serde}", version="5", serdeType=serde)
        async with listening(trigger, FakeListenerContext()) as (listener, pump):
            raw.publish(f"{base}/{serde}", payload)
            [event] = events(await pump.take(1))
            assert event.variables["payload"] == expected
            await listener.ack(event)


# --------------------------------------------------------------------------- sessions


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_persistent_session_gets_what_was_published_while_down(
    mqtt_url: str, raw: RawClient, base: str, version: str
) -> None:
    ctx = FakeListenerContext()
    trigger = make_trigger(mqtt_url, f"{base}/#", version=version, qos=1)
    async with listening(trigger, ctx):
        pass  # subscribed; the session stays on the broker
    for i in range(10):
        raw.publish(f"{base}/m", json.dumps({"i": i}))
    async with listening(trigger, ctx) as (listener, pump):
        got = events(await pump.take(10))
        assert [e.variables["payload"]["i"] for e in got] == list(range(10))
        await ack_all(listener, got)
        assert await pump.quiet() == []
    assert len(ctx.saves) == 1  # the subscription, once; nothing was left unacked


@pytest.mark.parametrize(
    ("version", "qos", "same_object"), [("V3", 1, False), ("V5", 1, True), ("V5", 2, False)]
)
async def test_unacked_deliveries_come_again_with_their_keys(
    mqtt_url: str, raw: RawClient, base: str, version: str, qos: int, same_object: bool
) -> None:
    ctx = FakeListenerContext()
    trigger = make_trigger(mqtt_url, f"{base}/#", version=version, qos=qos)
    listener = trigger.create_listener(ctx)
    assert isinstance(listener, MqttListener)
    await listener.connect()
    pump = Pump(listener)
    for i in range(3):
        raw.publish(f"{base}/m", json.dumps({"i": i}), qos=qos)
    first = events(await pump.take(3))
    assert {e.variables["qos"] for e in first} == {1}  # QoS 2 is subscribed as 1
    await listener.ack(first[0])
    await pump.stop()
    await listener.close()
    await listener.close()  # idempotent
    await listener.ack(first[1])  # an ack after close sends nothing: it comes again

    if not same_object:  # the host makes a new listener per reconnect
        listener = trigger.create_listener(ctx)
        assert isinstance(listener, MqttListener)
    await listener.connect()
    pump = Pump(listener)
    again = events(await pump.take(2))
    assert await pump.quiet() == []
    assert [e.variables["payload"]["i"] for e in again] == [1, 2]
    assert [e.variables["id"] for e in again] == [e.variables["id"] for e in first[1:]]
    assert [e.metadata["dup"] for e in again] == [True, True]
    assert [e.dedupe_key for e in again] == [e.dedupe_key for e in first[1:]]
    await ack_all(listener, again)
    await pump.stop()
    await listener.close()

    async with listening(trigger, ctx) as (listener, pump):  # acked: never again
        raw.publish(f"{base}/m", json.dumps({"i": 3}), qos=qos)
        [last] = events(await pump.take(1))
        assert last.variables["payload"] == {"i": 3}
        assert last.dedupe_key not in {e.dedupe_key for e in first}
        await listener.ack(last)
        assert await pump.quiet() == []


async def test_identical_messages_get_distinct_keys(
    mqtt_url: str, raw: RawClient, base: str
) -> None:
    async with listening(make_trigger(mqtt_url, base), FakeListenerContext()) as (listener, pump):
        for _ in range(3):
            raw.publish(base, b'"same"')
        got = events(await pump.take(3))
        assert len({e.dedupe_key for e in got}) == 3
        await ack_all(listener, got)


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_retained_once_and_topic_changes_follow_the_flow(
    mqtt_url: str, raw: RawClient, base: str, version: str
) -> None:
    ctx = FakeListenerContext()
    raw.publish(f"{base}/old", b'"retained"', retain=True)
    async with listening(make_trigger(mqtt_url, f"{base}/old", version=version), ctx) as (
        listener,
        pump,
    ):
        [retained] = events(await pump.take(1))
        await listener.ack(retained)
    async with listening(make_trigger(mqtt_url, f"{base}/old", version=version), ctx) as (
        listener,
        pump,
    ):
        assert await pump.quiet() == []  # a resumed subscription gets no retained copy again
    # The flow now listens elsewhere: the old subscription leaves the session.
    async with listening(make_trigger(mqtt_url, f"{base}/new", version=version), ctx) as (
        listener,
        pump,
    ):
        raw.publish(f"{base}/old", b'"ignored"')
        raw.publish(f"{base}/new", b'"wanted"')
        [event] = events(await pump.take(1))
        assert event.variables["payload"] == "wanted"
        await listener.ack(event)
        assert await pump.quiet() == []
    raw.publish(f"{base}/old", b"", retain=True)


# --------------------------------------------------------------------------- bad input, flow


async def test_poison_json_then_the_next_message(mqtt_url: str, raw: RawClient, base: str) -> None:
    ctx = FakeListenerContext()
    trigger = make_trigger(mqtt_url, base)
    async with listening(trigger, ctx) as (listener, pump):
        raw.publish(base, b'{"broken": ')
        raw.publish(base, b"NaN")
        raw.publish(base, b'{"ok": true}')
        poison, nan, good = await pump.take(3)
        assert isinstance(poison, PoisonMessage) and isinstance(nan, PoisonMessage)
        assert "not JSON" in poison.reason and poison.raw == b'{"broken": '
        assert poison.metadata["topic"] == base and base in poison.source
        assert isinstance(good, Event) and good.variables["payload"] == {"ok": True}
        await ack_all(listener, [poison, nan, good])
    async with listening(trigger, ctx) as (_listener, pump):
        assert await pump.quiet() == []  # acked poison is not redelivered


@pytest.mark.parametrize(("version", "qos"), [("V3", 1), ("V5", 1), ("V3", 0)])
async def test_backpressure_stops_at_max_in_flight(
    mqtt_url: str, raw: RawClient, base: str, version: str, qos: int
) -> None:
    trigger = make_trigger(mqtt_url, base, version=version, qos=qos, maxInFlight=5)
    async with listening(trigger, FakeListenerContext()) as (listener, pump):
        for i in range(30):
            raw.publish(base, json.dumps(i), qos=qos)
        got = await pump.take(5)
        assert await pump.quiet() == []
        await ack_all(listener, got[:2])
        got += await pump.take(2)
        assert await pump.quiet() == []
        while len(got) < 30:
            await ack_all(listener, got[-5:])
            got += await pump.take(min(5, 30 - len(got)))
        assert [e.variables["payload"] for e in events(got)] == list(range(30))  # none lost
        await ack_all(listener, got)


async def test_lost_connection_and_refused_server(mqtt_url: str, base: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    listener = make_trigger(f"tcp://127.0.0.1:{port}", base).create_listener(FakeListenerContext())
    with pytest.raises(ConnectorError, match="cannot connect"):
        await listener.connect()
    await listener.close()
    with pytest.raises(ConnectorError, match="not connected"):
        await anext(aiter(listener.events()))

    # Another connection with the same client id takes the session over: this one is lost.
    ctx = FakeListenerContext()
    trigger = make_trigger(mqtt_url, base)
    async with listening(trigger, ctx) as (_listener, pump), listening(trigger, ctx):
        await pump.ended(TIMEOUT)
        assert isinstance(pump.error, ConnectorError)
        assert "lost" in str(pump.error)


# --------------------------------------------------------------------------- publish


@pytest.mark.parametrize("version", ["V3", "V5"])
async def test_publish_task_round_trip(
    mqtt_url: str, raw: RawClient, base: str, version: str
) -> None:
    raw.subscribe(f"{base}/#")
    cases: list[tuple[dict[str, Any], bytes]] = [
        ({"from": {"order": 1, "items": ["a"]}, "qos": 1}, b'{"order": 1, "items": ["a"]}'),
        ({"from": "hello", "serdeType": "STRING", "qos": 2}, b"hello"),
        (
            {"from": base64.b64encode(b"\x01\x02").decode(), "serdeType": "BYTES", "qos": 0},
            b"\x01\x02",
        ),
        ({"from": "text", "retain": True}, b'"text"'),
    ]
    ctx = FakeRunContext()
    try:
        for i, (props, _payload) in enumerate(cases):
            task = MqttPublish.model_validate(
                {
                    "id": "publish",
                    "type": "mqtt.Publish",
                    "server": mqtt_url,
                    "topic": f"{base}/{i}",
                    "version": version,
                    **props,
                }
            )
            assert await task.run(ctx) == {"messagesCount": 1}
        got = raw.wait_for(len(cases))
        by_topic = {m.topic: m for m in got}
        for i, (props, payload) in enumerate(cases):
            assert by_topic[f"{base}/{i}"].payload == payload
            assert by_topic[f"{base}/{i}"].qos == props.get("qos", 1)
        bad = MqttPublish.model_validate(
            {
                "id": "publish",
                "type": "mqtt.Publish",
                "server": mqtt_url,
                "topic": base,
                "from": "***",
                "serdeType": "BYTES",
            }
        )
        with pytest.raises(TaskError, match="base64") as info:
            await bad.run(ctx)
        assert not info.value.retriable
    finally:
        await close_publish_clients()
    raw.publish(f"{base}/3", b"", retain=True)


async def test_publish_task_unreachable_broker_is_retriable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = MqttPublish.model_validate(
        {
            "id": "publish",
            "type": "mqtt.Publish",
            "server": f"tcp://127.0.0.1:{port}",
            "topic": "x",
            "from": 1,
        }
    )
    try:
        with pytest.raises(TaskError) as info:
            await task.run(FakeRunContext())
        assert info.value.retriable
    finally:
        await close_publish_clients()


# --------------------------------------------------------------------------- TLS and auth


def _make_certs(workdir: Path) -> None:
    """A CA and a server certificate for ``localhost`` only (not 127.0.0.1)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kestrel-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (workdir / "san.ext").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    )
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(workdir / "passwd"), "u", "p"],
        check=True,
        capture_output=True,
    )
    # mosquitto started as root reads its files as the unprivileged "mosquitto" user.
    workdir.chmod(0o755)
    for path in workdir.iterdir():
        path.chmod(0o644)


@pytest.fixture(scope="module")
def secure_mqtt() -> Iterator[tuple[int, Path]]:
    """A mosquitto with TLS and a password (user ``u``, password ``p``): (port, CA path)."""
    binary = shutil.which("mosquitto")
    if binary is None or shutil.which("openssl") is None:
        pytest.fail("the TLS test needs mosquitto, mosquitto_passwd and openssl on PATH")

    def command(port: int, workdir: Path) -> list[str]:
        config = workdir / "mosquitto.conf"
        config.write_text(
            f"listener {port} {LOOPBACK}\n"
            f"cafile {workdir / 'ca.pem'}\ncertfile {workdir / 'server.pem'}\n"
            f"keyfile {workdir / 'server.key'}\n"
            f"allow_anonymous false\npassword_file {workdir / 'passwd'}\n"
            "persistence false\n"
        )
        return [binary, "-c", str(config)]

    spec = ServerSpec(
        name="mqtt-tls",
        command=command,
        prepare=_make_certs,
        probe=lambda port, _workdir: require_port_open(LOOPBACK, port),
        startup_timeout=20.0,
    )
    with run_server(spec) as server:
        yield server.port, server.workdir / "ca.pem"


async def test_tls_with_password(secure_mqtt: tuple[int, Path], base: str) -> None:
    port, ca = secure_mqtt
    auth = {"username": "u", "password": "p"}
    trigger = make_trigger(f"ssl://localhost:{port}", base, crt=ca.read_text(), **auth)
    task = MqttPublish.model_validate(
        {
            "id": "publish",
            "type": "mqtt.Publish",
            "server": f"ssl://localhost:{port}",
            "topic": base,
            "from": {"secure": True},
            "crt": str(ca),
            **auth,
        }
    )
    try:
        async with listening(trigger, FakeListenerContext()) as (listener, pump):
            assert await task.run(FakeRunContext()) == {"messagesCount": 1}
            [event] = events(await pump.take(1))
            assert event.variables["payload"] == {"secure": True}
            await listener.ack(event)
    finally:
        await close_publish_clients()

    # The certificate names localhost, not 127.0.0.1: refused unless verification is off.
    ip_server = f"ssl://127.0.0.1:{port}"
    checked = make_trigger(ip_server, base, crt=str(ca), **auth).create_listener(
        FakeListenerContext()
    )
    with pytest.raises(ConnectorError, match=r"(?i)certificate|hostname"):
        await checked.connect()
    await checked.close()
    unchecked = make_trigger(
        ip_server, base, crt=str(ca), httpsHostnameVerificationEnabled=False, **auth
    )
    async with listening(unchecked, FakeListenerContext()):
        pass

    wrong = make_trigger(
        f"ssl://localhost:{port}", base, crt=str(ca), username="u", password="nope"
    )
    refused = wrong.create_listener(FakeListenerContext())
    with pytest.raises(ConnectorError, match="refused"):
        await refused.connect()
    await refused.close()
