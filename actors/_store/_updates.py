"""Batched updates, merged per row: the parameter arrays of `kestrel_write_history_v2`.

Several writes to one row in a batch are folded in submission order (state histories
append every entry; the last state wins; attempts and outputs merge; the last trigger
state wins), so each row is written once per batch. Each builder returns the ops grouped
by the row they write (to report a missing row to each of its ops) and the arrays, one
per column, in the function's parameter order; the last array holds each row's lease
position (see `Fences`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flows import State, StoreError

from . import _rows
from ._json import dumps
from ._ops import (
    AddTaskRunsOp,
    AttemptOp,
    LabelsOp,
    LogsOp,
    Outcome,
    OutputsOp,
    TaskRunTransitionOp,
    TransitionOp,
    TriggerStateOp,
    lease_of,
)
from ._records import Attempt, Lease, NewTaskRun, as_utc, utcnow

Grouped = dict[Any, list[tuple[int, Any]]]
Arrays = list[list[Any]]


def ended_at(state: State, at: dt.datetime) -> dt.datetime | None:
    """``at`` when ``state`` is terminal, else None."""
    return at if state.terminal else None


class Fences:
    """The distinct leases a batch's writes carry, numbered from 1 (the ``f_*`` arrays)."""

    def __init__(self) -> None:
        self._position: dict[tuple[str, str, str, int], int] = {}
        self.leases: list[Lease] = []

    def position(self, lease: Lease | None) -> int | None:
        """``lease``'s number (None for an unfenced write)."""
        if lease is None:
            return None
        key = (lease.kind, lease.key, lease.owner, lease.epoch)
        found = self._position.get(key)
        if found is None:
            self.leases.append(lease)
            found = self._position[key] = len(self.leases)
        return found

    def arrays(self) -> Arrays:
        """kind, key, owner, epoch of every lease, by number."""
        return [
            [lease.kind for lease in self.leases],
            [lease.key for lease in self.leases],
            [lease.owner for lease in self.leases],
            [lease.epoch for lease in self.leases],
        ]


def collapse(items: list[tuple[int, Any]], key_of: Any) -> Grouped:
    """Group ops by target, keeping submission order inside each group."""
    grouped: Grouped = {}
    for index, op in items:
        grouped.setdefault(key_of(op), []).append((index, op))
    return grouped


def _lease(group: list[tuple[int, Any]], fences: Fences) -> int | None:
    # A batch is cut into segments so that the ops of one row share one lease.
    return fences.position(lease_of(group[-1][1]))


def task_run_arrays(runs: list[tuple[str, NewTaskRun]]) -> Arrays:
    """The 10 column arrays of new task runs, from (execution id, task run) pairs."""
    now = utcnow()
    created = [as_utc(run.created_at) if run.created_at else now for _, run in runs]
    pairs = list(zip(runs, created, strict=True))
    return [
        [run.id for _, run in runs],
        [execution_id for execution_id, _ in runs],
        [run.task_id for _, run in runs],
        [run.parent_task_run_id for _, run in runs],
        [run.value for _, run in runs],
        [run.iteration for _, run in runs],
        [str(run.state) for _, run in runs],
        [_rows.history_text([(run.state, at)]) for (_, run), at in pairs],
        created,
        [ended_at(run.state, at) for (_, run), at in pairs],
    ]


def added_task_runs(
    items: list[tuple[int, AddTaskRunsOp]],
    transitions: list[tuple[int, TaskRunTransitionOp]],
    fences: Fences,
) -> tuple[Arrays, set[tuple[str, str]]]:
    """New task runs (``r_*``), in submission order, with the transitions that follow them.

    A task run created and transitioned in the same batch is inserted once, in its last
    state with its whole history. Returns the arrays and the (execution id, task run id)
    of those merged runs; their transitions are still sent (``t_merged``), applied only
    if the insert found the task run already there (a retried write).
    """
    follows: dict[tuple[str, str], list[TaskRunTransitionOp]] = {}
    created_at: dict[tuple[str, str], int] = {
        (op.execution_id, run.id): index for index, op in items for run in op.runs
    }
    for index, op in transitions:
        key = (op.execution_id, op.task_run_id)
        if key in created_at and created_at[key] < index:
            follows.setdefault(key, []).append(op)
    runs = [(op.execution_id, run) for _, op in items for run in op.runs]
    arrays = task_run_arrays(runs)
    states, histories, created, ended = arrays[6], arrays[7], arrays[8], arrays[9]
    updated = list(created)
    for row, (execution_id, run) in enumerate(runs):
        later = follows.get((execution_id, run.id))
        if not later:
            continue
        entries = [(run.state, created[row])] + [(op.state, op.at) for op in later]
        states[row] = str(later[-1].state)
        histories[row] = _rows.history_text(entries)
        ended[row] = ended_at(later[-1].state, later[-1].at)
        updated[row] = max(created[row], later[-1].at)
    positions = [fences.position(op.lease) for _, op in items for _ in op.runs]
    return [*arrays, updated, positions], set(follows)


