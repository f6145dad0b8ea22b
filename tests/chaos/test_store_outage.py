"""The store goes away mid-stream: no valid event is dead-lettered, none is lost or doubled.

The listener host reaches Postgres through a TCP proxy the test cuts (connections dropped,
new ones refused) and heals while events keep flowing; the test itself reads the store
directly.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.e2e import scenarios
from tests.e2e import test_kafka_e2e as kafka_e2e
from tests.e2e import test_mqtt_e2e as mqtt_e2e
from tests.e2e import test_postgres_e2e as postgres_e2e
from tests.e2e.harness import Deployment, assert_exactly_once, deployed
from tests.e2e.proxy import TcpProxy
from tests.e2e.test_nats_e2e import flow as nats_flow
from tests.e2e.test_nats_e2e import key as nats_key
from tests.e2e.test_nats_e2e import stream_and_publisher
from tests.polling import eventually

pytestmark = pytest.mark.integration

N = 400
OUTAGE_S = 4.0  # longer than the old give-up (dead letter after a few quick retries)


def through(proxy: TcpProxy, dsn: str) -> str:
    """``dsn`` with its host and port replaced by the proxy's."""
    parts = urlsplit(dsn)
    proxy.upstream_port = parts.port
    netloc = (
        f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    )
    return urlunsplit(parts._replace(netloc=netloc))


async def store_cut_mid_stream(
    dep: Deployment, proxy: TcpProxy, publish: scenarios.Publish, key: scenarios.KeyOf
) -> None:
    """Cut the host's store connection while events flow, heal it: exactly N, no dead letter."""
    await dep.wait_running()
    await scenarios.paced(publish, range(N // 2), chunk=20, pause=0.05)
    await dep.wait_for_count(N // 8)
    proxy.cut()
    await scenarios.paced(publish, range(N // 2, N), chunk=20, pause=0.05)  # into the outage
    await asyncio.sleep(OUTAGE_S)  # the outage itself, not a synchronisation
    proxy.restore()
    await dep.wait_for_count(N)
    await dep.wait_all_ended()
    assert await dep.store.list_dead_letters(flow_id=dep.flow_id) == []
    assert_exactly_once(await dep.executions(), set(range(N)), key)
    await eventually(lambda: _running(dep), what="trigger back to RUNNING")


async def _running(dep: Deployment) -> bool:
    return await dep.trigger_status() == "RUNNING"


async def test_jetstream_store_cut_and_healed(
    fresh_database: str, ray_cluster: Any, nats_url: str
) -> None:
    async with (
        TcpProxy() as proxy,
        stream_and_publisher(nats_url) as (stream, publish, _),
        deployed(
            fresh_database, nats_flow(stream, nats_url), host_dsn=through(proxy, fresh_database)
        ) as dep,
    ):
        await store_cut_mid_stream(dep, proxy, publish, nats_key)


async def test_kafka_store_cut_and_healed(
    fresh_database: str, ray_cluster: Any, kafka_bootstrap: str, kafka_group_options: dict[str, int]
) -> None:
    topic = await kafka_e2e.new_topic(kafka_bootstrap)
    source = kafka_e2e.flow(topic, kafka_bootstrap, kafka_group_options)
    async with (
        TcpProxy() as proxy,
        deployed(fresh_database, source, host_dsn=through(proxy, fresh_database)) as dep,
        kafka_e2e.producer(kafka_bootstrap, topic) as publish,
    ):
        await store_cut_mid_stream(dep, proxy, publish, kafka_e2e.key)


async def test_mqtt_store_cut_and_healed(
    fresh_database: str, ray_cluster: Any, mqtt_url: str
) -> None:
    topic = mqtt_e2e.topic_name()
    async with (
        TcpProxy() as proxy,
        deployed(
            fresh_database,
            mqtt_e2e.flow(topic, mqtt_url),
            host_dsn=through(proxy, fresh_database),
        ) as dep,
        mqtt_e2e.publisher(mqtt_url, topic) as (publish, _),
    ):
        await store_cut_mid_stream(dep, proxy, publish, mqtt_e2e.key)


async def test_postgres_cursor_store_cut_and_healed(fresh_database: str, ray_cluster: Any) -> None:
    """The source table and the store are one database here: both go away together."""
    table = await postgres_e2e.make_table(fresh_database)

    async def publish(ids: range) -> None:
        await postgres_e2e.insert(fresh_database, table, ids)

    async with TcpProxy() as proxy:
        host_dsn = through(proxy, fresh_database)
        source = postgres_e2e.cursor_flow(table, host_dsn)
        async with deployed(fresh_database, source, host_dsn=host_dsn) as dep:
            await store_cut_mid_stream(dep, proxy, publish, postgres_e2e.row_id)
