"""MQTT 5 with a backlog: a resumed session must not wedge, and must drain at full speed.

On resume the broker sends up to Receive Maximum queued messages before its SUBACK; a
listener that stops reading at ``maxInFlight`` unacknowledged deliveries while it waits for
that SUBACK never gets it. And redeliveries whose keys were lost in a crash must not cost
one look-up of recent executions each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.mqtt import MqttListener
from flows import Event
from tests.connectors.fakes import FakeListenerContext, Pump
from tests.connectors.test_mqtt import RawClient, ack_all, events, make_trigger

pytestmark = pytest.mark.integration

BACKLOG = 100
WINDOW = 20  # maxInFlight: also mosquitto's default in-flight limit


class CrashingContext(FakeListenerContext):
    """A host whose cursor saves can be made to fail (a crash loses the keys in memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0
        self.broken = False

    async def save_cursor(self, cursor: Any) -> None:
        if self.broken:
            raise RuntimeError("the host died")
        await super().save_cursor(cursor)

    async def recent_events(self, limit: int) -> list[tuple[str | None, dict[str, Any]]]:
        self.lookups += 1
        return await super().recent_events(limit)


@pytest.fixture
def raw(mqtt_url: str) -> Iterator[RawClient]:
    client = RawClient(mqtt_url, v5=True)
    yield client
    client.close()


def trigger_for(mqtt_url: str, topic: str) -> Any:
    return make_trigger(
        mqtt_url, topic, version="V5", qos=1, maxInFlight=WINDOW, connectionTimeout="PT2S"
    )


async def drain(listener: MqttListener, pump: Pump, count: int) -> list[Event]:
    """Take `count` deliveries, acking each window as the host would."""
    got: list[Event] = []
    while len(got) < count:
        batch = events(await pump.take(min(WINDOW, count - len(got))))
        await ack_all(listener, batch)
        got += batch
    return got


async def test_resumed_session_with_a_backlog_connects_and_drains(
    mqtt_url: str, raw: RawClient
) -> None:
    topic = f"kestrel/chaos/{id(raw):x}/backlog"
    ctx = CrashingContext()
    trigger = trigger_for(mqtt_url, topic)
    first = trigger.create_listener(ctx)
    assert isinstance(first, MqttListener)
    await first.connect()  # subscribed; the session stays on the broker
    await first.close()
    for i in range(BACKLOG):
        raw.publish(topic, json.dumps({"i": i}))

    listener = trigger.create_listener(ctx)
    assert isinstance(listener, MqttListener)
    await listener.connect()  # the SUBACK comes behind a full window of deliveries
    pump = Pump(listener)
    try:
        got = await drain(listener, pump, BACKLOG)
        assert [e.variables["payload"]["i"] for e in got] == list(range(BACKLOG))
        assert await pump.quiet() == []
    finally:
        await pump.stop()
        await listener.close()


async def test_redeliveries_after_a_crash_recover_keys_without_a_lookup_each(
    mqtt_url: str, raw: RawClient
) -> None:
    topic = f"kestrel/chaos/{id(raw):x}/crash"
    ctx = CrashingContext()
    trigger = trigger_for(mqtt_url, topic)
    first = trigger.create_listener(ctx)
    assert isinstance(first, MqttListener)
    await first.connect()
    pump = Pump(first)
    for i in range(WINDOW):
        raw.publish(topic, json.dumps({"i": i}))
    seen = events(await pump.take(WINDOW))
    # The host recorded the even ones (their executions exist), then died before any ack.
    ctx.recent = [(e.dedupe_key, dict(e.variables)) for e in reversed(seen[::2])]
    ctx.broken = True
    await pump.stop()
    await first.close()  # the keys it held are lost with the "crash"
    ctx.broken = False

    listener = trigger.create_listener(ctx)
    assert isinstance(listener, MqttListener)
    await listener.connect()
    pump = Pump(listener)
    try:
        again = await drain(listener, pump, WINDOW)
        assert [e.metadata["dup"] for e in again] == [True] * WINDOW
        assert [e.dedupe_key for e in again[::2]] == [e.dedupe_key for e in seen[::2]]
        fresh = {e.dedupe_key for e in again[1::2]}
        assert len(fresh) == WINDOW // 2 and not fresh & {e.dedupe_key for e in seen}
        assert ctx.lookups <= 2, f"{ctx.lookups} look-ups of recent executions for {WINDOW}"
    finally:
        await pump.stop()
        await listener.close()