def execution_transitions(
    items: list[tuple[int, TransitionOp]], fences: Fences
) -> tuple[Grouped, Arrays]:
    """Execution transitions (``x_*``), one row per execution."""
    grouped = collapse(items, lambda op: op.execution_id)
    arrays: Arrays = [[] for _ in range(7)]
    ids, states, histories, ats, ended, outputs, leases = arrays
    for execution_id, group in grouped.items():
        last: TransitionOp = group[-1][1]
        ids.append(execution_id)
        states.append(str(last.state))
        histories.append(_rows.history_text((op.state, op.at) for _, op in group))
        ats.append(last.at)
        ended.append(ended_at(last.state, last.at))
        outputs.append(next((op.outputs for _, op in reversed(group) if op.outputs), None))
        leases.append(_lease(group, fences))
    return grouped, arrays


def task_run_transitions(
    items: list[tuple[int, TaskRunTransitionOp]],
    fences: Fences,
    merged: set[tuple[str, str]],
) -> tuple[Grouped, Arrays]:
    """Task-run transitions (``t_*``), one row per task run; ``merged``: see `added_task_runs`."""
    grouped = collapse(items, lambda op: (op.execution_id, op.task_run_id))
    arrays: Arrays = [[] for _ in range(8)]
    ids, executions, states, histories, ats, ended, leases, folded = arrays
    for (execution_id, task_run_id), group in grouped.items():
        folded.append((execution_id, task_run_id) in merged)
        last: TaskRunTransitionOp = group[-1][1]
        ids.append(task_run_id)
        executions.append(execution_id)
        states.append(str(last.state))
        histories.append(_rows.history_text((op.state, op.at) for _, op in group))
        ats.append(last.at)
        ended.append(ended_at(last.state, last.at))
        leases.append(_lease(group, fences))
    return grouped, arrays


def attempts(items: list[tuple[int, AttemptOp]], fences: Fences) -> tuple[Grouped, Arrays]:
    """Attempts (``a_*``), one row per attempt; fields left None keep stored values."""
    grouped = collapse(items, lambda op: (op.execution_id, op.task_run_id, op.attempt.number))
    merged = [merge_attempts([op for _, op in group]) for group in grouped.values()]
    return grouped, [
        [m.task_run_id for m in merged],
        [m.attempt.number for m in merged],
        [m.execution_id for m in merged],
        [str(m.attempt.state) for m in merged],
        [m.attempt.started_at for m in merged],
        [m.attempt.ended_at for m in merged],
        [m.attempt.worker for m in merged],
        [m.attempt.node for m in merged],
        [m.error for m in merged],
        [_lease(group, fences) for group in grouped.values()],
    ]


def merge_attempts(ops: list[AttemptOp]) -> AttemptOp:
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
    return AttemptOp(first.execution_id, first.task_run_id, attempt, error, first.lease)


def outputs(items: list[tuple[int, OutputsOp]], fences: Fences) -> tuple[Grouped, Arrays]:
    """Task-run outputs (``o_*``), one row per task run, top-level keys merged."""
    grouped = collapse(items, lambda op: (op.execution_id, op.task_run_id))
    merged: list[str] = []
    for group in grouped.values():
        combined: dict[str, Any] = {}
        for _, op in group:
            combined.update(op.outputs)
        merged.append(dumps(combined))
    return grouped, [
        [execution_id for execution_id, _ in grouped],
        [task_run_id for _, task_run_id in grouped],
        merged,
        [_lease(group, fences) for group in grouped.values()],
    ]


def labels(items: list[tuple[int, LabelsOp]], fences: Fences) -> tuple[Grouped, Arrays]:
    """Execution labels to merge (``b_*``), one row per execution, later keys winning."""
    grouped = collapse(items, lambda op: op.execution_id)
    merged: list[str] = []
    for group in grouped.values():
        combined: dict[str, str] = {}
        for _, op in group:
            combined.update(op.labels)
        merged.append(dumps(combined))
    return grouped, [list(grouped), merged, [_lease(group, fences) for group in grouped.values()]]


def logs(items: list[tuple[int, LogsOp]]) -> Arrays:
    """Log lines (``l_*``) in submission order."""
    lines = [line for _, op in items for line in op.lines]
    return [
        [line.execution_id for line in lines],
        [line.task_run_id for line in lines],
        [line.attempt for line in lines],
        [line.level for line in lines],
        [as_utc(line.at) for line in lines],
        [line.message for line in lines],
    ]


def trigger_states(items: list[tuple[int, TriggerStateOp]], fences: Fences) -> Arrays:
    """Trigger states (``s_*``), the last write per trigger winning."""
    grouped = collapse(
        items, lambda op: (op.state.namespace, op.state.flow_id, op.state.trigger_id)
    )
    last: list[TriggerStateOp] = [group[-1][1] for group in grouped.values()]
    return [
        [op.state.namespace for op in last],
        [op.state.flow_id for op in last],
        [op.state.trigger_id for op in last],
        [op.cursor for op in last],
        [op.state.last_event_at for op in last],
        [op.state.status for op in last],
        [op.state.last_error for op in last],
        [_lease(group, fences) for group in grouped.values()],
    ]


def mark_missing(grouped: Grouped, missing: set[Any], outcomes: list[Outcome], what: str) -> None:
    """Fail the ops of every row not written (and not already refused) with `StoreError`."""
    for key in missing:
        group = grouped.get(key)
        if group is None:
            continue
        name = key[1] if isinstance(key, tuple) else key
        for index, _ in group:
            if outcomes[index] is None:
                outcomes[index] = StoreError(f"unknown {what} {name!r}")
