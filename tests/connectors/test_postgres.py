"""Postgres connector against a real server: NOTIFY, cursor table, polling, Query task."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from connectors.postgres import (
    PostgresQuery,
    PostgresRealtimeTrigger,
    PostgresTrigger,
    close_pools,
)
from connectors.postgres._poll import tick_at
from flows import ConnectorError, Delivery, Event, Listener, PoisonMessage, TaskError
from tests.connectors.fakes import FakeListenerContext, FakeRunContext, Pump

pytestmark = pytest.mark.integration

WAIT_S = 10.0  # deadline for something that should arrive


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Listener], Awaitable[Pump]]]:
    """Connect listeners and pump their events; everything is stopped and closed after."""
    started: list[tuple[Listener, Pump]] = []

    async def start(listener: Listener) -> Pump:
        await listener.connect()
        pump = Pump(listener)
        started.append((listener, pump))
        return pump

    yield start
    for listener, pump in reversed(started):
        await pump.stop()
        await listener.close()


@pytest.fixture
async def db(fresh_database: str) -> AsyncIterator[str]:
    """A fresh database; the Query task's pools are closed before it is dropped."""
    yield fresh_database
    await close_pools()


async def sql(dsn: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


async def terminate(dsn: str, query_like: str) -> None:
    """Cut the server connections whose current query is LIKE `query_like`."""
    await sql(
        dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE $1",
        query_like,
    )


def realtime(**props: Any) -> PostgresRealtimeTrigger:
    return PostgresRealtimeTrigger.model_validate(
        {"id": "pg", "type": "postgres.RealtimeTrigger", **props}
    )


def events(deliveries: list[Delivery]) -> list[Event]:
    assert all(isinstance(d, Event) for d in deliveries), deliveries
    return [d for d in deliveries if isinstance(d, Event)]


def channel_name() -> str:
    return f"ch_{uuid.uuid4().hex}"


# --- LISTEN/NOTIFY ---------------------------------------------------------------------


async def test_notify_round_trip_with_poison(postgres_dsn: str, running: Any) -> None:
    channel = channel_name()
    listener = realtime(url=postgres_dsn, channel=channel, deserializer="JSON").create_listener(
        FakeListenerContext()
    )
    pump = await running(listener)
    for payload in ('{"order": 1, "total": 120.5}', "not json", '{"order": 2}'):
        await sql(postgres_dsn, "SELECT pg_notify($1, $2)", channel, payload)

    first, poison, last = await pump.take(3)
    assert isinstance(first, Event)
    assert first.variables == {"channel": channel, "payload": {"order": 1, "total": 120.5}}
    assert first.dedupe_key is None
    assert first.raw == b'{"order": 1, "total": 120.5}'
    assert isinstance(poison, PoisonMessage)
    assert "JSON" in poison.reason
    assert poison.raw == b"not json"
    assert isinstance(last, Event)
    assert last.variables == {"channel": channel, "payload": {"order": 2}}
    for delivery in (first, poison, last):
        await listener.ack(delivery)


async def test_notify_string_payload(postgres_dsn: str, running: Any) -> None:
    channel = channel_name()
    listener = realtime(url=postgres_dsn, channel=channel).create_listener(FakeListenerContext())
    pump = await running(listener)
    await sql(postgres_dsn, "SELECT pg_notify($1, $2)", channel, "hello")
    (event,) = events(await pump.take(1))
    assert event.variables == {"channel": channel, "payload": "hello"}


async def test_notify_backpressure(postgres_dsn: str, running: Any) -> None:
    channel = channel_name()
    listener = realtime(url=postgres_dsn, channel=channel, maxInFlight=5).create_listener(
        FakeListenerContext()
    )
    pump = await running(listener)
    await sql(postgres_dsn, "SELECT pg_notify($1, i::text) FROM generate_series(1, 20) i", channel)

    received = events(await pump.take(5))
    assert await pump.quiet() == []
    while len(received) < 20:
        batch = received[-5:]
        for event in batch:
            await listener.ack(event)
        more = events(await pump.take(min(5, 20 - len(received))))
        assert await pump.quiet() == []
        received.extend(more)
    assert [e.variables["payload"] for e in received] == [str(i) for i in range(1, 21)]


async def test_notify_lost_connection_raises_then_reconnects(
    postgres_dsn: str, running: Any
) -> None:
    channel = channel_name()
    listener = realtime(url=postgres_dsn, channel=channel).create_listener(FakeListenerContext())
    pump = await running(listener)
    await terminate(postgres_dsn, f'LISTEN "{channel}"%')
    await pump.ended(WAIT_S)
    assert isinstance(pump.error, ConnectorError)

    await listener.close()
    pump = await running(listener)
    await sql(postgres_dsn, "SELECT pg_notify($1, 'again')", channel)
    (event,) = events(await pump.take(1))
    assert event.variables["payload"] == "again"


# --- cursor table ----------------------------------------------------------------------


async def create_rows_table(dsn: str, table: str) -> None:
    await sql(
        dsn,
        f"""CREATE TABLE {table} (
        id bigserial PRIMARY KEY, name text, amount numeric(10, 2),
        created timestamptz DEFAULT '2024-05-01T12:00:00Z', doc jsonb, blob bytea)""",
    )


async def insert_rows(dsn: str, table: str, first: int, last: int) -> None:
    await sql(
        dsn,
        f"INSERT INTO {table} (name, amount, doc, blob) "
        "SELECT 'row ' || i, i * 1.5, jsonb_build_object('i', i), '\\x0102'::bytea "
        "FROM generate_series($1::int, $2::int) i",
        first,
        last,
    )


async def test_cursor_resumes_after_acked_rows(db: str, running: Any) -> None:
    table = f"signups_{uuid.uuid4().hex[:8]}"
    await create_rows_table(db, table)
    await insert_rows(db, table, 1, 20)
    ctx = FakeListenerContext()
    listener = realtime(url=db, table=table, cursorColumn="id", batchSize=7).create_listener(ctx)
    pump = await running(listener)

    first = events(await pump.take(20))
    assert [e.variables["data"]["id"] for e in first] == list(range(1, 21))
    assert first[0].dedupe_key == f"pg:{table}:1"
    assert first[0].variables == {"data": {
        "id": 1, "name": "row 1", "amount": 1.5, "created": "2024-05-01T12:00:00+00:00",
        "doc": {"i": 1}, "blob": base64.b64encode(b"\x01\x02").decode(),
    }}  # fmt: skip
    # Acks out of order; row 13 is acked but 11 and 12 are not: the cursor stops at 10.
    for event in [*reversed(first[:10]), first[12]]:
        await listener.ack(event)
    await listener.close()
    assert ctx.cursor == {"table": table, "column": "id", "value": 10}

    await insert_rows(db, table, 21, 25)  # while Kestrel was away
    pump = await running(listener)
    again = events(await pump.take(15))
    assert [e.variables["data"]["id"] for e in again] == list(range(11, 26))
    assert again[2].dedupe_key == first[12].dedupe_key  # the host dedupes it
    assert await pump.quiet() == []


async def test_cursor_backpressure(db: str, running: Any) -> None:
    table = f"orders_{uuid.uuid4().hex[:8]}"
    await create_rows_table(db, table)
    await insert_rows(db, table, 1, 20)
    listener = realtime(url=db, table=table, cursorColumn="id", maxInFlight=5).create_listener(
        FakeListenerContext()
    )
    pump = await running(listener)
    held = events(await pump.take(5))
    assert await pump.quiet() == []
    await listener.ack(held[3])  # out of order: one slot frees, the cursor does not move
    (sixth,) = events(await pump.take(1))
    assert sixth.variables["data"]["id"] == 6
    assert await pump.quiet() == []


async def test_cursor_wakeup_channel_and_poll_interval(db: str, running: Any) -> None:
    table = f"events_{uuid.uuid4().hex[:8]}"
    channel = channel_name()
    await create_rows_table(db, table)
    woken = realtime(
        url=db, table=table, cursorColumn="id", channel=channel, pollInterval="PT1H"
    ).create_listener(FakeListenerContext())
    polled = realtime(
        url=db, table=table, cursorColumn="id", pollInterval="PT0.1S"
    ).create_listener(FakeListenerContext())
    woken_pump, polled_pump = await running(woken), await running(polled)
    assert await woken_pump.quiet(0.2) == []

    await insert_rows(db, table, 1, 1)
    (by_poll,) = events(await polled_pump.take(1))
    assert "channel" not in by_poll.variables
    await sql(db, "SELECT pg_notify($1, 'new row')", channel)
    (by_notify,) = events(await woken_pump.take(1))
    assert by_notify.variables["channel"] == channel
    assert by_notify.variables["data"]["name"] == "row 1"


async def test_cursor_on_a_timestamp_column(db: str, running: Any) -> None:
    table = f"audit_{uuid.uuid4().hex[:8]}"
    await sql(db, f"CREATE TABLE {table} (at timestamptz PRIMARY KEY, what text)")
    await sql(
        db,
        f"INSERT INTO {table} SELECT '2024-01-01T00:00:00Z'::timestamptz "
        "+ i * interval '1.5 second', 'step ' || i FROM generate_series(1, 4) i",
    )
    ctx = FakeListenerContext()
    listener = realtime(url=db, table=table, cursorColumn="at").create_listener(ctx)
    pump = await running(listener)
    rows = events(await pump.take(4))
    assert rows[1].dedupe_key == f"pg:{table}:2024-01-01T00:00:03+00:00"
    for event in rows[:2]:
        await listener.ack(event)
    await listener.close()
    assert ctx.cursor["value"] == "2024-01-01T00:00:03+00:00"
    pump = await running(listener)
    assert [e.variables["data"]["what"] for e in events(await pump.take(2))] == ["step 3", "step 4"]


async def test_cursor_lost_connection_raises_then_resumes(db: str, running: Any) -> None:
    table = f"lost_{uuid.uuid4().hex[:8]}"
    await create_rows_table(db, table)
    await insert_rows(db, table, 1, 3)
    ctx = FakeListenerContext()
    listener = realtime(url=db, table=table, cursorColumn="id").create_listener(ctx)
    pump = await running(listener)
    first = events(await pump.take(3))
    await listener.ack(first[0])
    await terminate(db, f"SELECT * FROM {table}%")
    await pump.ended(WAIT_S)
    assert isinstance(pump.error, ConnectorError)

    await listener.close()
    assert ctx.cursor["value"] == 1
    pump = await running(listener)
    assert [e.variables["data"]["id"] for e in events(await pump.take(2))] == [2, 3]


async def test_cursor_refuses_an_unsupported_column_type(db: str) -> None:
    table = f"docs_{uuid.uuid4().hex[:8]}"
    await sql(db, f"CREATE TABLE {table} (id uuid PRIMARY KEY)")
    listener = realtime(url=db, table=table, cursorColumn="id").create_listener(
        FakeListenerContext()
    )
    with pytest.raises(ConnectorError, match="cannot be a cursor"):
        await listener.connect()
    await listener.close()


# --- polling trigger ---------------------------------------------------------------------


def polling(**props: Any) -> PostgresTrigger:
    return PostgresTrigger.model_validate({"id": "poll", "type": "postgres.Trigger", **props})


async def test_polling_trigger_fetch_and_after_sql(db: str, running: Any) -> None:
    await sql(db, "CREATE TABLE jobs (id int PRIMARY KEY, status text)")
    await sql(db, "INSERT INTO jobs VALUES (1, 'NEW'), (2, 'NEW'), (3, 'DONE')")
    ctx = FakeListenerContext()
    trigger = polling(
        url=db,
        interval="PT0.2S",
        fetchType="FETCH",
        sql="SELECT id, status FROM jobs WHERE status = :status ORDER BY id",
        parameters={"status": "NEW"},
        afterSQL="UPDATE jobs SET status = 'TAKEN' WHERE status = :status",
    )
    listener = trigger.create_listener(ctx)
    pump = await running(listener)

    (event,) = events(await pump.take(1))
    assert event.variables == {
        "size": 2,
        "rows": [{"id": 1, "status": "NEW"}, {"id": 2, "status": "NEW"}],
    }
    assert event.dedupe_key is not None and event.dedupe_key.startswith("pg-poll:")
    tick = dt.datetime.fromisoformat(event.dedupe_key.removeprefix("pg-poll:"))
    assert tick == tick_at(tick, dt.timedelta(seconds=0.2))
    assert await pump.quiet(0.5) == []  # one poll in flight at a time
    assert [r["status"] for r in await sql(db, "SELECT status FROM jobs ORDER BY id")] == [
        "NEW",
        "NEW",
        "DONE",
    ]  # afterSQL waits for the ack

    await listener.ack(event)
    assert ctx.cursor == {"tick": tick.isoformat()}
    assert [r["status"] for r in await sql(db, "SELECT status FROM jobs ORDER BY id")] == [
        "TAKEN",
        "TAKEN",
        "DONE",
    ]
    await sql(db, "INSERT INTO jobs VALUES (4, 'NEW')")
    (later,) = events(await pump.take(1))
    assert later.variables == {"size": 1, "rows": [{"id": 4, "status": "NEW"}]}
    assert later.dedupe_key != event.dedupe_key


async def test_polling_trigger_same_tick_same_key(db: str, running: Any) -> None:
    await sql(db, "CREATE TABLE jobs (id int PRIMARY KEY, status text)")
    await sql(db, "INSERT INTO jobs VALUES (1, 'NEW')")
    trigger = polling(
        url=db,
        interval="PT1H",
        fetchType="FETCH_ONE",
        sql="SELECT * FROM jobs WHERE id = $1",
        parameters=[1],
        afterSQL="UPDATE jobs SET status = 'TAKEN' WHERE id = $1",
    )
    listener = trigger.create_listener(FakeListenerContext())
    pump = await running(listener)
    (event,) = events(await pump.take(1))
    assert event.variables == {"size": 1, "row": {"id": 1, "status": "NEW"}}
    await pump.stop()
    await listener.close()  # no ack: the transaction is rolled back, the tick polled again

    pump = await running(listener)
    (again,) = events(await pump.take(1))
    hour = dt.timedelta(hours=1)
    if tick_at(dt.datetime.now(dt.UTC), hour) == tick_at(again.received_at, hour):
        assert again.dedupe_key == event.dedupe_key
    assert again.variables["row"]["status"] == "NEW"


async def test_polling_trigger_query_error(db: str, running: Any) -> None:
    ctx = FakeListenerContext()
    listener = polling(url=db, interval="PT1S", sql="SELECT * FROM missing").create_listener(ctx)
    pump = await running(listener)
    await pump.ended(WAIT_S)
    assert isinstance(pump.error, ConnectorError)
    assert "missing" in str(pump.error)
    assert any(level == "ERROR" for level, _ in ctx.logs)


# --- Query task --------------------------------------------------------------------------


def query(dsn: str, statement: str, **props: Any) -> PostgresQuery:
    return PostgresQuery.model_validate(
        {"id": "q", "type": "postgres.Query", "url": dsn, "sql": statement, **props}
    )


async def test_query_task_fetch_types_and_parameters(db: str) -> None:
    ctx = FakeRunContext()
    created = await query(
        db,
        """CREATE TABLE items (
        id int PRIMARY KEY, name text, price numeric(10, 2), ref uuid, seen timestamptz,
        meta jsonb)""",
    ).run(ctx)
    assert created == {"size": 0}
    ref = uuid.uuid4()
    inserted = await query(
        db,
        "INSERT INTO items VALUES ($1, $2, $3, $4, $5, $6)",
        parameters=[1, "apple", "1.25", str(ref), "2024-05-01T10:00:00+00:00", {"tags": ["a"]}],
    ).run(ctx)
    assert inserted == {"size": 1}
    named = await query(
        db,
        "INSERT INTO items (id, name, price) VALUES (:id, :name, :price), "
        "(:id + 1, :name || '::x', :price)",  # ':name' inside quotes stays text
        parameters={"id": "2", "name": "pear", "price": 2},
    ).run(ctx)
    assert named == {"size": 2}

    one = await query(
        db, "SELECT * FROM items WHERE id = $1", parameters=[1], fetchType="FETCH_ONE"
    ).run(ctx)
    assert one == {"size": 1, "row": {
        "id": 1, "name": "apple", "price": 1.25, "ref": str(ref),
        "seen": "2024-05-01T10:00:00+00:00", "meta": {"tags": ["a"]},
    }}  # fmt: skip
    rows = await query(
        db,
        "SELECT id, name FROM items WHERE price >= :min::numeric ORDER BY id",
        parameters={"min": 2},
        fetchType="FETCH",
    ).run(ctx)
    assert rows == {"size": 2, "rows": [{"id": 2, "name": "pear"}, {"id": 3, "name": "pear::x"}]}
    none = await query(db, "SELECT * FROM items WHERE id = 99", fetchType="FETCH_ONE").run(ctx)
    assert none == {"size": 0, "row": None}
    updated = await query(
        db,
        "UPDATE items SET name = upper(name) WHERE id > :id",
        parameters={"id": 1},
        afterSQL="DELETE FROM items WHERE id = :id",
    ).run(ctx)
    assert updated == {"size": 2}
    left = await query(db, "SELECT name FROM items ORDER BY id", fetchType="FETCH").run(ctx)
    assert left["rows"] == [{"name": "PEAR"}, {"name": "PEAR::X"}]


async def test_query_task_errors(db: str) -> None:
    with pytest.raises(TaskError) as bad_sql:
        await query(db, "SELEKT 1").run(FakeRunContext())
    assert not bad_sql.value.retriable
    assert "42601" in str(bad_sql.value)
    with pytest.raises(TaskError) as bad_value:
        await query(db, "SELECT $1::int", parameters=["nope"], fetchType="FETCH_ONE").run(
            FakeRunContext()
        )
    assert not bad_value.value.retriable
    unreachable = "postgresql://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(TaskError) as down:
        await query(unreachable, "SELECT 1").run(FakeRunContext())
    assert down.value.retriable
    assert "secret" not in str(down.value)
