"""Batched updates: one ``unnest`` statement per kind, for any number of executions.

Several writes to one target in a batch are folded in submission order (state histories
append every entry; the last state wins; attempts and outputs merge). Writes to an
unknown execution or task run are reported per op as `StoreError`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flows import State, StoreError

from . import _rows
from ._db import Connection
from ._json import dumps
from ._ops import (
    AttemptOp,
    LabelsOp,
    LogsOp,
    Outcome,
    OutputsOp,
    TaskRunTransitionOp,
    TransitionOp,
    TriggerStateOp,
)
from ._records import Attempt, as_utc


def ended_at(state: State, at: dt.datetime) -> dt.datetime | None:
    """``at`` when ``state`` is terminal, else None."""
    return at if state.terminal else None


def _collapse(items: list[tuple[int, Any]], key_of: Any) -> dict[Any, list[tuple[int, Any]]]:
    """Group ops by target, keeping submission order inside each group."""
    grouped: dict[Any, list[tuple[int, Any]]] = {}
    for index, op in items:
        grouped.setdefault(key_of(op), []).append((index, op))
    return grouped


async def transition_executions(
    conn: Connection, items: list[tuple[int, TransitionOp]], outcomes: list[Outcome]
) -> None:
    """Apply execution transitions (one UPDATE for all executions in the batch)."""
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
        ended.append(ended_at(last.state, last.at))
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


async def transition_task_runs(
    conn: Connection,
    items: list[tuple[int, TaskRunTransitionOp]],
    outcomes: list[Outcome],
) -> None:
    """Apply task-run transitions (one UPDATE)."""
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
        ended.append(ended_at(last.state, last.at))
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


async def upsert_attempts(
    conn: Connection, items: list[tuple[int, AttemptOp]], outcomes: list[Outcome]
) -> None:
    """Insert or update attempts (one upsert; fields left None keep stored values)."""
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


async def merge_labels(
    conn: Connection, items: list[tuple[int, LabelsOp]], outcomes: list[Outcome]
) -> None:
    """Merge execution labels (one UPDATE for all executions in the batch)."""
    if not items:
        return
    grouped = _collapse(items, lambda op: op.execution_id)
    merged: list[str] = []
    for group in grouped.values():
        combined: dict[str, str] = {}
        for _, op in group:
            combined.update(op.labels)
        merged.append(dumps(combined))
    rows = await conn.fetch(
        """UPDATE executions AS e SET labels = e.labels || u.labels::jsonb
           FROM unnest($1::text[], $2::text[]) AS u(id, labels)
           WHERE e.id = u.id
           RETURNING e.id""",
        list(grouped),
        merged,
    )
    _mark_missing(grouped, {row["id"] for row in rows}, outcomes, "execution")


async def merge_outputs(
    conn: Connection, items: list[tuple[int, OutputsOp]], outcomes: list[Outcome]
) -> None:
    """Merge task-run outputs (one upsert)."""
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


async def append_logs(
    conn: Connection, items: list[tuple[int, LogsOp]], outcomes: list[Outcome]
) -> None:
    """Append log lines in submission order (one INSERT)."""
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


async def save_trigger_states(
    conn: Connection, items: list[tuple[int, TriggerStateOp]], outcomes: list[Outcome]
) -> None:
    """Save trigger states, the last write per trigger winning (one upsert)."""
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
