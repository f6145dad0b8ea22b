"""Kafka end to end through a listener host on Ray: exactly once, through kills and outages."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.servers import kafka_server_advertising

from . import scenarios
from .harness import CHEAP_TASKS, deployed
from .proxy import TcpProxy

pytestmark = pytest.mark.integration


def flow(topic: str, bootstrap: str, options: dict[str, int], tag: str = "") -> str:
    props = {
        "bootstrap.servers": bootstrap,
        "fetch.max.wait.ms": "5",
        "rebalance.timeout.ms": "2000",
        "max.poll.interval.ms": "10000",
    }
    props |= {k.replace("_ms", ".ms").replace("_", "."): str(v) for k, v in options.items()}
    return (
        f"id: orders-{topic[-8:]}\nnamespace: tests.e2e.kafka\n"
        f"description: '{tag}'\n{CHEAP_TASKS}"
        f"triggers:\n  - id: orders\n    type: kafka.RealtimeTrigger\n    topic: {topic}\n"
        f"    groupId: g-{topic}\n    valueDeserializer: JSON\n"
        f"    properties: {json.dumps(props)}\n"
    )


async def new_topic(bootstrap: str) -> str:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    return topic


@contextlib.asynccontextmanager
async def producer(bootstrap: str, topic: str) -> AsyncIterator[scenarios.Publish]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await client.start()

    async def publish(ids: range) -> None:
        for i in ids:
            await client.send(topic, json.dumps({"n": i}).encode(), key=str(i).encode())
        await client.flush()

    try:
        yield publish
    finally:
        await client.stop()


def key(execution: Any) -> int:
    return int(execution.trigger["value"]["n"])


async def test_thousand_events(
    fresh_database: str, ray_cluster: Any, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = await new_topic(kafka_bootstrap)
    async with (
        deployed(fresh_database, flow(topic, kafka_bootstrap, kafka_group_options)) as dep,
        producer(kafka_bootstrap, topic) as publish,
    ):
        found = await scenarios.thousand_events(dep, publish, key)
    sample = found[0].trigger
    assert set(sample) == {"key", "value", "topic", "partition", "offset", "timestamp", "headers"}
    assert sample["topic"] == topic and sample["key"] == str(sample["value"]["n"])


async def test_host_killed_mid_stream(
    fresh_database: str, ray_cluster: Any, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = await new_topic(kafka_bootstrap)
    async with (
        deployed(fresh_database, flow(topic, kafka_bootstrap, kafka_group_options)) as dep,
        producer(kafka_bootstrap, topic) as publish,
    ):
        await scenarios.host_killed_mid_stream(dep, publish, key)


async def test_broker_connection_lost_and_regained(
    fresh_database: str, ray_cluster: Any, kafka_group_options: dict[str, int]
) -> None:
    proxy = TcpProxy()
    await proxy.start()
    try:
        with kafka_server_advertising(
            proxy.port, lambda port: setattr(proxy, "upstream_port", port)
        ):
            bootstrap = f"127.0.0.1:{proxy.port}"
            topic = await new_topic(bootstrap)
            async with (
                deployed(fresh_database, flow(topic, bootstrap, kafka_group_options)) as dep,
                producer(bootstrap, topic) as publish,
            ):
                await scenarios.connection_cut_mid_stream(dep, proxy, publish, key)
    finally:
        await proxy.stop()


async def test_poison_message(
    fresh_database: str, ray_cluster: Any, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = await new_topic(kafka_bootstrap)
    async with (
        deployed(fresh_database, flow(topic, kafka_bootstrap, kafka_group_options)) as dep,
        producer(kafka_bootstrap, topic) as publish,
    ):
        raw = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await raw.start()

        async def poison() -> None:
            await raw.send_and_wait(topic, b"{not json", partition=0)

        try:
            await scenarios.poison_is_dead_lettered(dep, poison, publish, key)
        finally:
            await raw.stop()


async def test_flow_edit_redeploys_without_loss(
    fresh_database: str, ray_cluster: Any, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = await new_topic(kafka_bootstrap)
    source = flow(topic, kafka_bootstrap, kafka_group_options)
    async with deployed(fresh_database, source) as dep, producer(kafka_bootstrap, topic) as publish:
        await scenarios.redeploy_mid_stream(
            dep, flow(topic, kafka_bootstrap, kafka_group_options, tag="edited"), publish, key
        )
