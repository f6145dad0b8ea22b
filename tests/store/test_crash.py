"""Killing a writer between "write" and "told durable" never leaves half an execution."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import asyncpg
import pytest

from actors._store import Store

from ._factories import new_execution

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds: a deadline for the child's output, never a synchronisation sleep


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.store._crash_writer",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )


async def _kill(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(process.wait(), WAIT)


async def _visible(dsn: str, execution_id: str, dedupe_key: str) -> tuple[int, int]:
    """Executions with this id or dedupe key, and task runs of this execution id."""
    conn = await asyncpg.connect(dsn)
    try:
        executions = await conn.fetchval(
            "SELECT count(*) FROM executions WHERE id = $1 OR dedupe_key = $2",
            execution_id,
            dedupe_key,
        )
        runs = await conn.fetchval(
            "SELECT count(*) FROM task_runs WHERE execution_id = $1", execution_id
        )
    finally:
        await conn.close()
    return executions, runs


async def test_killed_before_commit_leaves_nothing_visible(store: Store) -> None:
    dsn = store.dsn
    process = await _spawn(dsn, "hold", "kafka:orders/0@1")
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
        assert line.startswith("WRITTEN ") and line.split()[2] == "CreateResult", line
        execution_id = line.split()[1]
        # Written but not committed: invisible to everyone else already.
        assert await _visible(dsn, execution_id, "kafka:orders/0@1") == (0, 0)
    finally:
        await _kill(process)
    assert await _visible(dsn, execution_id, "kafka:orders/0@1") == (0, 0)
    # The redelivered event creates the execution for real: no ghost holds its key.
    result = await asyncio.wait_for(
        store.create_execution(new_execution(dedupe_key="kafka:orders/0@1", task_ids=("a",))),
        WAIT,
    )
    assert result.created


async def test_killed_mid_stream_every_visible_execution_is_whole(store: Store) -> None:
    dsn = store.dsn
    process = await _spawn(dsn, "loop", "crash.loop")
    durable: list[str] = []
    try:
        assert process.stdout is not None
        while len(durable) < 200:
            line = (await asyncio.wait_for(process.stdout.readline(), WAIT)).decode()
            assert line.startswith("DURABLE "), line
            durable.append(line.split()[1])
    finally:
        await _kill(process)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT e.id, count(t.id) AS runs FROM executions e
               LEFT JOIN task_runs t ON t.execution_id = e.id
               WHERE e.namespace = 'crash.loop' GROUP BY e.id"""
        )
    finally:
        await conn.close()
    runs = {row["id"]: row["runs"] for row in rows}
    assert set(durable) <= set(runs)  # everything reported durable is there
    assert set(runs.values()) == {3}  # and nothing is there by half
