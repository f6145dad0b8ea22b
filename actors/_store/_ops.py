"""Write operations: what callers hand to the batcher, with JSON already encoded.

Encoding happens when an op is built, in the caller, so a value JSON cannot carry fails
that caller at once instead of a whole batch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flows import State, StoreError

from ._json import dumps
from ._records import (
    EXECUTION_LEASE,
    Attempt,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    TriggerState,
    as_utc,
    utcnow,
)


def check_lease(lease: Lease | None, execution_id: str) -> None:
    """Refuse an execution lease used to write another execution."""
    if lease is not None and lease.kind == EXECUTION_LEASE and lease.key != execution_id:
        raise StoreError(
            f"lease for execution {lease.key!r} used to write execution {execution_id!r}"
        )


@dataclass(frozen=True, slots=True)
class CreateOp:
    """Create an execution (idempotent on dedupe key and id), its task runs, maybe a lease."""

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
        """Build the op (JSON encoded now)."""
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

    @classmethod
    def of(cls, execution_id: str, runs: Any, lease: Lease | None = None) -> AddTaskRunsOp:
        """Build the op (lease checked now)."""
        check_lease(lease, execution_id)
        return cls(execution_id, tuple(runs), lease)


@dataclass(frozen=True, slots=True)
class TransitionOp:
    """Move an execution to a state (appended to its history); maybe set flow outputs."""

    execution_id: str
    state: State
    at: dt.datetime
    outputs: str | None
    lease: Lease | None

    @classmethod
    def of(
        cls,
        execution_id: str,
        state: State,
        at: dt.datetime | None = None,
        outputs: Any = None,
        lease: Lease | None = None,
    ) -> TransitionOp:
        """Build the op (lease checked, outputs encoded, time defaulted to now)."""
        check_lease(lease, execution_id)
        encoded = None if outputs is None else dumps(dict(outputs))
        return cls(execution_id, State(state), as_utc(at) if at else utcnow(), encoded, lease)


@dataclass(frozen=True, slots=True)
class TaskRunTransitionOp:
    """Move a task run to a state (appended to its history)."""

    execution_id: str
    task_run_id: str
    state: State
    at: dt.datetime
    lease: Lease | None

    @classmethod
    def of(
        cls,
        execution_id: str,
        task_run_id: str,
        state: State,
        at: dt.datetime | None = None,
        lease: Lease | None = None,
    ) -> TaskRunTransitionOp:
        """Build the op (lease checked, time defaulted to now)."""
        check_lease(lease, execution_id)
        return cls(execution_id, task_run_id, State(state), as_utc(at) if at else utcnow(), lease)


@dataclass(frozen=True, slots=True)
class AttemptOp:
    """Insert or update one attempt of a task run."""

    execution_id: str
    task_run_id: str
    attempt: Attempt
    error: str | None
    lease: Lease | None

    @classmethod
    def of(
        cls, execution_id: str, task_run_id: str, attempt: Attempt, lease: Lease | None = None
    ) -> AttemptOp:
        """Build the op (lease checked, error encoded)."""
        check_lease(lease, execution_id)
        error = None if attempt.error is None else dumps(attempt.error)
        return cls(execution_id, task_run_id, attempt, error, lease)


@dataclass(frozen=True, slots=True)
class OutputsOp:
    """Merge outputs (top-level keys) into a task run's outputs."""

    execution_id: str
    task_run_id: str
    outputs: dict[str, Any]
    lease: Lease | None

    @classmethod
    def of(
        cls, execution_id: str, task_run_id: str, outputs: Any, lease: Lease | None = None
    ) -> OutputsOp:
        """Build the op (lease checked; fails now on a value JSON cannot carry)."""
        check_lease(lease, execution_id)
        dumps(dict(outputs))
        return cls(execution_id, task_run_id, dict(outputs), lease)


@dataclass(frozen=True, slots=True)
class LabelsOp:
    """Merge labels into an execution's labels (Kestra's execution.Labels task)."""

    execution_id: str
    labels: dict[str, str]
    lease: Lease | None

    @classmethod
    def of(cls, execution_id: str, labels: Any, lease: Lease | None = None) -> LabelsOp:
        """Build the op (lease checked)."""
        check_lease(lease, execution_id)
        return cls(execution_id, {str(k): str(v) for k, v in dict(labels).items()}, lease)


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


@dataclass(frozen=True, slots=True)
class ReleaseLeaseOp:
    """Expire a lease now, if it is still the holder's (outcome: True, or False if not)."""

    lease: Lease


WriteOp = (
    CreateOp
    | AddTaskRunsOp
    | TransitionOp
    | TaskRunTransitionOp
    | AttemptOp
    | OutputsOp
    | LabelsOp
    | LogsOp
    | TriggerStateOp
    | ReleaseLeaseOp
)
Outcome = object | BaseException
"""Per op: a `CreateResult` for creates, None for other writes, or the error."""


def lease_of(op: WriteOp) -> Lease | None:
    """The lease an op is fenced by, if any."""
    if isinstance(op, CreateOp | LogsOp | ReleaseLeaseOp):
        return None  # a release is no write under the lease: it checks owner and epoch
    return op.lease
