"""MQTT (QoS 1, persistent session) end to end through a listener host on Ray."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import pytest

from . import scenarios
from .harness import CHEAP_TASKS, deployed
from .proxy import TcpProxy

pytestmark = pytest.mark.integration


def flow(topic: str, server: str, tag: str = "") -> str:
    flow_id = f"sensors-{topic.rsplit('/', 1)[-1]}"
    return (
        f"id: {flow_id}\nnamespace: tests.e2e.mqtt\ndescription: '{tag}'\n{CHEAP_TASKS}"
        f"triggers:\n  - id: readings\n    type: mqtt.RealtimeTrigger\n    server: {server}\n"
        f"    topic: {topic}\n    qos: 1\n    clientId: kestrel-{flow_id}\n"
    )


@contextlib.asynccontextmanager
async def publisher(mqtt_url: str, topic: str) -> AsyncIterator[tuple[scenarios.Publish, Any]]:
    url = urlparse(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.max_inflight_messages_set(200)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()

    def send(payloads: list[bytes]) -> None:
        infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published()

    async def publish(ids: range) -> None:
        await asyncio.to_thread(send, [json.dumps({"n": i}).encode() for i in ids])

    async def raw(payload: bytes) -> None:
        await asyncio.to_thread(send, [payload])

    try:
        yield publish, raw
    finally:
        client.loop_stop()
        client.disconnect()


def topic_name() -> str:
    return f"plant/line1/{uuid.uuid4().hex[:8]}"


def key(execution: Any) -> int:
    return int(execution.trigger["payload"]["n"])


async def test_thousand_events(fresh_database: str, ray_cluster: Any, mqtt_url: str) -> None:
    topic = topic_name()
    async with (
        deployed(fresh_database, flow(topic, mqtt_url)) as dep,
        publisher(mqtt_url, topic) as (publish, _),
    ):
        found = await scenarios.thousand_events(dep, publish, key)
    assert set(found[0].trigger) == {"id", "topic", "qos", "retain", "properties", "payload"}
    assert found[0].trigger["topic"] == topic and found[0].trigger["qos"] == 1


async def test_host_killed_mid_stream(fresh_database: str, ray_cluster: Any, mqtt_url: str) -> None:
    topic = topic_name()
    async with (
        deployed(fresh_database, flow(topic, mqtt_url)) as dep,
        publisher(mqtt_url, topic) as (publish, _),
    ):
        await scenarios.host_killed_mid_stream(dep, publish, key)


async def test_broker_connection_lost_and_regained(
    fresh_database: str, ray_cluster: Any, mqtt_url: str
) -> None:
    url = urlparse(mqtt_url)
    proxy = TcpProxy(url.port)
    await proxy.start()
    topic = topic_name()
    try:
        async with (
            deployed(fresh_database, flow(topic, f"tcp://127.0.0.1:{proxy.port}")) as dep,
            publisher(mqtt_url, topic) as (publish, _),
        ):
            await scenarios.connection_cut_mid_stream(dep, proxy, publish, key)
    finally:
        await proxy.stop()


async def test_poison_message(fresh_database: str, ray_cluster: Any, mqtt_url: str) -> None:
    topic = topic_name()
    async with (
        deployed(fresh_database, flow(topic, mqtt_url)) as dep,
        publisher(mqtt_url, topic) as (publish, raw),
    ):
        await scenarios.poison_is_dead_lettered(dep, lambda: raw(b"{not json"), publish, key)


async def test_flow_edit_redeploys_without_loss(
    fresh_database: str, ray_cluster: Any, mqtt_url: str
) -> None:
    topic = topic_name()
    async with (
        deployed(fresh_database, flow(topic, mqtt_url)) as dep,
        publisher(mqtt_url, topic) as (publish, _),
    ):
        await scenarios.redeploy_mid_stream(dep, flow(topic, mqtt_url, tag="edited"), publish, key)
