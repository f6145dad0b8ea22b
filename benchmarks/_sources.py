"""One publisher and one flow maker per event source.

Every event carries ``{"n": <index>, "sent": <time.time() just before sending>}``; the
flow's trigger puts it in its variables (Kafka ``trigger.value``, NATS ``trigger.data``,
MQTT ``trigger.payload``, NOTIFY ``trigger.payload``, cursor ``trigger.data``, webhook
``trigger.body``), and the latency benchmark reads it back from the stored execution.
The flow runs ONE runnable task, ``benchmarks.funcs:noop``, with no ``resources``: it runs
on the host's warm `TaskWorker` actor.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

import asyncpg

from ._deploy import Target, on_api_server, on_listener_host
from ._servers import Brokers

TASKS = """tasks:
  - id: noop
    type: python.Function
    function: "benchmarks.funcs:noop"
"""


def event(n: int) -> dict[str, Any]:
    """The payload of event `n`, stamped with the send time."""
    return {"n": n, "sent": time.time()}


def encode(n: int) -> bytes:
    return json.dumps(event(n)).encode()


class Source(abc.ABC):
    """An event source: sets itself up, publishes event ``n``, names its flow's trigger.

    Args:
        brokers: Broker addresses.
        dsn: The run's database (the store; Postgres sources use it for their events too).
        namespace: The flow's namespace.
    """

    key: ClassVar[str]
    label: ClassVar[str]
    variable: ClassVar[str]
    """Where the payload is in the trigger variables."""
    broker_baseline: ClassVar[str]
    """What the raw baseline measures, for tables."""

    def __init__(self, brokers: Brokers, dsn: str, namespace: str = "bench.latency") -> None:
        self.brokers = brokers
        self.dsn = dsn
        self.namespace = namespace
        self.tag = uuid.uuid4().hex[:8]
        self.flow_id = f"{self.key}-{self.tag}"
        self.target: Target | None = None

    async def open(self) -> None:
        """Create topics/streams/tables and connect the publisher."""
        return None

    async def close(self) -> None:
        """Disconnect the publisher."""
        return None

    @abc.abstractmethod
    def trigger(self) -> str:
        """The YAML of the flow's ``triggers:`` list."""

    @abc.abstractmethod
    async def publish(self, n: int) -> None:
        """Send event `n` (stamped just before it leaves)."""

    async def publish_many(self, ns: Sequence[int]) -> None:
        """Send several events as fast as the client allows (throughput load)."""
        for n in ns:
            await self.publish(n)

    async def flush(self) -> None:
        """Wait until everything published has left (or been answered)."""
        return None

    def payload(self, trigger: dict[str, Any]) -> dict[str, Any]:
        """The event payload back from an execution's trigger variables."""
        value = trigger[self.variable]
        return value if isinstance(value, dict) else json.loads(value)

    def flow(self) -> str:
        return f"id: {self.flow_id}\nnamespace: {self.namespace}\n{TASKS}{self.trigger()}"

    @contextlib.asynccontextmanager
    async def deployed(self) -> AsyncIterator[Target]:
        """The flow deployed where this source's events are taken in."""
        async with on_listener_host(self.dsn, self.flow()) as target:
            self.target = target
            yield target


class NatsCore(Source):
    key = "nats"
    label = "NATS core"
    variable = "data"
    broker_baseline = "nats-py publish → subscriber callback"

    async def open(self) -> None:
        import nats

        self.subject = f"bench.core.{self.tag}"
        self.client = await nats.connect(str(self.brokers.nats_url))

    async def close(self) -> None:
        await self.client.drain()

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: events\n    type: nats.RealtimeTrigger\n"
            f"    url: {self.brokers.nats_url}\n    subject: '{self.subject}'\n"
            "    deserializer: JSON\n"
        )

    async def publish(self, n: int) -> None:
        await self.client.publish(self.subject, encode(n))

    async def publish_many(self, ns: Sequence[int]) -> None:
        for n in ns:
            await self.client.publish(self.subject, encode(n))
        await self.client.flush()

    async def flush(self) -> None:
        await self.client.flush()


