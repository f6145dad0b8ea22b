"""The server runtime's housekeeping and shutdown.

Expired KV entries are purged while the server runs; a stopping runtime lets running
executions end (all hosts draining in parallel, within one deadline) instead of killing
them, and closes its stores.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from actors import Store
from flows import State
from gateway._runtime import Runtime
from gateway._settings import Settings
from tests.gateway.conftest import LiveServer
from tests.polling import eventually
from tests.servers import RayCluster, create_database, drop_database, new_database_name

pytestmark = pytest.mark.integration


async def test_expired_kv_entries_disappear_from_the_table_while_the_server_runs(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    base = f"/api/v1/namespaces/{namespace}/kv"
    assert (await api.put(f"{base}/brief", json=1, params={"ttl": "PT0.1S"})).status_code == 200
    assert (await api.put(f"{base}/kept", json=2)).status_code == 200
    conn = await asyncpg.connect(live_server.dsn)
    try:

        async def keys() -> list[str]:
            rows = await conn.fetch("SELECT key FROM kv WHERE namespace = $1", namespace)
            return sorted(r["key"] for r in rows)

        async def purged() -> bool:
            return await keys() == ["kept"]

        await eventually(purged, within=15, what="the expired row to be purged")
    finally:
        await conn.close()


@pytest.fixture
async def own_database(postgres_dsn: str, ray_cluster: RayCluster) -> AsyncIterator[str]:
    name = new_database_name()
    dsn = await asyncio.to_thread(create_database, postgres_dsn, name)
    yield dsn
    await asyncio.to_thread(drop_database, postgres_dsn, name)


SLOW_FLOW = """\
id: slow
namespace: test.drain
tasks:
  - {id: nap, type: flow.Sleep, duration: PT1.5S}
  - {id: done, type: core.Log, message: done}
triggers:
  - {id: hook, type: trigger.Webhook, key: drain-key}
"""


async def test_stop_drains_running_executions_and_closes_the_stores(own_database: str) -> None:
    runtime = Runtime(Settings(db=own_database, port=0, webhook_workers=1))
    await runtime.start()
    store = runtime.store
    try:
        flow, _ = await runtime.deploy(SLOW_FLOW)
        on_pool = await runtime.execute(flow.namespace, flow.id)
        _, on_server = await runtime.webhook(
            flow.namespace,
            flow.id,
            "drain-key",
            raw_body=b"{}",
            body={},
            headers={},
            parameters={},
        )

        async def both_running() -> bool:
            found = [await runtime.execution(e.id) for e in (on_pool, on_server)]
            return all(e.state is State.RUNNING for e in found)

        await eventually(both_running, within=15, what="both executions to run")
    finally:
        await runtime.stop()
    assert not store.running  # the stores are closed
    check = Store(own_database, migrate=False)
    async with check:
        for execution in (on_pool, on_server):
            ended = await check.get_execution(execution.id)
            assert ended is not None and ended.state is State.SUCCESS, ended
