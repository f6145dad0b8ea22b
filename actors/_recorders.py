"""Recorders: where an `ExecutionRun` writes its state changes."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flows import StaleLeaseError, State, StoreError

from ._runstate import TaskRunState
from ._store._ops import (
    AddTaskRunsOp,
    AttemptOp,
    LabelsOp,
    LogsOp,
    OutputsOp,
    TaskRunTransitionOp,
    TransitionOp,
    WriteOp,
)
from ._store._records import Attempt, Lease, LogLine
from ._store._store import Store


@dataclass
class RecordedEvent:
    """One state change, as `MemoryRecorder` keeps it."""

    kind: str
    task_run_id: str | None
    detail: Any


@dataclass
class MemoryRecorder:
    """Keeps every state change in memory, in order: for tests and dry runs."""

    events: list[RecordedEvent] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)

    def task_run_created(self, run: TaskRunState) -> None:
        """Record a new task run."""
        self.events.append(RecordedEvent("created", run.id, run.task_id))

    def task_run_state(self, run: TaskRunState, state: State, at: dt.datetime) -> None:
        """Record a task-run transition."""
        self.events.append(RecordedEvent("state", run.id, (run.task_id, state)))

    def attempt(self, run: TaskRunState, attempt: Attempt) -> None:
        """Record an attempt."""
        self.events.append(RecordedEvent("attempt", run.id, attempt))

    def outputs(self, run: TaskRunState, outputs: Mapping[str, Any]) -> None:
        """Record outputs."""
        self.events.append(RecordedEvent("outputs", run.id, dict(outputs)))

    def log(self, line: LogLine) -> None:
        """Record a log line."""
        self.logs.append(line)

    def labels(self, labels: Mapping[str, str]) -> None:
        """Record labels merged into the execution's."""
        self.events.append(RecordedEvent("labels", None, dict(labels)))

    def execution_state(
        self, state: State, at: dt.datetime, outputs: Mapping[str, Any] | None
    ) -> None:
        """Record an execution transition."""
        self.events.append(RecordedEvent("execution", None, (state, outputs)))

    async def flush(self) -> None:
        """Nothing to wait for."""

    def task_states(self) -> list[tuple[str, State]]:
        """Every task-run transition as (task id, state), in order."""
        return [e.detail for e in self.events if e.kind == "state"]

    def execution_states(self) -> list[State]:
        """Every execution transition, in order."""
        return [e.detail[0] for e in self.events if e.kind == "execution"]


HOLD_S = 0.005
"""How long a change waits in the recorder before it goes to the store's batcher."""


class StoreRecorder:
    """Writes state changes to the store, write-behind, in order, batched across executions.

    Changes are held for `hold_s` after the first of them (or until `flush` or `release`),
    then handed to the store's batcher all at once, in order, without waiting: the batcher
    keeps the order and puts the changes of many executions into one round trip. `flush`
    waits until all of them are durable. A write refused because the lease went stale
    makes the next recording call raise `StaleLeaseError`: the run stops, since another
    owner has the execution now.

    Why hold: a run records the execution RUNNING, its first task run and its first
    attempt, then sends that attempt to a worker. Handed over at once, those changes were
    written (the history statement encoded here, run by Postgres, its commit flushed)
    right while the worker started the task body, on the same two cores: the body started
    later. Held a few milliseconds, they go after the body started, and a short task's
    end joins them in the same statement. Nothing waits on them meanwhile: history is
    write-behind, and whoever needs it durable calls `flush`.

    Args:
        store: The history store.
        execution_id: The execution.
        lease: The run's lease, carried by every write (fencing).
        hold_s: How long changes are held; 0 hands each over as it comes.
    """

    def __init__(
        self, store: Store, execution_id: str, lease: Lease | None, *, hold_s: float = HOLD_S
    ) -> None:
        self._store = store
        self._execution_id = execution_id
        self.lease = lease
        self._hold_s = hold_s
        self._held: list[WriteOp] = []
        self._timer: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Future[object]] = set()
        self._failure: BaseException | None = None

    def _submit(self, op: WriteOp) -> None:
        if self._failure is not None:
            raise self._failure
        if self._hold_s <= 0:
            self._enqueue(op)
            return
        self._held.append(op)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._hold_s, self.release)

    def release(self) -> None:
        """Hand every held change to the store's batcher now, in order (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        for op in held:
            self._enqueue(op)

    def _enqueue(self, op: WriteOp) -> None:
        future = asyncio.ensure_future(self._store.enqueue(op))
        self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if future.cancelled():
            return
        error = future.exception()
        if error is not None and self._failure is None:
            self._failure = error

    def task_run_created(self, run: TaskRunState) -> None:
        """Create the task run."""
        self._submit(AddTaskRunsOp.of(self._execution_id, [run.new_record()], self.lease))

    def task_run_state(self, run: TaskRunState, state: State, at: dt.datetime) -> None:
        """Record a task-run transition."""
        self._submit(TaskRunTransitionOp.of(self._execution_id, run.id, state, at, self.lease))

    def attempt(self, run: TaskRunState, attempt: Attempt) -> None:
        """Record an attempt."""
        self._submit(AttemptOp.of(self._execution_id, run.id, attempt, self.lease))

    def outputs(self, run: TaskRunState, outputs: Mapping[str, Any]) -> None:
        """Record outputs."""
        self._submit(OutputsOp.of(self._execution_id, run.id, outputs, self.lease))

    def log(self, line: LogLine) -> None:
        """Append a log line."""
        self._submit(LogsOp((line,)))

    def labels(self, labels: Mapping[str, str]) -> None:
        """Merge labels into the execution's."""
        self._submit(LabelsOp.of(self._execution_id, labels, self.lease))

    def execution_state(
        self, state: State, at: dt.datetime, outputs: Mapping[str, Any] | None
    ) -> None:
        """Record an execution transition."""
        self._submit(TransitionOp.of(self._execution_id, state, at, outputs, self.lease))

    async def flush(self) -> None:
        """Wait until every change so far is durable.

        Raises:
            StaleLeaseError: Another owner took the execution.
            StoreError: A write failed.
        """
        self.release()
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._failure is not None:
            failure = self._failure
            if isinstance(failure, StaleLeaseError | StoreError):
                raise failure
            raise StoreError(f"recording failed: {failure!r}") from failure