class JetStream(NatsCore):
    key = "jetstream"
    label = "NATS JetStream"
    broker_baseline = "nats-py JetStream publish → push consumer callback"

    async def open(self) -> None:
        await super().open()
        self.stream = f"BENCH{self.tag.upper()}"
        self.subject = f"bench.js.{self.tag}.events"
        self.js = self.client.jetstream()
        await self.js.add_stream(name=self.stream, subjects=[f"bench.js.{self.tag}.>"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.js.delete_stream(self.stream)
        await super().close()

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: events\n    type: nats.RealtimeTrigger\n"
            f"    url: {self.brokers.nats_url}\n    subject: '{self.subject}'\n"
            f"    stream: {self.stream}\n    durableId: kestrel-{self.tag}\n"
            "    deserializer: JSON\n"
        )

    async def publish(self, n: int) -> None:
        await self.js.publish(self.subject, encode(n))

    async def publish_many(self, ns: Sequence[int]) -> None:
        # Load generation: core publishes onto the stream's subject (the stream stores them
        # just the same) without waiting for one PubAck per message; one flush per batch.
        await super().publish_many(ns)


class Mqtt(Source):
    key = "mqtt"
    label = "MQTT QoS 1"
    variable = "payload"
    broker_baseline = "paho publish QoS 1 → paho subscriber QoS 1"

    async def open(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        url = urlsplit(self.brokers.mqtt_url or "")
        self.topic = f"bench/{self.tag}/events"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{self.tag}")
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        await asyncio.to_thread(self.client.connect, url.hostname or "127.0.0.1", url.port or 1883)
        self.client.loop_start()
        self._infos: list[Any] = []

    async def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: events\n    type: mqtt.RealtimeTrigger\n"
            f"    server: {self.brokers.mqtt_url}\n    topic: {self.topic}\n    qos: 1\n"
            f"    clientId: kestrel-{self.tag}\n"
        )

    async def publish(self, n: int) -> None:
        self._infos.append(self.client.publish(self.topic, encode(n), qos=1))

    async def flush(self) -> None:
        infos, self._infos = self._infos, []

        def wait() -> None:
            for info in infos:
                info.wait_for_publish(timeout=60)

        await asyncio.to_thread(wait)


class Kafka(Source):
    key = "kafka"
    label = "Kafka"
    variable = "value"
    broker_baseline = "aiokafka send_and_wait → consumer (fetch.max.wait.ms=5, same group opts)"

    async def open(self) -> None:
        from aiokafka import AIOKafkaProducer
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        self.topic = f"bench-{self.tag}"
        admin = AIOKafkaAdminClient(bootstrap_servers=self.brokers.kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(self.topic, num_partitions=1, replication_factor=1)]
            )
        finally:
            await admin.close()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.brokers.kafka_bootstrap)
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    def properties(self) -> dict[str, str]:
        props = {"bootstrap.servers": str(self.brokers.kafka_bootstrap), "fetch.max.wait.ms": "5"}
        for name, value in self.brokers.kafka_group_options.items():
            props[name.replace("_ms", ".ms").replace("_", ".")] = str(value)
        return props

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: events\n    type: kafka.RealtimeTrigger\n"
            f"    topic: {self.topic}\n    groupId: g-{self.tag}\n    valueDeserializer: JSON\n"
            f"    properties: {json.dumps(self.properties())}\n"
        )

    async def publish(self, n: int) -> None:
        await self.producer.send_and_wait(self.topic, encode(n))


class PgNotify(Source):
    key = "pg-notify"
    label = "Postgres NOTIFY"
    variable = "payload"
    broker_baseline = "asyncpg pg_notify → LISTEN callback"

    async def open(self) -> None:
        self.channel = f"bench_{self.tag}"
        self.conn = await asyncpg.connect(self.dsn)

    async def close(self) -> None:
        await self.conn.close()

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: events\n    type: postgres.RealtimeTrigger\n"
            f'    url: "{self.dsn}"\n    channel: {self.channel}\n    deserializer: JSON\n'
        )

    async def publish(self, n: int) -> None:
        await self.conn.execute("SELECT pg_notify($1, $2)", self.channel, json.dumps(event(n)))


