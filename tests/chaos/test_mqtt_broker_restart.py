"""MQTT 5 broker restart with a backlog: the persistent session resumes and drains, exactly once.

A private mosquitto with persistence: the listener's session and the messages queued for it
survive the restart. On resume the broker sends a full window of queued messages before the
SUBACK (the wedge fixed in ``connectors/mqtt``); the trigger must come back by itself and
make exactly one execution per message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_mqtt_e2e as mqtt_e2e
from tests.e2e.harness import assert_exactly_once, deployed
from tests.e2e.proxy import TcpProxy
from tests.polling import eventually
from tests.servers import check_mqtt, free_port
from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    find_executable,
    start_process,
    stop_process,
    wait_ready,
)

pytestmark = pytest.mark.integration

N = 600
WINDOW = 100  # maxInFlight, so MQTT 5 Receive Maximum: the broker sends this many first


@dataclass
class Mosquitto:
    port: int
    workdir: Path
    process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"tcp://{LOOPBACK}:{self.port}"

    def start(self) -> None:
        binary = find_executable("mosquitto")
        assert binary, "mosquitto is not installed (the README's test command installs it)"
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {LOOPBACK}\nallow_anonymous true\nuser root\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "max_queued_messages 0\nlog_dest stdout\n"
        )
        self.process = start_process(
            "mosquitto-persistent", [binary, "-c", str(config)], log_path=self.workdir / "log"
        )
        wait_ready(self.process, lambda: check_mqtt(self.url, timeout=2.0), timeout=30)

    def restart(self) -> None:
        if self.process is not None:
            stop_process(self.process)  # SIGTERM: mosquitto writes its persistence file
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    running = Mosquitto(free_port(), tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


def flow(topic: str, server: str) -> str:
    source = mqtt_e2e.flow(topic, server)
    return source.replace(
        "    qos: 1\n", f"    qos: 1\n    version: V5\n    maxInFlight: {WINDOW}\n"
    )


async def test_broker_restart_with_a_backlog(
    fresh_database: str, ray_cluster: Any, broker: Mosquitto
) -> None:
    """The listener is cut off (proxy), a backlog queues in its session, the broker restarts."""
    topic = mqtt_e2e.topic_name()
    first = 50
    async with (
        TcpProxy(broker.port) as proxy,
        deployed(fresh_database, flow(topic, f"tcp://{LOOPBACK}:{proxy.port}")) as dep,
    ):
        await dep.wait_running()
        async with mqtt_e2e.publisher(broker.url, topic) as (publish, _):
            await publish(range(first))
            await dep.wait_for_count(first)
            proxy.cut()  # the listener is away; its persistent session keeps what comes
            await publish(range(first, N))
        await asyncio.to_thread(broker.restart)  # the session and its backlog survive
        assert await dep.count() == first  # N - first queued: many windows of backlog
        proxy.restore()
        await dep.wait_for_count(N)
        await dep.wait_all_ended()
        assert await dep.store.list_dead_letters(flow_id=dep.flow_id) == []
        assert_exactly_once(await dep.executions(), set(range(N)), mqtt_e2e.key)
        await eventually(_running(dep), what="trigger back to RUNNING")


def _running(dep: Any) -> Any:
    async def check() -> bool:
        return bool(await dep.trigger_status() == "RUNNING")

    return check
