"""The write side: write operations and how a batch of them becomes a few SQL statements.

A batch runs in one transaction: one statement per kind of write (``unnest`` of arrays,
so one round trip covers any number of executions), in a fixed order that respects
foreign keys (executions, task runs, then attempts, outputs and logs). An execution and
its initial task runs are therefore durable together or not at all.

Fencing: writes may carry the writer's `Lease`; the batch locks those lease rows
(``FOR SHARE``) before writing, so a lease cannot change hands while the batch runs, and
refuses (`StaleLeaseError`) the writes whose epoch is no longer current.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from flows import State, StaleLeaseError, StoreError

from . import _rows
from ._json import dumps
from ._records import (
    EXECUTION_LEASE,
    Attempt,
    CreateResult,
    Execution,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    TriggerState,
    as_utc,
    utcnow,
)


@dataclass(frozen=True, slots=True)
class CreateOp:
    """Create an execution (idempotent on its dedupe key), its task runs, maybe a lease."""

    new: NewExecution
    created_at: dt.datetime
    inputs: str
    trigger: str | None
    labels: str
    lease_owner: str | None
    lease_ttl: dt.timedelta | None

    @classmethod
    def of(
        cls,
        new: NewExecution,
        lease_owner: str | None = None,
        lease_ttl: dt.timedelta | None = None,
    ) -> CreateOp:
        """Build the op, encoding JSON now so bad values fail in the caller, not the batch."""
        if (lease_owner is None) != (lease_ttl is None):
            raise ValueError("lease_owner and lease_ttl go together")
        created = as_utc(new.created_at) if new.created_at else utcnow()
        trigger = None if new.trigger is None else dumps(new.trigger)
        return cls(
            new, created, dumps(new.inputs), trigger, dumps(new.labels), lease_owner, lease_ttl
        )


@dataclass(frozen=True, slots=True)
class AddTaskRunsOp:
    """Add task runs to an existing execution."""

    execution_id: str
    runs: tuple[NewTaskRun, ...]
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class TransitionOp:
    """Move an execution to a state (appended to its history); maybe set flow outputs."""

    execution_id: str
    state: State
    at: dt.datetime
    outputs: str | None
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class TaskRunTransitionOp:
    """Move a task run to a state (appended to its history)."""

    execution_id: str
    task_run_id: str
    state: State
    at: dt.datetime
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class AttemptOp:
    """Insert or update one attempt of a task run."""

    execution_id: str
    task_run_id: str
    attempt: Attempt
    error: str | None
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class OutputsOp:
    """Merge outputs (top-level keys) into a task run's outputs."""

    execution_id: str
    task_run_id: str
    outputs: dict[str, Any]
    lease: Lease | None


@dataclass(frozen=True, slots=True)
class LogsOp:
    """Append log lines."""

    lines: tuple[LogLine, ...]


@dataclass(frozen=True, slots=True)
class TriggerStateOp:
    """Save (replace) a trigger's state."""

    state: TriggerState
    cursor: str | None
    lease: Lease | None


WriteOp = (
    CreateOp
    | AddTaskRunsOp
    | TransitionOp
    | TaskRunTransitionOp
    | AttemptOp
    | OutputsOp
    | LogsOp
    | TriggerStateOp
)
Outcome = object | BaseException
"""Per op: a `CreateResult` for creates, None for other writes, or the error."""

_CONNECTION_ERRORS = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


