"""Same-run baselines: what each hop costs without Kestrel in between.

* Broker round trips with the same client libraries, publisher and subscriber in this
  process: publish (stamped just before) → subscriber callback. Paced like the latency
  run, after a ready handshake (the first probe message arrives), no sleeps.
* Ray: inside an async probe actor (like our listener host), awaiting refs: a bare Ray
  task (submit → body start, and the full round trip) and an actor call to an async
  actor (call → method start); and a Postgres INSERT commit from inside the actor.
* Postgres INSERT commit from this process (`benchmarks.store_bench.baseline_serial`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import ray

from ._sources import Source, create_notifying_table

Send = Callable[[int], Awaitable[None]]


class RoundTrips:
    """Stamps sends and receipts of message ``n``; completes when every one came back."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.done = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def stamp(self) -> float:
        return time.time()

    def got(self, n: int, at: float | None = None) -> None:
        """Record a receipt (callable from the loop's thread)."""
        self.received.setdefault(n, at if at is not None else time.time())
        if len(self.received) >= self.total:
            self.done.set()

    def got_threadsafe(self, n: int) -> None:
        at = time.time()
        self.loop.call_soon_threadsafe(self.got, n, at)

    def latencies(self, skip: int) -> list[float]:
        return [self.received[n] - self.sent[n] for n in sorted(self.sent) if n >= skip]


