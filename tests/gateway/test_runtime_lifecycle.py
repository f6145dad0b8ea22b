"""The server runtime's housekeeping, start and shutdown.

Expired KV entries are purged while the server runs; a stopping runtime lets running
executions end (all hosts draining in parallel, within one deadline) instead of killing
them, and closes its stores; a start that fails at a late step stops what it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import ray

from actors import Store
from flows import NotStartedError, State
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
        flow, _ = await runtime.catalog.deploy(SLOW_FLOW)
        on_pool = await runtime.control.execute(flow.namespace, flow.id)
        _, on_server = await runtime.webhooks.call(
            flow.namespace,
            flow.id,
            "drain-key",
            raw_body=b"{}",
            body={},
            headers={},
            parameters={},
        )

        async def both_running() -> bool:
            found = [await runtime.control.execution(e.id) for e in (on_pool, on_server)]
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


class _FailsToListen(Runtime):
    """A runtime whose last start step (LISTEN for other servers' changes) fails."""

    async def _listen(self, dsn: str) -> None:
        raise OSError("no LISTEN connection")


async def test_a_failed_start_stops_everything_it_started(own_database: str) -> None:
    runtime = _FailsToListen(Settings(db=own_database, port=0, webhook_workers=1))
    with pytest.raises(OSError, match="no LISTEN connection"):
        await runtime.start()
    assert not runtime.running

    def own_actors() -> list[str]:
        named = ray.util.list_named_actors(all_namespaces=True)
        return [a["name"] for a in named if a["name"].startswith(f"{runtime.name}-")]

    # The listener hosts and pool actors it had started are gone...
    await eventually(lambda: not own_actors(), within=30, what="the runtime's actors to go")
    # ...and so are its stores' connections (and its actors'): nothing holds the database.
    conn = await asyncpg.connect(own_database)
    try:

        async def no_other_sessions() -> bool:
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return others == 0

        await eventually(no_other_sessions, within=30, what="the runtime's connections to close")
    finally:
        await conn.close()
    await runtime.stop()  # safe after a failed start
    with pytest.raises(NotStartedError):
        _ = runtime.store
