"""Writing a batch: fencing, then one statement per kind of write, then COMMIT.

A batch is written on one connection. When it holds more than one kind of write, or any
fenced write, it runs in one transaction, kinds in an order that respects foreign keys
(executions, task runs, then attempts, outputs and logs). A batch of one kind without
fences is a single statement (each kind is), so it runs without BEGIN/COMMIT round trips
and is still all-or-nothing.

Fencing: writes may carry the writer's `Lease`; the batch locks those lease rows
(``FOR SHARE``) before writing, so a lease cannot change hands while the batch runs, and
refuses (`StaleLeaseError`) the writes whose epoch is no longer current.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg

from flows import StaleLeaseError, StoreError, StoreUnavailable

from . import _creates, _leases, _updates
from ._db import CONNECTION_ERRORS, Connection, unavailable
from ._ops import (
    AddTaskRunsOp,
    AttemptOp,
    CreateOp,
    LabelsOp,
    LogsOp,
    Outcome,
    OutputsOp,
    ReleaseLeaseOp,
    TaskRunTransitionOp,
    TransitionOp,
    TriggerStateOp,
    WriteOp,
    lease_of,
)


async def write_batch(pool: asyncpg.Pool, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Write ``ops`` durably and return one outcome per op, after COMMIT.

    When the batch fails on a database error, each op is retried alone so that one bad
    write only fails its own caller. When the connection fails, every op fails with a
    `StoreUnavailable` (the outcome of the COMMIT is unknown; creates are safe to retry:
    they are idempotent on dedupe key and execution id), as when the server refuses
    connections (shutting down, starting up, out of slots).
    """
    try:
        async with pool.acquire() as conn:
            if needs_transaction(ops):
                async with conn.transaction():
                    return await apply_ops(conn, ops)
            return await apply_ops(conn, ops)
    except CONNECTION_ERRORS as exc:
        message = f"database connection failed during a write: {exc!r}"
        return [StoreUnavailable(message) for _ in ops]
    except asyncpg.PostgresError as exc:
        if unavailable(exc):
            return [StoreUnavailable(f"the database is unavailable: {exc}") for _ in ops]
        if len(ops) == 1:
            return [StoreError(f"write refused by the database: {exc}")]
    return [(await write_batch(pool, [op]))[0] for op in ops]


def needs_transaction(ops: Sequence[WriteOp]) -> bool:
    """False when the batch is one kind of write and unfenced: a single statement."""
    return len({type(op) for op in ops}) > 1 or any(lease_of(op) is not None for op in ops)


async def apply_ops(conn: Connection, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Apply ``ops`` on ``conn``; commit is the caller's (see `needs_transaction`).

    Returns:
        One outcome per op: a `CreateResult` for a create, None for other successful
        writes, a `StaleLeaseError` or `StoreError` for a refused one.
    """
    outcomes: list[Outcome] = [None] * len(ops)
    live = await _check_fences(conn, ops, outcomes)
    groups: dict[type, list[tuple[int, Any]]] = defaultdict(list)
    for index in live:
        groups[type(ops[index])].append((index, ops[index]))
    await _creates.create_executions(conn, groups[CreateOp], outcomes)
    await _creates.add_task_runs(conn, groups[AddTaskRunsOp], outcomes)
    await _updates.transition_executions(conn, groups[TransitionOp], outcomes)
    await _updates.transition_task_runs(conn, groups[TaskRunTransitionOp], outcomes)
    await _updates.upsert_attempts(conn, groups[AttemptOp], outcomes)
    await _updates.merge_outputs(conn, groups[OutputsOp], outcomes)
    await _updates.merge_labels(conn, groups[LabelsOp], outcomes)
    await _updates.append_logs(conn, groups[LogsOp], outcomes)
    await _updates.save_trigger_states(conn, groups[TriggerStateOp], outcomes)
    await _leases.release_many(conn, groups[ReleaseLeaseOp], outcomes)  # after their writes
    return outcomes


async def _check_fences(
    conn: Connection, ops: Sequence[WriteOp], outcomes: list[Outcome]
) -> list[int]:
    """Lock the leases the ops carry; mark stale ones; return the indexes of the rest."""
    fenced = {(lease.kind, lease.key) for op in ops if (lease := lease_of(op)) is not None}
    if not fenced:
        return list(range(len(ops)))
    kinds, keys = zip(*sorted(fenced), strict=True)
    rows = await conn.fetch(
        """SELECT l.kind, l.key, l.owner, l.epoch FROM leases AS l
           JOIN unnest($1::text[], $2::text[]) AS u(kind, key) USING (kind, key)
           ORDER BY l.kind, l.key FOR SHARE OF l""",
        list(kinds),
        list(keys),
    )
    current = {(r["kind"], r["key"]): (r["owner"], r["epoch"]) for r in rows}
    live: list[int] = []
    for index, op in enumerate(ops):
        lease = lease_of(op)
        if lease is None or current.get((lease.kind, lease.key)) == (lease.owner, lease.epoch):
            live.append(index)
            continue
        holder = current.get((lease.kind, lease.key))
        outcomes[index] = StaleLeaseError(
            lease, holder[0] if holder else None, holder[1] if holder else None
        )
    return live
