"""A JetStream broker restart mid-stream: exactly N executions, nothing dead-lettered.

The test runs its own nats-server (file storage in its work dir; the session's server is
shared) and restarts it on the same port and data while a backlog waits in the stream.
The listener reconnects by itself and the trigger goes back to RUNNING.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import nats
import pytest

from tests.e2e.harness import Deployment, assert_exactly_once, deployed
from tests.e2e.test_nats_e2e import flow as nats_flow
from tests.e2e.test_nats_e2e import key as nats_key
from tests.e2e.test_nats_e2e import stream_and_publisher
from tests.polling import eventually
from tests.servers._nats import _probe, _spec
from tests.servers._process import (
    RunningServer,
    ServerProcess,
    run_server,
    start_process,
    stop_process,
    wait_ready,
)

pytestmark = pytest.mark.integration

N = 300


@dataclass
class RestartableNats:
    server: RunningServer
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"nats://{self.server.host}:{self.server.port}"

    def restart(self) -> None:
        """Stop (SIGTERM), then start again on the same port and JetStream store."""
        stop_process(self.process)
        self.process = start_process(
            "nats",
            self.process.argv,
            log_path=self.server.workdir / "restarted.log",
            cwd=self.server.workdir,
        )
        wait_ready(self.process, lambda: _probe(self.server.port), timeout=30)


@pytest.fixture
def own_nats() -> Iterator[RestartableNats]:
    with run_server(_spec()) as server:
        running = RestartableNats(server, server.process)
        try:
            yield running
        finally:
            stop_process(running.process)


async def test_jetstream_broker_restart_mid_stream(
    own_nats: RestartableNats, fresh_database: str, ray_cluster: Any
) -> None:
    async with (
        stream_and_publisher(own_nats.url) as (stream, publish, _),
        deployed(fresh_database, nats_flow(stream, own_nats.url)) as dep,
    ):
        await dep.wait_running()
        await publish(range(N // 2))  # a backlog: the restart lands while it drains
        await eventually(lambda: _at_least(dep, 10), within=60, what="first executions")
        await asyncio.to_thread(own_nats.restart)
        async with _publisher(own_nats.url, stream) as publish_after:
            for n in range(N // 2, N):
                await eventually(lambda n=n: publish_after(n), within=30, what=f"publish {n}")
        await eventually(lambda: _at_least(dep, N), within=120, what=f"{N} executions")
        await dep.wait_all_ended()
        assert await dep.store.list_dead_letters(flow_id=dep.flow_id) == []
        assert_exactly_once(await dep.executions(), set(range(N)), nats_key)
        await eventually(_running(dep), within=60, what="trigger back to RUNNING")


@contextlib.asynccontextmanager
async def _publisher(url: str, stream: str) -> AsyncIterator[Callable[[int], Awaitable[bool]]]:
    """A fresh publisher whose retries are deduplicated by the stream (``Nats-Msg-Id``)."""
    client = await nats.connect(url)
    js = client.jetstream()

    async def publish(n: int) -> bool:
        try:
            await js.publish(
                f"{stream.lower()}.created",
                json.dumps({"n": n}).encode(),
                headers={"Nats-Msg-Id": f"n-{n}"},
            )
        except Exception:
            return False  # the broker is not ready yet: the stream dedupes a retry
        return True

    try:
        yield publish
    finally:
        await client.close()


async def _at_least(dep: Deployment, n: int) -> bool:
    return await dep.count() >= n


def _running(dep: Deployment) -> Any:
    async def check() -> bool:
        return bool(await dep.trigger_status() == "RUNNING")

    return check
