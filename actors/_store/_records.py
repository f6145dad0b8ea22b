"""Typed records: what goes into the store and what comes back out.

All are frozen dataclasses (picklable, so they cross Ray actor calls). Times are aware UTC
datetimes; durations are `datetime.timedelta`. JSON-valued fields hold plain JSON data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from flows import KVType as KVType  # the one KV type enum, re-exported
from flows import State

from ._ids import new_id

T = TypeVar("T")

EXECUTION_LEASE = "execution"
"""Lease kind under which an execution's owner holds it (the lease key is the execution id)."""


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class StateEntry:
    """One transition in a state history.

    Attributes:
        state: The state entered.
        date: When it was entered.
    """

    state: State
    date: dt.datetime


@dataclass(frozen=True, slots=True)
class Lease:
    """A time-limited claim on something, with a fencing epoch.

    Attributes:
        kind: What sort of thing is leased, e.g. `EXECUTION_LEASE`.
        key: Which one (for executions, the execution id).
        owner: Who holds it (unique per holder incarnation).
        epoch: Increases every time the lease is taken; writes carry it and are refused
            once a newer epoch exists.
        expires_at: When another owner may take it unless it is renewed.
        takeovers: How many times it was taken from an owner that had not released it.
    """

    kind: str
    key: str
    owner: str
    epoch: int
    expires_at: dt.datetime
    takeovers: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTaskRun:
    """A task run to create.

    Attributes:
        task_id: The task's id in the flow.
        id: The task run's id; generated unless given.
        parent_task_run_id: The enclosing flowable task's run, if any.
        value: The iteration value (ForEach item), if any.
        iteration: The iteration number, if any.
        state: The first state.
        created_at: Defaults to now.
    """

    task_id: str
    id: str = field(default_factory=new_id)
    parent_task_run_id: str | None = None
    value: str | None = None
    iteration: int | None = None
    state: State = State.CREATED
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NewExecution:
    """An execution to create, with its first task runs (all written in one transaction).

    Attributes:
        namespace: The flow's namespace.
        flow_id: The flow's id.
        flow_revision: The flow revision the execution runs.
        inputs: Validated inputs.
        trigger: The trigger variables (``trigger.*``), if started by a trigger.
        labels: Execution labels.
        dedupe_key: Unique source position; a second create with it returns the first.
        original_id: For a replay, the execution replayed.
        parent_id: For a subflow, the parent execution.
        parent_task_run_id: For a subflow, the parent's Subflow task run.
        state: The first state.
        task_runs: Task runs created together with the execution.
        id: The execution's id; generated unless given.
        created_at: Defaults to now.
    """

    namespace: str
    flow_id: str
    flow_revision: int
    inputs: dict[str, Any] = field(default_factory=dict)
    trigger: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    dedupe_key: str | None = None
    original_id: str | None = None
    parent_id: str | None = None
    parent_task_run_id: str | None = None
    state: State = State.CREATED
    task_runs: tuple[NewTaskRun, ...] = ()
    id: str = field(default_factory=new_id)
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """An execution as stored.

    Attributes:
        id: The execution's id.
        namespace: The flow's namespace.
        flow_id: The flow's id.
        flow_revision: The flow revision it runs.
        state: The current state.
        state_history: Every state entered, oldest first.
        inputs: Validated inputs.
        trigger: The trigger variables, if any.
        labels: Execution labels.
        outputs: Flow outputs, once set.
        original_id: The replayed execution, for a replay.
        parent_id: The parent execution, for a subflow.
        parent_task_run_id: The parent's Subflow task run, for a subflow.
        dedupe_key: The source position it was created from, if any.
        created_at: Creation time (Kestra's ``startDate``).
        updated_at: Time of the last change.
        ended_at: When it reached a terminal state.
    """

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: State
    state_history: tuple[StateEntry, ...]
    inputs: dict[str, Any]
    trigger: dict[str, Any] | None
    labels: dict[str, str]
    outputs: dict[str, Any] | None
    original_id: str | None
    parent_id: str | None
    parent_task_run_id: str | None
    dedupe_key: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRun:
    """A task run as stored.

    Attributes:
        id: The task run's id.
        execution_id: Its execution.
        task_id: The task's id in the flow.
        parent_task_run_id: The enclosing flowable task's run, if any.
        value: The iteration value, if any.
        iteration: The iteration number, if any.
        state: The current state.
        state_history: Every state entered, oldest first.
        created_at: Creation time.
        updated_at: Time of the last change.
        ended_at: When it reached a terminal state.
    """

    id: str
    execution_id: str
    task_id: str
    parent_task_run_id: str | None
    value: str | None
    iteration: int | None
    state: State
    state_history: tuple[StateEntry, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    """One attempt of a task run; written with `Store.record_attempt`, read back as is.

    Attributes:
        number: 1 for the first attempt, 2 for the first retry, ...
        state: The attempt's state.
        started_at: When it started running.
        ended_at: When it finished.
        worker: The Ray worker (actor or task id) that ran it.
        node: The Ray node it ran on.
        error: For a failed attempt, e.g. ``{"message": ..., "type": ...}``.
    """

    number: int
    state: State
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    worker: str | None = None
    node: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LogLine:
    """A log line of an execution.

    Attributes:
        execution_id: The execution.
        message: The text.
        level: TRACE, DEBUG, INFO, WARN or ERROR.
        task_run_id: The task run that logged it, if any.
        attempt: The attempt number, if any.
        at: When it was logged.
        seq: Store-assigned position, increasing; 0 until stored. Use the last one seen as
            the ``since`` cursor to stream new lines.
    """

    execution_id: str
    message: str
    level: str = "INFO"
    task_run_id: str | None = None
    attempt: int | None = None
    at: dt.datetime = field(default_factory=utcnow)
    seq: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRevision:
    """One saved revision of a flow.

    Attributes:
        namespace: The flow's namespace.
        flow_id: The flow's id.
        revision: 1, 2, ... increasing with every change.
        checksum: Sha256 (hex) of ``source``.
        source: The YAML text, verbatim.
        deleted: True for the revision that deleted the flow.
        created_at: When the revision was saved.
    """

    namespace: str
    flow_id: str
    revision: int
    checksum: str
    source: str
    deleted: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class FlowSaveResult:
    """What `Store.save_flow` did.

    Attributes:
        flow: The current revision.
        changed: False when the source was identical to the current revision's.
    """

    flow: FlowRevision
    changed: bool


@dataclass(frozen=True, slots=True)
class CreateResult:
    """What `Store.create_execution` did.

    Attributes:
        execution: The execution, new or already existing.
        created: False when an execution with the same dedupe key existed (a redelivery).
        lease: The lease taken with the new execution, when one was asked for and it was
            created.
    """

    execution: Execution
    created: bool
    lease: Lease | None = None


@dataclass(frozen=True, slots=True)
class TaskRunDetail:
    """A task run with its attempts and outputs.

    Attributes:
        task_run: The task run.
        attempts: Its attempts, by number.
        outputs: Its outputs, if any were recorded.
    """

    task_run: TaskRun
    attempts: tuple[Attempt, ...]
    outputs: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ExecutionDetail:
    """Everything recorded about an execution: what a replay needs.

    Attributes:
        execution: The execution (inputs, trigger variables, flow revision, labels).
        task_runs: Every task run in creation order, with attempts and outputs.
        logs: Every log line in order.
        flow: The flow revision the execution ran, if it is in the store.
    """

    execution: Execution
    task_runs: tuple[TaskRunDetail, ...]
    logs: tuple[LogLine, ...]
    flow: FlowRevision | None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of search results.

    Attributes:
        items: The results on this page.
        total: How many results match in all.
        limit: The page size asked for.
        offset: How many results were skipped.
    """

    items: tuple[T, ...]
    total: int
    limit: int
    offset: int


@dataclass(frozen=True, slots=True, kw_only=True)
class KVEntry:
    """A KV pair.

    Attributes:
        namespace: Its namespace.
        key: Its key.
        type: The value's type.
        value: The value as a Python object of that type (str, int/float, bool,
            datetime, date, timedelta, or JSON data).
        expires_at: When it disappears, if it has a TTL.
        updated_at: When it was last set.
    """

    namespace: str
    key: str
    type: KVType
    value: Any
    expires_at: dt.datetime | None
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerState:
    """Where a trigger listener is in its source.

    Attributes:
        namespace: The flow's namespace.
        flow_id: The flow's id.
        trigger_id: The trigger's id in the flow.
        cursor: Source position as JSON (offsets per partition, stream sequence, ...).
        status: The listener's status, e.g. RUNNING, STOPPED, FAILED.
        last_event_at: Time of the last event handled.
        last_error: The last error, if any.
        updated_at: Set by the store when saved.
    """

    namespace: str
    flow_id: str
    trigger_id: str
    cursor: Any = None
    status: str = "RUNNING"
    last_event_at: dt.datetime | None = None
    last_error: str | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A message that could not become an execution.

    Attributes:
        source: Where it came from, e.g. ``kafka:orders/3@1234``.
        payload: The raw message bytes, verbatim.
        reason: Why it was refused.
        attempts: How many times it was tried.
        metadata: Anything else about the message (headers, key, ...), as JSON.
        namespace: The flow's namespace, if known.
        flow_id: The flow's id, if known.
        trigger_id: The trigger's id, if known.
        id: Generated unless given.
        created_at: Set by the store when written.
    """

    source: str
    payload: bytes
    reason: str
    attempts: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    namespace: str | None = None
    flow_id: str | None = None
    trigger_id: str | None = None
    id: str = field(default_factory=new_id)
    created_at: dt.datetime | None = None
