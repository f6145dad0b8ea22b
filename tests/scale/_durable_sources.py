"""The four durable sources of a node-removal scenario, in one flow behind a real gateway.

JetStream (``parallelism: 2``: a listener on each listener host), Kafka, MQTT (QoS 1,
persistent session) and a Postgres cursor, each fed the same numbers ``{"n": i}``; a
`RemovalClock` measures, from a node's removal, when each trigger is RUNNING again and
when each source's executions are all done. The brokers are the session's (tests/conftest.py);
the publishers are the end-to-end tests' (tests/e2e).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.e2e import test_kafka_e2e as kafka_e2e
from tests.e2e import test_mqtt_e2e as mqtt_e2e
from tests.polling import eventually_sync

LISTENERS = {"js": 2, "kafka": 1, "mqtt": 1, "rows": 1}
"""Trigger id of each source in the flow, and how many listeners (slots) it runs."""

YAML = {"Content-Type": "application/x-yaml"}


@dataclass
class DurableSources:
    """A JetStream stream, a Kafka topic, an MQTT topic and a table, and the flow on them.

    Attributes:
        namespace: The flow's namespace.
        flow_id: The flow's id (its triggers run on listener host `host_index` of it).
        nats_url: The NATS server (JetStream).
        kafka_bootstrap: The Kafka broker.
        kafka_group: Consumer-group options of the session's broker (``kafka_group_options``).
        mqtt_url: The MQTT broker.
        database: The store's database, where the cursor's table is too.
        tag: Makes the stream, MQTT topic, table and consumer names unique to this run.
        topic: The Kafka topic (a new one, named by `create`).
    """

    namespace: str
    flow_id: str
    nats_url: str
    kafka_bootstrap: str
    kafka_group: dict[str, int]
    mqtt_url: str
    database: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    topic: str = ""

    @property
    def stream(self) -> str:
        """The JetStream stream (subjects ``{tag}.>``)."""
        return f"NODE{self.tag.upper()}"

    @property
    def table(self) -> str:
        """The cursor's table (``n bigint PRIMARY KEY``)."""
        return f"rows_{self.tag}"

    def create(self) -> None:
        """Create the stream, the topic (2 partitions) and the table."""
        asyncio.run(self._create())

    async def _create(self) -> None:
        import asyncpg
        import nats

        client = await nats.connect(self.nats_url)
        try:
            await client.jetstream().add_stream(name=self.stream, subjects=[f"{self.tag}.>"])
        finally:
            await client.close()
        self.topic = await kafka_e2e.new_topic(self.kafka_bootstrap)
        conn = await asyncpg.connect(self.database)
        try:
            await conn.execute(f"CREATE TABLE {self.table} (n bigint PRIMARY KEY)")
        finally:
            await conn.close()

    def flow(self) -> str:
        """The flow: one trigger per source (ids as in `LISTENERS`)."""
        kafka = {
            "bootstrap.servers": self.kafka_bootstrap,
            "fetch.max.wait.ms": "5",
            "rebalance.timeout.ms": "2000",
            "max.poll.interval.ms": "10000",
        }
        kafka |= {
            k.replace("_ms", ".ms").replace("_", "."): str(v) for k, v in self.kafka_group.items()
        }
        return f"""\
id: {self.flow_id}
namespace: {self.namespace}
tasks:
  - {{id: say, type: core.Log, message: hi}}
triggers:
  - id: js
    type: nats.RealtimeTrigger
    url: {self.nats_url}
    subject: "{self.tag}.>"
    stream: {self.stream}
    durableId: kestrel-{self.tag}
    deserializer: JSON
    ackWait: PT5S
    parallelism: 2
  - id: kafka
    type: kafka.RealtimeTrigger
    topic: {self.topic}
    groupId: g-{self.topic}
    valueDeserializer: JSON
    properties: {json.dumps(kafka)}
  - id: mqtt
    type: mqtt.RealtimeTrigger
    server: {self.mqtt_url}
    topic: {self.tag}/readings
    qos: 1
  - id: rows
    type: postgres.RealtimeTrigger
    url: "{self.database}"
    table: {self.table}
    cursorColumn: n
    pollInterval: PT0.2S
"""

    def publish(self, numbers: range) -> None:
        """Send ``{"n": i}`` for each number to every source (the table: one row each)."""
        asyncio.run(self._publish(numbers))

    async def _publish(self, numbers: range) -> None:
        # All four at once, each event on its own, so that some are on their way in every
        # source while a node goes.
        await asyncio.gather(
            self._publish_jetstream(numbers),
            self._publish_kafka(numbers),
            self._publish_mqtt(numbers),
            self._insert_rows(numbers),
        )

    async def _publish_jetstream(self, numbers: range) -> None:
        import nats

        client = await nats.connect(self.nats_url)
        try:
            js = client.jetstream()
            for n in numbers:
                await js.publish(f"{self.tag}.x", json.dumps({"n": n}).encode())
        finally:
            await client.close()

    async def _publish_kafka(self, numbers: range) -> None:
        async with kafka_e2e.producer(self.kafka_bootstrap, self.topic) as send:
            await send(numbers)

    async def _publish_mqtt(self, numbers: range) -> None:
        async with mqtt_e2e.publisher(self.mqtt_url, f"{self.tag}/readings") as (send, _):
            await send(numbers)

    async def _insert_rows(self, numbers: range) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.database)
        try:
            for n in numbers:  # one transaction each: the cursor may see some, not all
                await conn.execute(f"INSERT INTO {self.table} (n) VALUES ($1)", n)
        finally:
            await conn.close()

    def statuses(self, client: httpx.Client) -> dict[str, list[str]] | None:
        """Each trigger's listener statuses; None while the API answers 503 (a host restarts)."""
        answer = client.get("/api/v1/triggers")
        if answer.status_code != 200:
            return None
        found: dict[str, list[str]] = {t: [] for t in LISTENERS}
        for t in answer.json()["results"]:
            if (t["namespace"], t["flowId"]) == (self.namespace, self.flow_id):
                found[t["triggerId"]].append(t["status"])
        return found

    def running(self, client: httpx.Client) -> set[str]:
        """The triggers whose every listener is RUNNING."""
        found = self.statuses(client) or {}
        return {t for t, s in found.items() if s == ["RUNNING"] * LISTENERS[t]}

    def executions(self, client: httpx.Client) -> dict[str, list[dict[str, Any]]]:
        """The flow's executions by trigger id."""
        page = client.get(
            "/api/v1/executions/search",
            params={"namespace": self.namespace, "flowId": self.flow_id, "size": 1000},
        ).json()["results"]
        out: dict[str, list[dict[str, Any]]] = {t: [] for t in LISTENERS}
        for execution in page:
            out[execution["trigger"]["id"]].append(execution)
        return out

    def done(self, client: httpx.Client, count: int) -> dict[str, list[int]]:
        """The sources with `count` executions all SUCCESS: their sorted numbers.

        Raises:
            AssertionError: A source with more than `count` executions (one twice), or a
                FAILED one.
        """
        out = {}
        for trigger_id, executions in self.executions(client).items():
            assert len(executions) <= count, f"{trigger_id}: {len(executions)} for {count} events"
            failed = [e["id"] for e in executions if e["state"]["current"] == "FAILED"]
            assert not failed, f"{trigger_id}: executions {failed} FAILED"
            if len(executions) == count and all(
                e["state"]["current"] == "SUCCESS" for e in executions
            ):
                out[trigger_id] = sorted(_number(e["trigger"]["variables"]) for e in executions)
        return out

    def progress(self, client: httpx.Client) -> str:
        """Where the triggers and their executions stand (for a failure message)."""
        lines = [f"triggers {self.statuses(client)}"]
        for trigger_id, executions in self.executions(client).items():
            states = sorted(
                (_number(e["trigger"]["variables"]), e["state"]["current"]) for e in executions
            )
            lines.append(f"{trigger_id}: {len(executions)} executions {states}")
        return "; ".join(lines)


