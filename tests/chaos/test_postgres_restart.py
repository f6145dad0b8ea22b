"""A real Postgres restart mid-stream (the issue's 7 s database blip), with JetStream.

The test runs its own PostgreSQL (the session's is shared) and stops it (fast shutdown:
clients are disconnected) while events flow, then starts it again on the same port and
data. Exactly N executions, none dead-lettered, the trigger back to RUNNING by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from flows import StoreUnavailable
from tests.e2e import scenarios
from tests.e2e.harness import Deployment, assert_exactly_once, deployed
from tests.e2e.test_nats_e2e import flow as nats_flow
from tests.e2e.test_nats_e2e import key as nats_key
from tests.e2e.test_nats_e2e import stream_and_publisher
from tests.polling import eventually
from tests.servers import check_postgres, create_database
from tests.servers._postgres import _local_dsn, _spec
from tests.servers._process import (
    RunningServer,
    ServerProcess,
    run_server,
    start_process,
    stop_process,
    wait_ready,
)

pytestmark = pytest.mark.integration

N = 400
OUTAGE_S = 4.0  # the database is down this long (longer than the old dead-letter give-up)


@dataclass
class RestartablePostgres:
    server: RunningServer
    process: ServerProcess

    @property
    def admin_dsn(self) -> str:
        return _local_dsn(self.server.port)

    def restart(self, down_s: float) -> None:
        """Stop (fast shutdown), stay down `down_s` seconds, start again on the same data."""
        spec = _spec()
        stop_process(self.process)
        time.sleep(down_s)  # the outage itself, in this helper thread
        self.process = start_process(
            spec.name,
            self.process.argv,
            log_path=self.server.workdir / "restarted.log",
            cwd=self.server.workdir,
            env=spec.env,
            run_as=spec.run_as,
            stop_signal=spec.stop_signal,
        )
        wait_ready(self.process, lambda: check_postgres(self.admin_dsn, 5.0), timeout=60)


@pytest.fixture
def own_postgres() -> Iterator[RestartablePostgres]:
    with run_server(_spec()) as server:
        running = RestartablePostgres(server, server.process)
        try:
            yield running
        finally:
            stop_process(running.process)


async def _count(dep: Deployment) -> int:
    try:
        return await dep.count()
    except StoreUnavailable:
        return -1  # the test's own pool meets the restart too


async def test_jetstream_with_a_postgres_restart(
    own_postgres: RestartablePostgres, ray_cluster: Any, nats_url: str
) -> None:
    dsn = await asyncio.to_thread(create_database, own_postgres.admin_dsn, "kestrel_restart")
    async with (
        stream_and_publisher(nats_url) as (stream, publish, _),
        deployed(dsn, nats_flow(stream, nats_url)) as dep,
    ):
        await dep.wait_running()
        await scenarios.paced(publish, range(N // 2), chunk=20, pause=0.05)
        await eventually(lambda: _at_least(dep, N // 8), within=60, what="first executions")
        restart = asyncio.create_task(asyncio.to_thread(own_postgres.restart, OUTAGE_S))
        await scenarios.paced(publish, range(N // 2, N), chunk=20, pause=0.05)  # into it
        await restart
        await eventually(lambda: _at_least(dep, N), within=120, what=f"{N} executions")
        await dep.wait_all_ended()
        assert await dep.store.list_dead_letters(flow_id=dep.flow_id) == []
        assert_exactly_once(await dep.executions(), set(range(N)), nats_key)
        await eventually(_running(dep), what="trigger back to RUNNING")


async def _at_least(dep: Deployment, n: int) -> bool:
    return await _count(dep) >= n


def _running(dep: Deployment) -> Any:
    async def check() -> bool:
        return bool(await dep.trigger_status() == "RUNNING")

    return check