class PgCursor(Source):
    """Rows inserted into a table; an insert trigger NOTIFYs the listener's wake channel."""

    key = "pg-cursor"
    label = "Postgres cursor"
    variable = "data"
    broker_baseline = "asyncpg INSERT (row trigger pg_notify) → LISTEN callback"

    async def open(self) -> None:
        self.table = f"bench_rows_{self.tag}"
        self.channel = f"bench_wake_{self.tag}"
        self.conn = await asyncpg.connect(self.dsn)
        await create_notifying_table(self.conn, self.table, self.channel)

    async def close(self) -> None:
        await self.conn.close()

    def trigger(self) -> str:
        return (
            "triggers:\n  - id: rows\n    type: postgres.RealtimeTrigger\n"
            f'    url: "{self.dsn}"\n    table: {self.table}\n    cursorColumn: id\n'
            f"    channel: {self.channel}\n    pollInterval: PT1S\n"
        )

    async def publish(self, n: int) -> None:
        await self.conn.execute(
            f"INSERT INTO {self.table} (n, sent) VALUES ($1, $2)", n, time.time()
        )


async def create_notifying_table(conn: asyncpg.Connection, table: str, channel: str) -> None:
    """``table(id bigserial, n int, sent float8)`` whose inserts NOTIFY ``channel`` (n)."""
    await conn.execute(
        f"""
        CREATE TABLE {table} (id bigserial PRIMARY KEY, n integer NOT NULL,
                              sent double precision NOT NULL);
        CREATE FUNCTION {table}_wake() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{channel}', NEW.n::text); RETURN NEW; END $$;
        CREATE TRIGGER {table}_wake AFTER INSERT ON {table}
            FOR EACH ROW EXECUTE FUNCTION {table}_wake();
        """
    )


class Webhook(Source):
    """HTTP POSTs to the real API's webhook endpoint (FastAPI + `Runtime`, in this process).

    The server runs webhook executions itself (their tasks on its warm worker actor).
    """

    key = "webhook"
    label = "Webhook (HTTP API)"
    variable = "body"
    broker_baseline = "httpx POST → trivial endpoint on the same server → response"
    KEY = "bench-webhook-key"

    async def open(self) -> None:
        import httpx

        self.http = httpx.AsyncClient(timeout=30)
        self._pending: set[asyncio.Task[Any]] = set()
        self.errors = 0

    async def close(self) -> None:
        await self.flush()
        await self.http.aclose()

    def trigger(self) -> str:
        return f"triggers:\n  - id: hook\n    type: trigger.Webhook\n    key: {self.KEY}\n"

    @property
    def url(self) -> str:
        assert self.target is not None and self.target.url is not None
        return self.target.url

    def webhook_url(self) -> str:
        return f"{self.url}/api/v1/executions/webhook/{self.namespace}/{self.flow_id}/{self.KEY}"

    async def _post(self, body: bytes) -> None:
        response = await self.http.post(
            self.webhook_url(), content=body, headers={"content-type": "application/json"}
        )
        if response.status_code >= 400:
            self.errors += 1

    async def publish(self, n: int) -> None:
        # Not awaited here: a slow answer must not delay the next event's send time.
        task = asyncio.create_task(self._post(encode(n)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending)

    @contextlib.asynccontextmanager
    async def deployed(self) -> AsyncIterator[Target]:
        async def echo() -> dict[str, bool]:
            return {"ok": True}

        async with on_api_server(self.dsn, self.flow(), {"/bench/echo": echo}) as target:
            # Webhook executions run in the server process (this one): profile it.
            target.pid = os.getpid()
            self.target = target
            yield target


SOURCES: dict[str, type[Source]] = {
    cls.key: cls for cls in (NatsCore, JetStream, Mqtt, Kafka, PgNotify, PgCursor, Webhook)
}
"""Every source, in the order the latency benchmark runs them."""
