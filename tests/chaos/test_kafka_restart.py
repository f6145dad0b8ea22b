"""Kafka broker restart mid-stream, on a broker whose log survives it (tansu on S3).

Exactly N executions for N events, none dead-lettered, and the trigger back to RUNNING by
itself. (The session's tansu keeps its log in memory: a restart there loses the topic.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._durable_kafka import DurableKafka, durable_kafka
from tests.e2e import scenarios
from tests.e2e import test_kafka_e2e as kafka_e2e
from tests.e2e.harness import assert_exactly_once, deployed
from tests.polling import eventually
from tests.servers import consumer_group_options

pytestmark = pytest.mark.integration

N = 300


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableKafka]:
    with durable_kafka(tmp_path_factory.mktemp("durable-kafka")) as running:
        yield running


async def test_broker_restart_mid_stream(
    fresh_database: str, ray_cluster: Any, broker: DurableKafka, tmp_path: Path
) -> None:
    topic = await kafka_e2e.new_topic(broker.bootstrap)
    source = kafka_e2e.flow(topic, broker.bootstrap, consumer_group_options())
    async with deployed(fresh_database, source) as dep:
        async with kafka_e2e.producer(broker.bootstrap, topic) as publish:
            await dep.wait_running()
            await scenarios.paced(publish, range(N // 2), chunk=25, pause=0.05)
            await dep.wait_for_count(N // 4)
        await asyncio.to_thread(broker.restart)  # the log and the group offsets survive
        async with kafka_e2e.producer(broker.bootstrap, topic) as publish:
            await scenarios.paced(publish, range(N // 2, N), chunk=25, pause=0.05)
        await dep.wait_for_count(N)
        await dep.wait_all_ended()
        assert await dep.store.list_dead_letters(flow_id=dep.flow_id) == []
        assert_exactly_once(await dep.executions(), set(range(N)), kafka_e2e.key)
        await eventually(_running(dep), what="trigger back to RUNNING")


def _running(dep: Any) -> Any:
    async def check() -> bool:
        return bool(await dep.trigger_status() == "RUNNING")

    return check