async def paced(rate: float, count: int, send: Send, first: int = 0) -> None:
    """Call ``send(first + i)`` for i < count at `rate` per second (absolute schedule)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing, not synchronisation
        await send(first + i)


async def _measure(
    send: Send, trips: RoundTrips, samples: int, rate: float, warmup: int, within: float = 120
) -> list[float]:
    """Probe 0 until it arrives (ready), then warm-up + samples, paced; wait for all."""

    async def stamped(n: int) -> None:
        trips.sent[n] = trips.stamp()
        await send(n)

    await stamped(-1)
    async with asyncio.timeout(within):
        while -1 not in trips.received:
            await asyncio.sleep(0.01)
    trips.total = warmup + samples + 1
    await paced(rate, warmup + samples, stamped)
    async with asyncio.timeout(within):
        await trips.done.wait()
    return trips.latencies(warmup)


def _n(data: bytes) -> int:
    return int(json.loads(data)["n"])


def _payload(n: int) -> bytes:
    return json.dumps({"n": n, "sent": time.time()}).encode()


async def nats_core(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    import nats

    client = await nats.connect(str(source.brokers.nats_url))
    subject = f"bench.baseline.{uuid.uuid4().hex[:8]}"
    trips = RoundTrips(10**9)

    async def on_message(msg: Any) -> None:
        trips.got(_n(msg.data))

    try:
        await client.subscribe(subject, cb=on_message)
        await client.flush()

        async def send(n: int) -> None:
            await client.publish(subject, _payload(n))

        return await _measure(send, trips, samples, rate, warmup)
    finally:
        await client.drain()


async def jetstream(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    import nats

    client = await nats.connect(str(source.brokers.nats_url))
    js = client.jetstream()
    tag = uuid.uuid4().hex[:8]
    stream, subject = f"BASE{tag.upper()}", f"bench.basejs.{tag}"
    await js.add_stream(name=stream, subjects=[subject])
    trips = RoundTrips(10**9)

    async def on_message(msg: Any) -> None:
        trips.got(_n(msg.data))
        await msg.ack()

    try:
        await js.subscribe(subject, durable=f"base-{tag}", cb=on_message, manual_ack=True)

        async def send(n: int) -> None:
            await js.publish(subject, _payload(n))

        return await _measure(send, trips, samples, rate, warmup)
    finally:
        await js.delete_stream(stream)
        await client.drain()


async def mqtt(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    url = urlsplit(source.brokers.mqtt_url or "")
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    topic = f"bench/baseline/{uuid.uuid4().hex[:8]}"
    trips = RoundTrips(10**9)
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    v2 = CallbackAPIVersion.VERSION2
    sub = paho.Client(v2, client_id=f"base-sub-{uuid.uuid4().hex[:8]}")
    pub = paho.Client(v2, client_id=f"base-pub-{uuid.uuid4().hex[:8]}")
    pub.max_inflight_messages_set(1000)

    def on_message(_client: Any, _userdata: Any, msg: Any) -> None:
        trips.got_threadsafe(_n(bytes(msg.payload)))

    def on_subscribe(*_args: Any) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    sub.on_message = on_message
    sub.on_subscribe = on_subscribe
    for client in (sub, pub):
        await asyncio.to_thread(client.connect, host, port)
        client.loop_start()
    try:
        sub.subscribe(topic, qos=1)
        async with asyncio.timeout(30):
            await subscribed.wait()

        async def send(n: int) -> None:
            pub.publish(topic, _payload(n), qos=1)

        return await _measure(send, trips, samples, rate, warmup)
    finally:
        for client in (sub, pub):
            client.loop_stop()
            client.disconnect()


async def kafka(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    bootstrap = source.brokers.kafka_bootstrap
    topic = f"baseline-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=5,
        **source.brokers.kafka_group_options,
    )
    await producer.start()
    await consumer.start()
    trips = RoundTrips(10**9)

    async def consume() -> None:
        async for record in consumer:
            trips.got(_n(record.value))

    reader = asyncio.create_task(consume())
    try:

        async def send(n: int) -> None:
            await producer.send_and_wait(topic, _payload(n))

        return await _measure(send, trips, samples, rate, warmup)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


async def _pg(dsn: str, samples: int, rate: float, warmup: int, *, with_table: bool) -> list[float]:
    tag = uuid.uuid4().hex[:8]
    channel, table = f"base_{tag}", f"base_rows_{tag}"
    listener = await asyncpg.connect(dsn)
    sender = await asyncpg.connect(dsn)
    trips = RoundTrips(10**9)
    try:
        if with_table:
            await create_notifying_table(sender, table, channel)

        def on_notify(_conn: object, _pid: int, _channel: str, payload: object, /) -> None:
            # The row trigger sends n as text; a plain NOTIFY sends the JSON event.
            text = str(payload)
            trips.got(int(text) if with_table else _n(text.encode()))

        await listener.add_listener(channel, on_notify)

        async def send(n: int) -> None:
            if with_table:
                await sender.execute(
                    f"INSERT INTO {table} (n, sent) VALUES ($1, $2)", n, time.time()
                )
            else:
                await sender.execute("SELECT pg_notify($1, $2)", channel, _payload(n).decode())

        return await _measure(send, trips, samples, rate, warmup)
    finally:
        if with_table:
            await sender.execute(f"DROP TABLE IF EXISTS {table}")
        await listener.close()
        await sender.close()


async def pg_notify(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    return await _pg(source.dsn, samples, rate, warmup, with_table=False)


async def pg_cursor(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    return await _pg(source.dsn, samples, rate, warmup, with_table=True)


async def http(source: Source, samples: int, rate: float, warmup: int) -> list[float]:
    """Full HTTP round trip (request → response) to a trivial endpoint on the same server."""
    import httpx

    url = f"{source.target.url if source.target else ''}/bench/echo"
    trips = RoundTrips(10**9)
    async with httpx.AsyncClient(timeout=30) as client:

        async def send(n: int) -> None:
            response = await client.post(url, content=_payload(n))
            response.raise_for_status()
            trips.got(n)

        return await _measure(send, trips, samples, rate, warmup)


BROKER_BASELINES: dict[str, Callable[[Source, int, float, int], Awaitable[list[float]]]] = {
    "nats": nats_core,
    "jetstream": jetstream,
    "mqtt": mqtt,
    "kafka": kafka,
    "pg-notify": pg_notify,
    "pg-cursor": pg_cursor,
    "webhook": http,
}


# ---- Ray and Postgres, measured inside an actor ------------------------------------------


@ray.remote(max_retries=0)
def _body_started() -> float:
    return time.time()


class Echo:
    """An async actor whose method answers when it starts (like `TaskWorker.run`)."""

    async def started(self) -> float:
        return time.time()


class Probe:
    """An async actor that measures hops from where our hot path runs: inside an actor."""

    async def _paced(self, rate: float, count: int, one: Callable[[], Awaitable[Any]]) -> None:
        async def send(_n: int) -> None:
            await one()

        await paced(rate, count, send)

    async def ray_task(self, samples: int, rate: float, warmup: int) -> dict[str, list[float]]:
        """Bare Ray task: submit → body start, and submit → result back."""
        start: list[float] = []
        trip: list[float] = []

        async def one() -> None:
            t0 = time.time()
            began = await _body_started.remote()
            start.append(began - t0)
            trip.append(time.time() - t0)

        await self._paced(rate, warmup + samples, one)
        return {"start": start[warmup:], "round_trip": trip[warmup:]}

    async def actor_call(self, samples: int, rate: float, warmup: int) -> dict[str, list[float]]:
        """Call to a warm async actor: call → method start, and call → result back."""
        echo: Any = ray.remote(num_cpus=0)(Echo).remote()
        await echo.started.remote()
        start: list[float] = []
        trip: list[float] = []

        async def one() -> None:
            t0 = time.time()
            began = await echo.started.remote()
            start.append(began - t0)
            trip.append(time.time() - t0)

        try:
            await self._paced(rate, warmup + samples, one)
        finally:
            ray.kill(echo)
        return {"start": start[warmup:], "round_trip": trip[warmup:]}

    async def insert_commit(self, dsn: str, samples: int, rate: float, warmup: int) -> list[float]:
        """Single-row INSERT autocommits (durable) from inside this actor."""
        conn = await asyncpg.connect(dsn)
        table = f"probe_{uuid.uuid4().hex[:8]}"
        out: list[float] = []
        try:
            await conn.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, payload jsonb)")
            counter = iter(range(10**9))

            async def one() -> None:
                t0 = time.time()
                await conn.execute(
                    f"INSERT INTO {table} VALUES ($1, $2::jsonb)", str(next(counter)), '{"n":1}'
                )
                out.append(time.time() - t0)

            await self._paced(rate, warmup + samples, one)
            await conn.execute(f"DROP TABLE {table}")
        finally:
            await conn.close()
        return out[warmup:]


async def ray_and_postgres(
    dsn: str, samples: int, rate: float, warmup: int
) -> dict[str, list[float]]:
    """The in-actor baselines, one after another (never concurrently)."""
    probe: Any = ray.remote(num_cpus=0, max_concurrency=100)(Probe).remote()  # type: ignore[call-overload]
    try:
        task = await probe.ray_task.remote(samples, rate, warmup)
        actor = await probe.actor_call.remote(samples, rate, warmup)
        insert = await probe.insert_commit.remote(dsn, samples, rate, warmup)
    finally:
        ray.kill(probe)
    return {
        "ray_task_start": task["start"],
        "ray_task_round_trip": task["round_trip"],
        "ray_actor_call_start": actor["start"],
        "ray_actor_call_round_trip": actor["round_trip"],
        "pg_insert_commit_in_actor": insert,
    }


async def pg_insert_serial(dsn: str, ops: int) -> dict[str, Any]:
    """`store_bench.baseline_serial`: back-to-back INSERT commits from this process."""
    from .store_bench import baseline_serial

    result = await baseline_serial(dsn, ops)
    return {"n": result.ops, "p50": result.p50_ms, "p99": result.p99_ms}