async def write_batch(pool: asyncpg.Pool, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Write ``ops`` in one transaction and return one outcome per op, after COMMIT.

    When the batch fails on a database error, each op is retried alone so that one bad
    write only fails its own caller. When the connection fails, every op fails with a
    `StoreError` (the outcome of the COMMIT is unknown; creates are safe to retry thanks
    to their dedupe key).
    """
    try:
        async with pool.acquire() as conn, conn.transaction():
            return await apply_ops(conn, ops)
    except _CONNECTION_ERRORS as exc:
        return [StoreError(f"database connection failed during a write: {exc!r}") for _ in ops]
    except asyncpg.PostgresError as exc:
        if len(ops) == 1:
            return [StoreError(f"write refused by the database: {exc}")]
    return [(await write_batch(pool, [op]))[0] for op in ops]


async def apply_ops(conn: asyncpg.Connection, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Apply ``ops`` on ``conn``, which must be inside a transaction; do not commit.

    Returns:
        One outcome per op: a `CreateResult` for a create, None for other successful
        writes, a `StaleLeaseError` or `StoreError` for a refused one.
    """
    outcomes: list[Outcome] = [None] * len(ops)
    live = await _check_fences(conn, ops, outcomes)
    groups: dict[type, list[tuple[int, Any]]] = defaultdict(list)
    for index in live:
        groups[type(ops[index])].append((index, ops[index]))
    await _create_executions(conn, groups[CreateOp], outcomes)
    await _add_task_runs(conn, groups[AddTaskRunsOp], outcomes)
    await _transition_executions(conn, groups[TransitionOp], outcomes)
    await _transition_task_runs(conn, groups[TaskRunTransitionOp], outcomes)
    await _upsert_attempts(conn, groups[AttemptOp], outcomes)
    await _merge_outputs(conn, groups[OutputsOp], outcomes)
    await _append_logs(conn, groups[LogsOp], outcomes)
    await _save_trigger_states(conn, groups[TriggerStateOp], outcomes)
    return outcomes


def _lease_of(op: WriteOp) -> Lease | None:
    if isinstance(op, CreateOp | LogsOp):
        return None
    return op.lease


async def _check_fences(
    conn: asyncpg.Connection, ops: Sequence[WriteOp], outcomes: list[Outcome]
) -> list[int]:
    """Lock the leases the ops carry; mark stale ones; return the indexes of the rest."""
    fenced = {(lease.kind, lease.key) for op in ops if (lease := _lease_of(op)) is not None}
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
        lease = _lease_of(op)
        if lease is None or current.get((lease.kind, lease.key)) == (lease.owner, lease.epoch):
            live.append(index)
            continue
        holder = current.get((lease.kind, lease.key))
        now = f"held by {holder[0]!r} at epoch {holder[1]}" if holder else "not held"
        outcomes[index] = StaleLeaseError(
            f"lease {lease.kind}/{lease.key} epoch {lease.epoch} of {lease.owner!r} is stale "
            f"(now {now}); write refused"
        )
    return live


def _ended(state: State, at: dt.datetime) -> dt.datetime | None:
    return at if state.terminal else None


async def _create_executions(
    conn: asyncpg.Connection, items: list[tuple[int, CreateOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    # One leader per dedupe key inside the batch; the followers get the leader's execution.
    leaders: list[tuple[int, CreateOp]] = []
    followers: list[tuple[int, int]] = []  # (index, leader index)
    by_key: dict[str, int] = {}
    for index, op in items:
        key = op.new.dedupe_key
        if key is not None and key in by_key:
            followers.append((index, by_key[key]))
            continue
        if key is not None:
            by_key[key] = index
        leaders.append((index, op))
    inserted = await _insert_executions(conn, [op for _, op in leaders])
    existing = await _existing_by_dedupe_key(
        conn, [op.new.dedupe_key for _, op in leaders if op.new.id not in inserted]
    )
    new_runs: list[tuple[str, NewTaskRun]] = []
    new_leases: list[CreateOp] = []
    for index, op in leaders:
        if op.new.id in inserted:
            outcomes[index] = CreateResult(inserted[op.new.id], created=True)
            new_runs.extend((op.new.id, run) for run in op.new.task_runs)
            if op.lease_owner is not None:
                new_leases.append(op)
        elif op.new.dedupe_key in existing:
            outcomes[index] = CreateResult(existing[op.new.dedupe_key], created=False)
        else:
            outcomes[index] = StoreError(f"execution {op.new.id} was neither created nor found")
    for index, leader in followers:
        result = outcomes[leader]
        if isinstance(result, CreateResult):
            outcomes[index] = CreateResult(result.execution, created=False)
        else:
            outcomes[index] = StoreError(f"create of the same dedupe key failed: {result}")
    await _insert_task_runs(conn, new_runs)
    leases = await _insert_execution_leases(conn, new_leases)
    for index, op in leaders:
        result = outcomes[index]
        if isinstance(result, CreateResult) and op.new.id in leases:
            outcomes[index] = CreateResult(result.execution, True, leases[op.new.id])


async def _insert_executions(
    conn: asyncpg.Connection, ops: list[CreateOp]
) -> dict[str, Execution]:
    rows = await conn.fetch(
        f"""INSERT INTO executions (id, namespace, flow_id, flow_revision, state,
                state_history, inputs, trigger, labels, original_id, parent_id,
                parent_task_run_id, dedupe_key, created_at, updated_at, ended_at)
            SELECT u.id, u.namespace, u.flow_id, u.flow_revision, u.state, u.history::jsonb,
                   u.inputs::jsonb, u.trigger::jsonb, u.labels::jsonb, u.original_id,
                   u.parent_id, u.parent_task_run_id, u.dedupe_key, u.created_at,
                   u.created_at, u.ended_at
            FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                        $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                        $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[])
                 AS u(id, namespace, flow_id, flow_revision, state, history, inputs, trigger,
                      labels, original_id, parent_id, parent_task_run_id, dedupe_key,
                      created_at, ended_at)
            ON CONFLICT ON CONSTRAINT executions_dedupe_key DO NOTHING
            RETURNING {_rows.EXECUTION_COLUMNS}""",
        [op.new.id for op in ops],
        [op.new.namespace for op in ops],
        [op.new.flow_id for op in ops],
        [op.new.flow_revision for op in ops],
        [str(op.new.state) for op in ops],
        [dumps(_rows.history_json([(op.new.state, op.created_at)])) for op in ops],
        [op.inputs for op in ops],
        [op.trigger for op in ops],
        [op.labels for op in ops],
        [op.new.original_id for op in ops],
        [op.new.parent_id for op in ops],
        [op.new.parent_task_run_id for op in ops],
        [op.new.dedupe_key for op in ops],
        [op.created_at for op in ops],
        [_ended(op.new.state, op.created_at) for op in ops],
    )
    return {row["id"]: _rows.execution(row) for row in rows}


async def _existing_by_dedupe_key(
    conn: asyncpg.Connection, keys: list[str | None]
) -> dict[str, Execution]:
    wanted = [key for key in keys if key is not None]
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT {_rows.EXECUTION_COLUMNS} FROM executions WHERE dedupe_key = ANY($1::text[])",
        wanted,
    )
    return {row["dedupe_key"]: _rows.execution(row) for row in rows}


async def _insert_task_runs(
    conn: asyncpg.Connection, runs: list[tuple[str, NewTaskRun]]
) -> set[str]:
    """Insert task runs (idempotent on id); return the execution ids that exist."""
    if not runs:
        return set()
    now = utcnow()
    created = [as_utc(run.created_at) if run.created_at else now for _, run in runs]
    rows = await conn.fetch(
        """WITH u AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                    $6::int[], $7::text[], $8::text[], $9::timestamptz[],
                                    $10::timestamptz[])
                   AS u(id, execution_id, task_id, parent_task_run_id, value, iteration,
                        state, history, created_at, ended_at)
               WHERE EXISTS (SELECT 1 FROM executions e WHERE e.id = u.execution_id)),
           ins AS (
               INSERT INTO task_runs (id, execution_id, task_id, parent_task_run_id, value,
                   iteration, state, state_history, created_at, updated_at, ended_at)
               SELECT id, execution_id, task_id, parent_task_run_id, value, iteration, state,
                      history::jsonb, created_at, created_at, ended_at FROM u
               ON CONFLICT (id) DO NOTHING)
           SELECT DISTINCT execution_id FROM u""",
        [run.id for _, run in runs],
        [execution_id for execution_id, _ in runs],
        [run.task_id for _, run in runs],
        [run.parent_task_run_id for _, run in runs],
        [run.value for _, run in runs],
        [run.iteration for _, run in runs],
        [str(run.state) for _, run in runs],
        [dumps(_rows.history_json([(run.state, at)])) for (_, run), at in zip(runs, created, strict=True)],
        created,
        [_ended(run.state, at) for (_, run), at in zip(runs, created, strict=True)],
    )
    return {row["execution_id"] for row in rows}


async def _insert_execution_leases(
    conn: asyncpg.Connection, ops: list[CreateOp]
) -> dict[str, Lease]:
    if not ops:
        return {}
    rows = await conn.fetch(
        """INSERT INTO leases (kind, key, owner, epoch, expires_at)
           SELECT $1, u.key, u.owner, 1, now() + u.ttl
           FROM unnest($2::text[], $3::text[], $4::interval[]) AS u(key, owner, ttl)
           ON CONFLICT (kind, key) DO NOTHING
           RETURNING kind, key, owner, epoch, expires_at""",
        EXECUTION_LEASE,
        [op.new.id for op in ops],
        [op.lease_owner for op in ops],
        [op.lease_ttl for op in ops],
    )
    return {row["key"]: _rows.lease(row) for row in rows}


async def _add_task_runs(
    conn: asyncpg.Connection, items: list[tuple[int, AddTaskRunsOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    runs = [(op.execution_id, run) for _, op in items for run in op.runs]
    found = await _insert_task_runs(conn, runs)
    for index, op in items:
        if op.runs and op.execution_id not in found:
            outcomes[index] = StoreError(f"unknown execution {op.execution_id!r}")


def _collapse(
    items: list[tuple[int, Any]], key_of: Any
) -> dict[Any, list[tuple[int, Any]]]:
    """Group ops by target, keeping submission order inside each group."""
    grouped: dict[Any, list[tuple[int, Any]]] = {}
    for index, op in items:
        grouped.setdefault(key_of(op), []).append((index, op))
    return grouped


async def _transition_executions(
    conn: asyncpg.Connection, items: list[tuple[int, TransitionOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    grouped = _collapse(items, lambda op: op.execution_id)
    ids, states, histories, ats, ended, outputs = [], [], [], [], [], []
    for execution_id, group in grouped.items():
        last: TransitionOp = group[-1][1]
        ids.append(execution_id)
        states.append(str(last.state))
        histories.append(dumps(_rows.history_json((op.state, op.at) for _, op in group)))
        ats.append(last.at)
        ended.append(_ended(last.state, last.at))
        outputs.append(next((op.outputs for _, op in reversed(group) if op.outputs), None))
    rows = await conn.fetch(
        """UPDATE executions AS e
           SET state = u.state, state_history = e.state_history || u.history::jsonb,
               updated_at = greatest(e.updated_at, u.at), ended_at = u.ended_at,
               outputs = coalesce(u.outputs::jsonb, e.outputs)
           FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                       $5::timestamptz[], $6::text[])
                AS u(id, state, history, at, ended_at, outputs)
           WHERE e.id = u.id
           RETURNING e.id""",
        ids,
        states,
        histories,
        ats,
        ended,
        outputs,
    )
    _mark_missing(grouped, {row["id"] for row in rows}, outcomes, "execution")


async def _transition_task_runs(
    conn: asyncpg.Connection,
    items: list[tuple[int, TaskRunTransitionOp]],
    outcomes: list[Outcome],
) -> None:
    if not items:
        return
    grouped = _collapse(items, lambda op: (op.execution_id, op.task_run_id))
    ids, executions, states, histories, ats, ended = [], [], [], [], [], []
    for (execution_id, task_run_id), group in grouped.items():
        last: TaskRunTransitionOp = group[-1][1]
        ids.append(task_run_id)
        executions.append(execution_id)
        states.append(str(last.state))
        histories.append(dumps(_rows.history_json((op.state, op.at) for _, op in group)))
        ats.append(last.at)
        ended.append(_ended(last.state, last.at))
    rows = await conn.fetch(
        """UPDATE task_runs AS t
           SET state = u.state, state_history = t.state_history || u.history::jsonb,
               updated_at = greatest(t.updated_at, u.at), ended_at = u.ended_at
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                       $6::timestamptz[])
                AS u(id, execution_id, state, history, at, ended_at)
           WHERE t.id = u.id AND t.execution_id = u.execution_id
           RETURNING t.execution_id, t.id""",
        ids,
        executions,
        states,
        histories,
        ats,
        ended,
    )
    found = {(row["execution_id"], row["id"]) for row in rows}
    _mark_missing(grouped, found, outcomes, "task run")


async def _upsert_attempts(
    conn: asyncpg.Connection, items: list[tuple[int, AttemptOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    grouped = _collapse(items, lambda op: (op.execution_id, op.task_run_id, op.attempt.number))
    merged = [_merge_attempts([op for _, op in group]) for group in grouped.values()]
    rows = await conn.fetch(
        """INSERT INTO task_run_attempts AS a (task_run_id, attempt, execution_id, state,
               started_at, ended_at, worker, node, error)
           SELECT u.task_run_id, u.attempt, u.execution_id, u.state, u.started_at,
                  u.ended_at, u.worker, u.node, u.error::jsonb
           FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::timestamptz[],
                       $6::timestamptz[], $7::text[], $8::text[], $9::text[])
                AS u(task_run_id, attempt, execution_id, state, started_at, ended_at,
                     worker, node, error)
           JOIN task_runs AS t ON t.id = u.task_run_id AND t.execution_id = u.execution_id
           ON CONFLICT (task_run_id, attempt) DO UPDATE
           SET state = excluded.state,
               started_at = coalesce(excluded.started_at, a.started_at),
               ended_at = coalesce(excluded.ended_at, a.ended_at),
               worker = coalesce(excluded.worker, a.worker),
               node = coalesce(excluded.node, a.node),
               error = coalesce(excluded.error, a.error)
           RETURNING a.execution_id, a.task_run_id, a.attempt""",
        [m.task_run_id for m in merged],
        [m.attempt.number for m in merged],
        [m.execution_id for m in merged],
        [str(m.attempt.state) for m in merged],
        [m.attempt.started_at for m in merged],
        [m.attempt.ended_at for m in merged],
        [m.attempt.worker for m in merged],
        [m.attempt.node for m in merged],
        [m.error for m in merged],
    )
    found = {(row["execution_id"], row["task_run_id"], row["attempt"]) for row in rows}
    _mark_missing(grouped, found, outcomes, "task run")


def _merge_attempts(ops: list[AttemptOp]) -> AttemptOp:
    """Fold several writes of one attempt into one: later non-empty fields win."""
    first = ops[0]
    fields: dict[str, Any] = {}
    error = first.error
    for op in ops:
        for name in ("started_at", "ended_at", "worker", "node"):
            value = getattr(op.attempt, name)
            if value is not None:
                fields[name] = value
        error = op.error if op.error is not None else error
    last = ops[-1].attempt
    attempt = Attempt(number=last.number, state=last.state, **fields)
    return AttemptOp(first.execution_id, first.task_run_id, attempt, error, None)


async def _merge_outputs(
    conn: asyncpg.Connection, items: list[tuple[int, OutputsOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    grouped = _collapse(items, lambda op: (op.execution_id, op.task_run_id))
    keys = list(grouped)
    merged: list[str] = []
    for group in grouped.values():
        combined: dict[str, Any] = {}
        for _, op in group:
            combined.update(op.outputs)
        merged.append(dumps(combined))
    rows = await conn.fetch(
        """INSERT INTO outputs AS o (task_run_id, execution_id, outputs, updated_at)
           SELECT u.task_run_id, u.execution_id, u.outputs::jsonb, now()
           FROM unnest($1::text[], $2::text[], $3::text[])
                AS u(execution_id, task_run_id, outputs)
           JOIN task_runs AS t ON t.id = u.task_run_id AND t.execution_id = u.execution_id
           ON CONFLICT (task_run_id) DO UPDATE
           SET outputs = o.outputs || excluded.outputs, updated_at = now()
           RETURNING o.execution_id, o.task_run_id""",
        [execution_id for execution_id, _ in keys],
        [task_run_id for _, task_run_id in keys],
        merged,
    )
    found = {(row["execution_id"], row["task_run_id"]) for row in rows}
    _mark_missing(grouped, found, outcomes, "task run")


async def _append_logs(
    conn: asyncpg.Connection, items: list[tuple[int, LogsOp]], outcomes: list[Outcome]
) -> None:
    lines = [line for _, op in items for line in op.lines]
    if not lines:
        return
    rows = await conn.fetch(
        """WITH u AS (
               SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[],
                                    $5::timestamptz[], $6::text[]) WITH ORDINALITY
                   AS u(execution_id, task_run_id, attempt, level, at, message, ord)
               WHERE EXISTS (SELECT 1 FROM executions e WHERE e.id = u.execution_id)),
           ins AS (
               INSERT INTO logs (execution_id, task_run_id, attempt, level, at, message)
               SELECT execution_id, task_run_id, attempt, level, at, message
               FROM u ORDER BY ord)
           SELECT DISTINCT execution_id FROM u""",
        [line.execution_id for line in lines],
        [line.task_run_id for line in lines],
        [line.attempt for line in lines],
        [line.level for line in lines],
        [as_utc(line.at) for line in lines],
        [line.message for line in lines],
    )
    found = {row["execution_id"] for row in rows}
    for index, op in items:
        missing = sorted({line.execution_id for line in op.lines} - found)
        if missing:
            outcomes[index] = StoreError(f"unknown execution {missing[0]!r}; log not written")


async def _save_trigger_states(
    conn: asyncpg.Connection, items: list[tuple[int, TriggerStateOp]], outcomes: list[Outcome]
) -> None:
    if not items:
        return
    grouped = _collapse(
        items, lambda op: (op.state.namespace, op.state.flow_id, op.state.trigger_id)
    )
    last: list[TriggerStateOp] = [group[-1][1] for group in grouped.values()]
    await conn.execute(
        """INSERT INTO trigger_states AS s (namespace, flow_id, trigger_id, cursor,
               last_event_at, status, last_error, updated_at)
           SELECT u.namespace, u.flow_id, u.trigger_id, u.cursor::jsonb, u.last_event_at,
                  u.status, u.last_error, now()
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
                       $6::text[], $7::text[])
                AS u(namespace, flow_id, trigger_id, cursor, last_event_at, status,
                     last_error)
           ON CONFLICT (namespace, flow_id, trigger_id) DO UPDATE
           SET cursor = excluded.cursor, last_event_at = excluded.last_event_at,
               status = excluded.status, last_error = excluded.last_error,
               updated_at = now()""",
        [op.state.namespace for op in last],
        [op.state.flow_id for op in last],
        [op.state.trigger_id for op in last],
        [op.cursor for op in last],
        [op.state.last_event_at for op in last],
        [op.state.status for op in last],
        [op.state.last_error for op in last],
    )


def _mark_missing(
    grouped: dict[Any, list[tuple[int, Any]]],
    found: set[Any],
    outcomes: list[Outcome],
    what: str,
) -> None:
    for key, group in grouped.items():
        if key in found:
            continue
        name = key[1] if isinstance(key, tuple) else key
        for index, _ in group:
            outcomes[index] = StoreError(f"unknown {what} {name!r}")
