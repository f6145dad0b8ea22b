"""A batch of history writes in one round trip: one call of `kestrel_write_history_v2`.

Every write-behind kind (task runs added, execution and task-run transitions, attempts,
outputs, labels, logs, trigger states, lease releases) goes into one statement per batch, merged
per row first (`_updates`), fenced inside the statement (migrations 0018 and 0019). One
statement is atomic on its own, so a batch needs no BEGIN/COMMIT round trips either. The
statement answers only the stale leases and the rows it could not write (their target is
missing): a batch that took whole answers no row, and every op's outcome is inferred.

The ops of one row must share one lease to be merged; a batch where they do not (a stale
owner and the new one writing the same execution through one store) is cut into
`segments`, each one call, written in one transaction in submission order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from flows import StaleLeaseError, StoreError

from . import _updates
from ._db import Connection
from ._ops import (
    AddTaskRunsOp,
    AttemptOp,
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
from ._records import Lease

_PARAMETERS = 66
CALL = """SELECT out_kind, out_a, out_b, out_n FROM kestrel_write_history_v2(
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
    $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35,
    $36, $37, $38, $39, $40, $41, $42, $43, $44, $45, $46, $47, $48, $49, $50, $51, $52,
    $53, $54, $55, $56, $57, $58, $59, $60, $61, $62, $63, $64, $65, $66)"""
"""The one statement of a history batch."""

Items = list[tuple[int, WriteOp]]


def _target(op: WriteOp) -> tuple[str, ...] | None:
    """The execution (or trigger) whose rows ``op`` writes under its lease, if fenced."""
    if isinstance(op, TriggerStateOp):
        return ("trigger", op.state.namespace, op.state.flow_id, op.state.trigger_id)
    if isinstance(
        op, AddTaskRunsOp | TransitionOp | TaskRunTransitionOp | AttemptOp | OutputsOp | LabelsOp
    ):
        return ("execution", op.execution_id)
    return None  # unfenced (logs, lease releases): no merge depends on a lease


def _lease_key(lease: Lease | None) -> tuple[str, str, str, int] | None:
    return None if lease is None else (lease.kind, lease.key, lease.owner, lease.epoch)


def segments(items: Items) -> list[Items]:
    """Cut ``items`` where a target's writes change lease; usually one segment."""
    cut: list[Items] = [[]]
    seen: dict[tuple[str, ...], tuple[str, str, str, int] | None] = {}
    for index, op in items:
        target = _target(op)
        if target is not None:
            lease = _lease_key(lease_of(op))
            if target in seen and seen[target] != lease:
                cut.append([])
                seen = {}
            seen[target] = lease
        cut[-1].append((index, op))
    return [segment for segment in cut if segment]


async def write(conn: Connection, items: Items, outcomes: list[Outcome]) -> None:
    """Write one segment with one statement; set each op's outcome."""
    groups: dict[type, list[tuple[int, Any]]] = defaultdict(list)
    for index, op in items:
        groups[type(op)].append((index, op))
    fences = _updates.Fences()
    transitions = groups[TaskRunTransitionOp]
    runs, merged = _updates.added_task_runs(groups[AddTaskRunsOp], transitions, fences)
    executions, x_arrays = _updates.execution_transitions(groups[TransitionOp], fences)
    task_runs, t_arrays = _updates.task_run_transitions(transitions, fences, merged)
    attempts, a_arrays = _updates.attempts(groups[AttemptOp], fences)
    outputs, o_arrays = _updates.outputs(groups[OutputsOp], fences)
    labels, b_arrays = _updates.labels(groups[LabelsOp], fences)
    triggers = _updates.trigger_states(groups[TriggerStateOp], fences)
    releases = _Releases([op for _, op in groups[ReleaseLeaseOp]])
    arrays = [
        *_or_nulls(fences.arrays()),
        *_or_nulls(runs),
        *_or_nulls(x_arrays),
        *_or_nulls(t_arrays),
        *_or_nulls(a_arrays),
        *_or_nulls(o_arrays),
        *_or_nulls(b_arrays),
        *_or_nulls(_updates.logs(groups[LogsOp])),
        *_or_nulls(triggers),
        *_or_nulls(releases.arrays()),
    ]
    assert len(arrays) == _PARAMETERS
    missing, stale = _read(await conn.fetch(CALL, *arrays))
    if stale:
        for index, op in items:
            lease = lease_of(op)
            if lease is not None:
                refused = stale.get(fences.position(lease))
                if refused is not None:
                    outcomes[index] = StaleLeaseError(lease, *refused)
    if missing:
        for index, op in groups[AddTaskRunsOp]:
            if op.runs and op.execution_id in missing["run"] and outcomes[index] is None:
                outcomes[index] = StoreError(f"unknown execution {op.execution_id!r}")
        _updates.mark_missing(executions, missing["execution"], outcomes, "execution")
        _updates.mark_missing(task_runs, missing["task_run"], outcomes, "task run")
        _updates.mark_missing(attempts, missing["attempt"], outcomes, "task run")
        _updates.mark_missing(outputs, missing["outputs"], outcomes, "task run")
        _updates.mark_missing(labels, missing["labels"], outcomes, "execution")
        for index, op in groups[LogsOp]:
            unknown = sorted({line.execution_id for line in op.lines} & missing["log"])
            if unknown:
                message = f"unknown execution {unknown[0]!r}; log not written"
                outcomes[index] = StoreError(message)
    for index, op in groups[ReleaseLeaseOp]:
        outcomes[index] = releases.position(op.lease) not in missing["unreleased"]


def _or_nulls(arrays: list[list[Any]]) -> list[list[Any] | None]:
    """A kind's arrays, or NULLs when it has no rows.

    A NULL costs less than an empty array to encode and to decode, and most batches leave
    most of the 10 kinds empty.
    """
    if arrays[0]:
        return list(arrays)
    return [None] * len(arrays)


class _Releases:
    """The distinct leases to release (``e_*``), numbered from 1."""

    def __init__(self, ops: list[ReleaseLeaseOp]) -> None:
        self._position: dict[tuple[str, str, str, int] | None, str] = {}
        self.leases: list[Lease] = []
        for op in ops:
            key = _lease_key(op.lease)
            if key not in self._position:
                self.leases.append(op.lease)
                self._position[key] = str(len(self.leases))

    def position(self, lease: Lease) -> str:
        """``lease``'s number, as the function returns it."""
        return self._position[_lease_key(lease)]

    def arrays(self) -> list[list[Any]]:
        """kind, key, owner, epoch of every lease, by number."""
        return [
            [lease.kind for lease in self.leases],
            [lease.key for lease in self.leases],
            [lease.owner for lease in self.leases],
            [lease.epoch for lease in self.leases],
        ]


def _read(
    rows: Sequence[Any],
) -> tuple[dict[str, set[Any]], dict[int | None, tuple[str | None, int | None]]]:
    """The function's result rows: the rows not written, by kind, and the stale leases."""
    missing: dict[str, set[Any]] = defaultdict(set)
    stale: dict[int | None, tuple[str | None, int | None]] = {}
    for kind, a, b, n in rows:
        if kind == "stale":
            stale[int(a)] = (b, n)
        elif kind in ("run", "execution", "labels", "log", "unreleased"):
            missing[kind].add(a)
        elif kind == "attempt":
            missing[kind].add((a, b, n))
        else:
            missing[kind].add((a, b))
    return missing, stale
