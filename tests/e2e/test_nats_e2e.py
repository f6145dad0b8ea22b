"""NATS JetStream (durable consumer) end to end through a listener host on Ray."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from . import scenarios
from .harness import CHEAP_TASKS, deployed
from .proxy import TcpProxy

pytestmark = pytest.mark.integration


def flow(stream: str, url: str, tag: str = "") -> str:
    return (
        f"id: pipeline-{stream.lower()[-8:]}\nnamespace: tests.e2e.nats\ndescription: '{tag}'\n{CHEAP_TASKS}"
        f"triggers:\n  - id: orders\n    type: nats.RealtimeTrigger\n    url: {url}\n"
        f"    subject: '{stream.lower()}.>'\n    stream: {stream}\n    durableId: kestrel-{stream.lower()}\n"
        "    deserializer: JSON\n    ackWait: PT5S\n"
    )


@contextlib.asynccontextmanager
async def stream_and_publisher(nats_url: str) -> AsyncIterator[tuple[str, scenarios.Publish, Any]]:
    stream = f"ORDERS{uuid.uuid4().hex[:8].upper()}"
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])

    async def publish(ids: range) -> None:
        for i in ids:
            await js.publish(f"{stream.lower()}.created", json.dumps({"n": i}).encode())

    async def raw(payload: bytes) -> None:
        await js.publish(f"{stream.lower()}.created", payload)

    try:
        yield stream, publish, raw
    finally:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
        await client.close()


def key(execution: Any) -> int:
    return int(execution.trigger["data"]["n"])


async def test_thousand_events(fresh_database: str, ray_cluster: Any, nats_url: str) -> None:
    async with (
        stream_and_publisher(nats_url) as (stream, publish, _),
        deployed(fresh_database, flow(stream, nats_url)) as dep,
    ):
        found = await scenarios.thousand_events(dep, publish, key)
    assert set(found[0].trigger) == {"subject", "data", "headers", "timestamp", "sequence"}
    assert found[0].dedupe_key.endswith(f"nats:{stream}:{found[0].trigger['sequence']}")


async def test_host_killed_mid_stream(fresh_database: str, ray_cluster: Any, nats_url: str) -> None:
    async with (
        stream_and_publisher(nats_url) as (stream, publish, _),
        deployed(fresh_database, flow(stream, nats_url)) as dep,
    ):
        await scenarios.host_killed_mid_stream(dep, publish, key)


async def test_broker_connection_lost_and_regained(
    fresh_database: str, ray_cluster: Any, nats_url: str
) -> None:
    port = int(nats_url.rsplit(":", 1)[1])
    proxy = TcpProxy(port)
    await proxy.start()
    try:
        async with (
            stream_and_publisher(nats_url) as (stream, publish, _),
            deployed(fresh_database, flow(stream, f"nats://127.0.0.1:{proxy.port}")) as dep,
        ):
            await scenarios.connection_cut_mid_stream(dep, proxy, publish, key)
    finally:
        await proxy.stop()


async def test_poison_message(fresh_database: str, ray_cluster: Any, nats_url: str) -> None:
    async with (
        stream_and_publisher(nats_url) as (stream, publish, raw),
        deployed(fresh_database, flow(stream, nats_url)) as dep,
    ):
        await scenarios.poison_is_dead_lettered(dep, lambda: raw(b"{not json"), publish, key)


async def test_flow_edit_redeploys_without_loss(
    fresh_database: str, ray_cluster: Any, nats_url: str
) -> None:
    async with (
        stream_and_publisher(nats_url) as (stream, publish, _),
        deployed(fresh_database, flow(stream, nats_url)) as dep,
    ):
        await scenarios.redeploy_mid_stream(dep, flow(stream, nats_url, tag="edited"), publish, key)


async def test_core_subject_thousand_events(
    fresh_database: str, ray_cluster: Any, nats_url: str
) -> None:
    subject = f"sensors.{uuid.uuid4().hex[:8]}"
    source = (
        f"id: core-{subject[-8:]}\nnamespace: tests.e2e.nats\n{CHEAP_TASKS}"
        f"triggers:\n  - id: readings\n    type: nats.RealtimeTrigger\n    url: {nats_url}\n"
        f"    subject: '{subject}.*'\n    deserializer: JSON\n"
    )
    client = await nats.connect(nats_url)

    async def publish(ids: range) -> None:
        for i in ids:
            await client.publish(f"{subject}.temp", json.dumps({"n": i}).encode())
        await client.flush()

    try:
        async with deployed(fresh_database, source) as dep:
            found = await scenarios.thousand_events(dep, publish, key)
    finally:
        await client.close()
    assert found[0].dedupe_key is None  # core NATS: at most once, no position to dedupe on
    assert found[0].trigger["subject"] == f"{subject}.temp"
