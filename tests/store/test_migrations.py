"""Schema migrations: apply on an empty database, re-apply as a no-op, race safely."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from actors._store import Migration, Store, apply_migrations, load_migrations
from flows import State, StoreError

from ._factories import new_execution

pytestmark = pytest.mark.integration

TABLES = {
    "disabled_triggers",
    "flows",
    "flow_revisions",
    "executions",
    "task_runs",
    "task_run_attempts",
    "outputs",
    "logs",
    "kv",
    "trigger_states",
    "dead_letters",
    "leases",
    "kestrel_migrations",
}


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {row["tablename"] for row in rows}


async def test_migrations_apply_on_an_empty_database_then_are_a_no_op(fresh_database: str) -> None:
    assert await _tables(fresh_database) == set()
    versions = [m.version for m in load_migrations()]
    assert versions and versions == sorted(versions)

    conn = await asyncpg.connect(fresh_database)
    try:
        assert await apply_migrations(conn) == versions
        assert await _tables(fresh_database) == TABLES
        assert await apply_migrations(conn) == []
        recorded = await conn.fetch("SELECT version, checksum FROM kestrel_migrations")
    finally:
        await conn.close()
    assert {r["version"]: r["checksum"] for r in recorded} == {
        m.version: m.checksum for m in load_migrations()
    }


async def test_concurrent_starts_do_not_conflict(fresh_database: str) -> None:
    stores = [Store(fresh_database, min_connections=1, max_connections=1) for _ in range(4)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
    finally:
        await asyncio.gather(*(s.stop() for s in stores))
    conn = await asyncpg.connect(fresh_database)
    try:
        count = await conn.fetchval("SELECT count(*) FROM kestrel_migrations")
    finally:
        await conn.close()
    assert count == len(load_migrations())
    assert await _tables(fresh_database) == TABLES


async def test_an_applied_migration_that_changed_is_refused(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        await apply_migrations(conn)
        first = load_migrations()[0]
        edited = Migration(first.version, first.name, first.sql + "\n-- edited\n")
        with pytest.raises(StoreError, match="changed after it was applied"):
            await apply_migrations(conn, [edited])
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(fresh_database: str) -> None:
    broken = Migration(1, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")
    conn = await asyncpg.connect(fresh_database)
    try:
        with pytest.raises(StoreError, match="applying migrations failed"):
            await apply_migrations(conn, [broken])
    finally:
        await conn.close()
    assert await _tables(fresh_database) == set()


async def test_a_database_at_an_earlier_version_upgrades_and_keeps_working(
    fresh_database: str,
) -> None:
    """A database made by an earlier release takes the newer migrations, then serves writes."""
    migrations = load_migrations()
    earlier = [m for m in migrations if m.version <= 18]
    conn = await asyncpg.connect(fresh_database)
    try:
        assert await apply_migrations(conn, earlier) == [m.version for m in earlier]
    finally:
        await conn.close()
    async with Store(fresh_database, min_connections=1, max_connections=1) as store:
        created = await store.create_execution(
            new_execution(), lease_owner="owner", lease_ttl=dt.timedelta(minutes=1)
        )
        lease = created.lease
        assert lease is not None
        await store.transition(created.execution.id, State.SUCCESS, lease=lease)
        assert await store.release_lease(lease)
        execution = await store.get_execution(created.execution.id)
    assert execution is not None and execution.state is State.SUCCESS
    conn = await asyncpg.connect(fresh_database)
    try:
        versions = await conn.fetch("SELECT version FROM kestrel_migrations ORDER BY version")
    finally:
        await conn.close()
    assert [r["version"] for r in versions] == [m.version for m in migrations]
