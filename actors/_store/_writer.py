"""The store's batched writes: the event path and the history written behind it.

Every write here is an op (`_ops`) handed to the store's `Batcher`: many callers' ops
share one transaction, and each caller's ``await`` returns only once its op committed
(see "The store write path" in docs/architecture.md). Without batching each op is its
own transaction, run concurrently (for comparison in benchmarks).

Writing a batch (`write_batch`): at most one statement for the creates and one for
everything else.

A batch is written on one connection. Creates are one statement (`_creates`); every
other kind of write is one call of `kestrel_write_history_v2` (`_history`), which fences
the writes by their leases, writes each row once and releases leases last. Either is
atomic on its own, so a batch of only one of them needs no BEGIN/COMMIT round trips;
a batch with both (or cut into several history calls) runs in one transaction, creates
first, so history written about a new execution finds it.

Fencing: writes may carry the writer's `Lease`; the call locks those lease rows
(``FOR SHARE``) before writing, so a lease cannot change hands while the batch runs, and
refuses (`StaleLeaseError`) the writes whose epoch is no longer current.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg

from flows import State, StoreError, StoreUnavailable

from . import _creates, _history
from ._batcher import Batcher
from ._connections import Connections
from ._db import CONNECTION_ERRORS, Connection, unavailable
from ._json import dumps
from ._ops import (
    AddTaskRunsOp,
    AttemptOp,
    CreateOp,
    LogsOp,
    Outcome,
    OutputsOp,
    ReleaseLeaseOp,
    TaskRunTransitionOp,
    TransitionOp,
    TriggerStateOp,
    WriteOp,
)
from ._records import Attempt, CreateResult, Lease, LogLine, NewExecution, NewTaskRun, TriggerState


class Writer:
    """Batched execution writes, fenced by the writer's `Lease` when one is given.

    Args:
        connections: The store's pool.
        running: Whether the store is running (ops are refused otherwise).
        batching: Batch ops (True) or write each in its own transaction.
        max_batch: Most ops per batch.
        max_queue: Most ops waiting for a batch; callers wait beyond (backpressure).
    """

    def __init__(
        self,
        connections: Connections,
        running: Callable[[], bool],
        *,
        batching: bool,
        max_batch: int,
        max_queue: int,
    ) -> None:
        self._connections = connections
        self._running = running
        self._batching = batching
        self.batcher: Batcher[WriteOp, Outcome] = Batcher(
            self._flush, max_batch=max_batch, max_queue=max_queue
        )

    async def _flush(self, ops: Sequence[WriteOp]) -> list[Outcome]:
        return await write_batch(self._connections.require_pool(), ops)

    def enqueue(self, op: WriteOp) -> Awaitable[object]:
        """Hand a built op to the writer without waiting; await the result for durability.

        Ops enqueued one after another are applied in that order (as with the write
        methods, which build an op and await it). For write-behind callers that record
        many changes (`StoreRecorder`): no task per write when the queue has room.
        """
        if self._batching and self._running():
            return self.batcher.enqueue(op)
        return asyncio.ensure_future(self._write(op))

    async def _write(self, op: WriteOp) -> object:
        if self._batching:
            return await self.batcher.submit(op)
        if not self._running():
            raise StoreError("the store is not running")
        (outcome,) = await self._flush([op])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def create_execution(
        self,
        new: NewExecution,
        *,
        lease_owner: str | None = None,
        lease_ttl: dt.timedelta | None = None,
    ) -> CreateResult:
        """Create an execution and its initial task runs, once per dedupe key.

        Returns after the execution is durable. If an execution with the same dedupe key
        exists, nothing is written and that execution is returned with
        ``created=False``.

        Args:
            new: The execution (and ``new.task_runs``), written in one transaction.
            lease_owner: Take the execution's lease for this owner in the same transaction.
            lease_ttl: The lease's time to live (with ``lease_owner``).
        """
        result = await self._write(CreateOp.of(new, lease_owner, lease_ttl))
        assert isinstance(result, CreateResult)
        return result

    async def add_task_runs(
        self, execution_id: str, runs: Sequence[NewTaskRun], *, lease: Lease | None = None
    ) -> None:
        """Add task runs to an execution (idempotent on task-run id)."""
        await self._write(AddTaskRunsOp.of(execution_id, runs, lease))

    async def transition(
        self,
        execution_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        outputs: Mapping[str, Any] | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Move an execution to ``state``, appended to its history.

        Args:
            execution_id: The execution.
            state: The new state.
            at: When it happened; defaults to now.
            outputs: Flow outputs to record with it.
            lease: The writer's lease; the write is refused if it is stale.

        Raises:
            StaleLeaseError: ``lease`` is no longer current.
            StoreError: Unknown execution, or the write failed.
        """
        await self._write(TransitionOp.of(execution_id, state, at, outputs, lease))

    async def transition_task_run(
        self,
        execution_id: str,
        task_run_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Move a task run to ``state``, appended to its history (see `transition`)."""
        await self._write(TaskRunTransitionOp.of(execution_id, task_run_id, state, at, lease))

    async def record_attempt(
        self, execution_id: str, task_run_id: str, attempt: Attempt, *, lease: Lease | None = None
    ) -> None:
        """Insert or update attempt ``attempt.number`` of a task run.

        Fields left None keep what an earlier write of the same attempt recorded.
        """
        await self._write(AttemptOp.of(execution_id, task_run_id, attempt, lease))

    async def set_outputs(
        self,
        execution_id: str,
        task_run_id: str,
        outputs: Mapping[str, Any],
        *,
        lease: Lease | None = None,
    ) -> None:
        """Merge ``outputs`` into a task run's outputs (top-level keys replace)."""
        await self._write(OutputsOp.of(execution_id, task_run_id, outputs, lease))

    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """Append log lines (to any executions), in order."""
        if lines:
            await self._write(LogsOp(tuple(lines)))

    async def save_trigger_state(self, state: TriggerState, *, lease: Lease | None = None) -> None:
        """Save (replace) a trigger's cursor, status and last error; batched like events."""
        cursor = None if state.cursor is None else dumps(state.cursor)
        await self._write(TriggerStateOp(state, cursor, lease))

    async def release_lease(self, lease: Lease) -> bool:
        """Expire our lease now; False if it was no longer ours."""
        return await self._write(ReleaseLeaseOp(lease)) is True


async def write_batch(pool: asyncpg.Pool, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Write ``ops`` durably and return one outcome per op, after COMMIT.

    When the batch fails on a database error, each op is retried alone so that one bad
    write only fails its own caller. When the connection fails, every op fails with a
    `StoreUnavailable` (the outcome of the COMMIT is unknown; creates are safe to retry:
    they are idempotent on dedupe key and execution id), as when the server refuses
    connections (shutting down, starting up, out of slots).
    """
    plan = _Plan(ops)  # once per batch: cutting the history into segments walks every op
    try:
        async with pool.acquire() as conn:
            if plan.needs_transaction:
                async with conn.transaction():
                    return await plan.apply(conn)
            return await plan.apply(conn)
    except CONNECTION_ERRORS as exc:
        message = f"database connection failed during a write: {exc!r}"
        return [StoreUnavailable(message) for _ in ops]
    except asyncpg.PostgresError as exc:
        if unavailable(exc):
            return [StoreUnavailable(f"the database is unavailable: {exc}") for _ in ops]
        if len(ops) == 1:
            return [StoreError(f"write refused by the database: {exc}")]
    return [(await write_batch(pool, [op]))[0] for op in ops]


class _Plan:
    """A batch cut into its creates and its history segments (one call each)."""

    def __init__(self, ops: Sequence[WriteOp]) -> None:
        self.size = len(ops)
        self.creates: list[tuple[int, CreateOp]] = []
        history: list[tuple[int, WriteOp]] = []
        for index, op in enumerate(ops):
            if isinstance(op, CreateOp):
                self.creates.append((index, op))
            else:
                history.append((index, op))
        self.segments = _history.segments(history)

    @property
    def needs_transaction(self) -> bool:
        """False when the batch is one statement: only creates, or one history call."""
        if not self.segments:
            return False
        return bool(self.creates) or len(self.segments) > 1

    async def apply(self, conn: Connection) -> list[Outcome]:
        """Write the batch on ``conn``; see `apply_ops`."""
        outcomes: list[Outcome] = [None] * self.size
        await _creates.create_executions(conn, self.creates, outcomes)
        for segment in self.segments:
            await _history.write(conn, segment, outcomes)
        return outcomes


async def apply_ops(conn: Connection, ops: Sequence[WriteOp]) -> list[Outcome]:
    """Apply ``ops`` on ``conn``; commit is the caller's (see `_Plan.needs_transaction`).

    Returns:
        One outcome per op: a `CreateResult` for a create, None for other successful
        writes (True/False for a lease release), a `StaleLeaseError` or `StoreError` for
        a refused one.
    """
    return await _Plan(ops).apply(conn)