def _number(variables: dict[str, Any]) -> int:
    for key in ("data", "value", "payload"):  # JetStream and cursor, Kafka, MQTT
        if key in variables:
            return int(variables[key]["n"])
    raise AssertionError(variables)


class RemovalClock(threading.Thread):
    """From its start (a node's removal): when each trigger is RUNNING again and when each
    source has made its `count` executions, in seconds; polls the API in its own thread so
    the test can go on (add a node, release work) meanwhile.

    A trigger counts as RUNNING again only once it was seen not RUNNING: the listener on
    the removed node must have gone (a process there may answer for a moment after the
    removal), so a trigger that never goes down is never back, and the clock fails.

    Args:
        sources: The sources and their flow.
        base_url: The gateway's API.
        count: Executions expected per source in the end.
        within: Give up after this many seconds (`error` says where things stood).
    """

    def __init__(self, sources: DurableSources, base_url: str, count: int, within: float) -> None:
        super().__init__(daemon=True)
        self._sources = sources
        self._base_url = base_url
        self._count = count
        self._within = within
        self._removed_at = time.monotonic()
        self.down: set[str] = set()
        self.running_s: dict[str, float] = {}
        self.done_s: dict[str, float] = {}
        self.numbers: dict[str, list[int]] = {}
        self.error: str | None = None
        self.longest_answer_s = 0.0
        """The longest the trigger list took to answer (or time out)."""

    def run(self) -> None:
        with httpx.Client(base_url=self._base_url, timeout=30) as client:

            def check() -> bool:
                # A call to the lost host hangs until Ray sees the node gone: the time
                # is taken when the answer comes.
                asked = time.monotonic() - self._removed_at
                try:
                    running = self._sources.running(client)
                except httpx.TimeoutException:
                    running = set()
                now = time.monotonic() - self._removed_at
                self.longest_answer_s = max(self.longest_answer_s, now - asked)
                self.down |= set(LISTENERS) - running
                for trigger_id in (running & self.down) - set(self.running_s):
                    self.running_s[trigger_id] = now
                done = self._sources.done(client, self._count)
                now = time.monotonic() - self._removed_at
                for trigger_id, numbers in done.items():
                    if trigger_id not in self.done_s:
                        self.done_s[trigger_id], self.numbers[trigger_id] = now, numbers
                return len(self.running_s) == len(self.done_s) == len(LISTENERS)

            try:
                eventually_sync(check, within=self._within, what="sources", interval=0.2)
            except Exception as exc:  # anything: the test reads `error` after `join`
                self.error = f"{exc!r}: seen down {sorted(self.down)}, running again "
                self.error += f"{self.running_s}, done {self.done_s}"
                with contextlib.suppress(Exception):
                    self.error += f": {self._sources.progress(client)}"

    def report(self) -> str:
        """The measured times, one phrase per source."""
        times = ", ".join(
            f"{t} RUNNING {self.running_s[t]:.1f}s, done {self.done_s[t]:.1f}s" for t in LISTENERS
        )
        return f"{times} (trigger list answered within {self.longest_answer_s:.1f}s)"
