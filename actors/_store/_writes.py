"""Writing a batch: at most one statement for the creates and one for everything else.

A batch is written on one connection. Creates are one statement (`_creates`); every
other kind of write is one call of `kestrel_write_history` (`_history`), which fences
the writes by their leases, writes each row once and releases leases last. Either is
atomic on its own, so a batch of only one of them needs no BEGIN/COMMIT round trips;
a batch with both (or cut into several history calls) runs in one transaction, creates
first, so history written about a new execution finds it.

Fencing: writes may carry the writer's `Lease`; the call locks those lease rows
(``FOR SHARE``) before writing, so a lease cannot change hands while the batch runs, and
refuses (`StaleLeaseError`) the writes whose epoch is no longer current.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from flows import StoreError, StoreUnavailable

from . import _creates, _history
from ._db import CONNECTION_ERRORS, Connection, unavailable
from ._ops import CreateOp, Outcome, WriteOp


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


def _split(
    ops: Sequence[WriteOp],
) -> tuple[list[tuple[int, CreateOp]], list[tuple[int, WriteOp]]]:
    creates: list[tuple[int, CreateOp]] = []
    history: list[tuple[int, WriteOp]] = []
    for index, op in enumerate(ops):
        if isinstance(op, CreateOp):
            creates.append((index, op))
        else:
            history.append((index, op))
    return creates, history


def needs_transaction(ops: Sequence[WriteOp]) -> bool:
    """False when the batch is one statement: only creates, or one history call."""
    creates, history = _split(ops)
    if not history:
        return False
    return bool(creates) or _history.needs_transaction(history)


async def apply_ops(conn: Connection, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Apply ``ops`` on ``conn``; commit is the caller's (see `needs_transaction`).

    Returns:
        One outcome per op: a `CreateResult` for a create, None for other successful
        writes (True/False for a lease release), a `StaleLeaseError` or `StoreError` for
        a refused one.
    """
    outcomes: list[Outcome] = [None] * len(ops)
    creates, history = _split(ops)
    await _creates.create_executions(conn, creates, outcomes)
    for segment in _history.segments(history):
        await _history.write(conn, segment, outcomes)
    return outcomes
