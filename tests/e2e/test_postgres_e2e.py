"""Postgres triggers end to end: cursor mode survives a host kill and a lost connection."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest

from .harness import CHEAP_TASKS, assert_exactly_once, deployed

pytestmark = pytest.mark.integration

N = 1000


def cursor_flow(table: str, dsn: str) -> str:
    return (
        f"id: ingest-{table.replace('_', '-')}\nnamespace: tests.e2e\n{CHEAP_TASKS}"
        f'triggers:\n  - id: rows\n    type: postgres.RealtimeTrigger\n    url: "{dsn}"\n'
        f"    table: {table}\n    cursorColumn: id\n    pollInterval: PT0.2S\n"
    )


async def insert(dsn: str, table: str, ids: range, pause: float = 0.0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for start in range(ids.start, ids.stop, 50):
            chunk = list(range(start, min(start + 50, ids.stop)))
            await conn.executemany(
                f"INSERT INTO {table} (id, body) VALUES ($1, $2)", [(i, f"row {i}") for i in chunk]
            )
            if pause:
                await asyncio.sleep(pause)
    finally:
        await conn.close()


async def make_table(dsn: str) -> str:
    table = f"events_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {table} (id bigint PRIMARY KEY, body text)")
    finally:
        await conn.close()
    return table


def row_id(execution: Any) -> int:
    return int(execution.trigger["data"]["id"])


async def test_thousand_rows_make_thousand_executions(
    fresh_database: str, ray_cluster: Any
) -> None:
    table = await make_table(fresh_database)
    async with deployed(fresh_database, cursor_flow(table, fresh_database)) as dep:
        await dep.wait_running()
        await insert(fresh_database, table, range(1, N + 1))
        found = await dep.wait_for_count(N)
        await dep.wait_all_ended()
    assert_exactly_once(found, set(range(1, N + 1)), row_id)
    sample = next(e for e in found if row_id(e) == 7)
    assert sample.trigger["data"] == {"id": 7, "body": "row 7"}


async def test_host_killed_mid_stream_loses_and_duplicates_nothing(
    fresh_database: str, ray_cluster: Any
) -> None:
    table = await make_table(fresh_database)
    async with deployed(fresh_database, cursor_flow(table, fresh_database)) as dep:
        await dep.wait_running()
        writer = asyncio.create_task(insert(fresh_database, table, range(1, N + 1), pause=0.05))
        await dep.wait_for_count(N // 4)
        before = await dep.host.ready.remote()
        await dep.kill_host()
        await writer  # rows keep coming while the host is down and restarting
        found = await dep.wait_for_count(N)
        await dep.wait_all_ended()
        found = await dep.executions()
        after = await dep.host.ready.remote()
    assert after != before  # a new incarnation took over
    assert not writer.exception()
    assert_exactly_once(found, set(range(1, N + 1)), row_id)


async def test_lost_connection_reconnects_and_resumes(
    fresh_database: str, ray_cluster: Any
) -> None:
    table = await make_table(fresh_database)
    async with deployed(fresh_database, cursor_flow(table, fresh_database)) as dep:
        await dep.wait_running()
        await insert(fresh_database, table, range(1, 201))
        await dep.wait_for_count(200)
        admin = await asyncpg.connect(fresh_database)
        try:
            # Cut every other session to this database: the listener's connection drops.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND query ILIKE '%" + table + "%'"
            )
        finally:
            await admin.close()
        await insert(fresh_database, table, range(201, 401))
        found = await dep.wait_for_count(400)
        found = await dep.executions()
    assert_exactly_once(found, set(range(1, 401)), row_id)


def notify_flow(channel: str, dsn: str) -> str:
    return (
        f"id: react-{channel[-8:]}\nnamespace: tests.e2e\n{CHEAP_TASKS}"
        f'triggers:\n  - id: changes\n    type: postgres.RealtimeTrigger\n    url: "{dsn}"\n'
        f"    channel: {channel}\n    deserializer: JSON\n"
    )


async def notify(dsn: str, channel: str, payloads: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for payload in payloads:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
    finally:
        await conn.close()


async def test_notify_thousand_events_and_poison(fresh_database: str, ray_cluster: Any) -> None:
    import json

    from . import scenarios

    channel = f"orders_{uuid.uuid4().hex[:8]}"

    async def publish(ids: range) -> None:
        await notify(fresh_database, channel, [json.dumps({"n": i}) for i in ids])

    def n_of(execution: Any) -> int:
        assert execution.trigger["channel"] == channel
        return int(execution.trigger["payload"]["n"])

    async with deployed(fresh_database, notify_flow(channel, fresh_database)) as dep:
        await scenarios.thousand_events(dep, publish, n_of)
    async with deployed(fresh_database, notify_flow(channel + "_p", fresh_database)) as dep:
        channel = channel + "_p"
        await scenarios.poison_is_dead_lettered(
            dep, lambda: notify(fresh_database, channel, ["{oops"]), publish, n_of
        )
