"""Response models and record → JSON conversion, in Kestra's camelCase shapes."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from actors import (
    TRIGGER_LABEL,
    Attempt,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowRevision,
    KVEntry,
    LogLine,
    StateEntry,
    TaskRunDetail,
    TriggerInfo,
)
from flows import Flow, Problem, State, format_duration

from ._nul import NUL_REFUSED, has_nul

PREVIEW_CHARS = 1000
"""How much of a dead letter's payload is shown as text."""


class ApiModel(BaseModel):
    """Base of the API's JSON shapes: camelCase on the wire, snake_case in Python."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class ErrorBody(ApiModel):
    """Every error answer."""

    message: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


class HealthBody(ApiModel):
    """``GET /health``."""

    status: str = "UP"


class ProblemBody(ApiModel):
    """One problem in a flow, at its position."""

    file: str
    line: int
    column: int
    path: str
    message: str


class Label(ApiModel):
    """Kestra's label form."""

    key: str
    value: str


class StateHistory(ApiModel):
    """One state entered, with when."""

    state: State
    date: dt.datetime


class StateBody(ApiModel):
    """Kestra's state object: the current state and every transition."""

    current: State
    histories: list[StateHistory]
    start_date: dt.datetime | None = None
    end_date: dt.datetime | None = None
    duration: str | None = Field(default=None, description="ISO-8601, once ended")


class AttemptBody(ApiModel):
    """One attempt of a task run."""

    number: int
    state: StateBody
    worker: str | None = None
    node: str | None = None
    error: dict[str, Any] | None = None


class TaskRunBody(ApiModel):
    """A task run with its attempts and outputs."""

    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    parent_task_run_id: str | None = None
    value: str | None = None
    iteration: int | None = None
    state: StateBody
    attempts: list[AttemptBody]
    outputs: dict[str, Any] | None = None


class ExecutionTrigger(ApiModel):
    """What started an execution (Kestra's ``trigger``)."""

    id: str | None = None
    variables: dict[str, Any] | None = None


class ExecutionBody(ApiModel):
    """An execution; ``taskRunList`` is null in search results."""

    id: str
    namespace: str
    flow_id: str
    flow_revision: int
    state: StateBody
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None = None
    labels: list[Label]
    trigger: ExecutionTrigger | None = None
    original_id: str | None = None
    parent_id: str | None = None
    parent_task_run_id: str | None = None
    task_run_list: list[TaskRunBody] | None = None


class ExecutionPage(ApiModel):
    """A page of executions."""

    results: list[ExecutionBody]
    total: int


class LogBody(ApiModel):
    """One log line of an execution."""

    execution_id: str
    task_run_id: str | None = None
    attempt_number: int | None = None
    timestamp: dt.datetime
    level: str
    message: str
    seq: int


class FlowSummary(ApiModel):
    """A flow in search results."""

    id: str
    namespace: str
    revision: int
    description: str | None = None
    labels: list[Label] = Field(default_factory=list)
    disabled: bool = False
    triggers: list[dict[str, str]] = Field(default_factory=list)
    updated: dt.datetime
    errors: list[ProblemBody] | None = Field(
        default=None, description="set when the stored source no longer loads"
    )
    last_execution_state: str | None = Field(
        default=None, description="the state of the flow's newest execution, if any"
    )


class FlowPage(ApiModel):
    """A page of flows."""

    results: list[FlowSummary]
    total: int


class RevisionBody(ApiModel):
    """One saved revision of a flow."""

    id: str
    namespace: str
    revision: int
    checksum: str
    deleted: bool
    updated: dt.datetime
    source: str


class KVValue(ApiModel):
    """``GET /namespaces/{ns}/kv/{key}``, as Kestra."""

    type: str
    value: Any


class KVBody(ApiModel):
    """A KV entry with its value."""

    namespace: str
    key: str
    type: str
    value: Any
    expiration_date: dt.datetime | None = None
    update_date: dt.datetime


class KVKey(ApiModel):
    """A KV entry in a listing (no value)."""

    key: str
    type: str
    expiration_date: dt.datetime | None = None
    update_date: dt.datetime


class TriggerBody(ApiModel):
    """A deployed trigger's status and counters."""

    namespace: str
    flow_id: str
    trigger_id: str
    type: str
    revision: int
    status: str
    last_error: str | None = None
    last_event_date: dt.datetime | None = None
    events: int
    executions_created: int
    duplicates: int
    dead_letters: int
    reconnects: int
    disabled: bool = False


class TriggerPage(ApiModel):
    """Every deployed trigger."""

    results: list[TriggerBody]
    total: int


class BackfillRequest(ApiModel):
    """``PUT /triggers/backfill``."""

    model_config = ConfigDict(extra="forbid")

    namespace: str
    flow_id: str
    trigger_id: str | None = None
    start: dt.datetime
    end: dt.datetime | None = None
    inputs: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError(NUL_REFUSED)
        return data


class BackfillJobBody(ApiModel):
    """A backfill and its progress."""

    id: str
    namespace: str
    flow_id: str
    trigger_id: str
    start: dt.datetime
    end: dt.datetime
    state: str = Field(description="RUNNING, SUCCESS or FAILED")
    done: int = Field(description="ticks whose execution exists so far")
    total: int = Field(description="ticks this backfill runs")
    cap: int = Field(description="the most ticks one backfill runs")
    capped: bool = Field(description="the range had more ticks than the cap: it was cut")
    covered_until: dt.datetime = Field(description="the end of the range actually run")
    message: str | None = Field(default=None, description="what a cut or a failure means")
    executions: list[str] = Field(description="the executions, one per tick done")


class DeadLetterBody(ApiModel):
    """A message that could not become an execution."""

    id: str
    source: str
    namespace: str | None = None
    flow_id: str | None = None
    trigger_id: str | None = None
    reason: str
    attempts: int
    metadata: dict[str, Any]
    created_date: dt.datetime | None = None
    payload: str = Field(description="the raw bytes, base64")
    payload_preview: str = Field(description="the start of the payload as UTF-8 text")
    redriven_execution_id: str | None = Field(
        default=None, description="the execution its re-drive created, once re-driven"
    )


class DeadLetterPage(ApiModel):
    """The newest dead letters."""

    results: list[DeadLetterBody]
    total: int


# ---- conversion -----------------------------------------------------------------------


def as_utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC; a naive time is taken to be UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def labels_list(labels: Mapping[str, str] | Sequence[Any] | None) -> list[Label]:
    """Labels as Kestra's list of ``{key, value}``, from a dict or such a list."""
    if not labels:
        return []
    if isinstance(labels, Mapping):
        return [Label(key=str(k), value=str(v)) for k, v in labels.items()]
    out: list[Label] = []
    for item in labels:
        if isinstance(item, Mapping):
            out.append(Label(key=str(item["key"]), value=str(item["value"])))
        else:
            out.append(Label(key=str(item.key), value=str(item.value)))
    return out


def state_body(
    current: State,
    history: Iterable[StateEntry],
    ended_at: dt.datetime | None = None,
) -> StateBody:
    """Kestra's state object from a state history."""
    histories = [StateHistory(state=e.state, date=e.date) for e in history]
    start = histories[0].date if histories else None
    end = ended_at
    if end is None and current.terminal and histories:
        end = histories[-1].date
    duration = format_duration(end - start) if start is not None and end is not None else None
    return StateBody(
        current=current, histories=histories, start_date=start, end_date=end, duration=duration
    )


def attempt_body(attempt: Attempt) -> AttemptBody:
    """An attempt, with a state object built from its start and end."""
    history: list[StateEntry] = []
    if attempt.started_at is not None:
        history.append(StateEntry(State.RUNNING, attempt.started_at))
    if attempt.ended_at is not None:
        history.append(StateEntry(attempt.state, attempt.ended_at))
    return AttemptBody(
        number=attempt.number,
        state=state_body(attempt.state, history, attempt.ended_at),
        worker=attempt.worker,
        node=attempt.node,
        error=attempt.error,
    )


def task_run_body(detail: TaskRunDetail, execution: Execution) -> TaskRunBody:
    """A task run of `execution`."""
    run = detail.task_run
    return TaskRunBody(
        id=run.id,
        execution_id=run.execution_id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        task_id=run.task_id,
        parent_task_run_id=run.parent_task_run_id,
        value=run.value,
        iteration=run.iteration,
        state=state_body(run.state, run.state_history, run.ended_at),
        attempts=[attempt_body(a) for a in detail.attempts],
        outputs=detail.outputs,
    )


def execution_body(
    execution: Execution, task_runs: Sequence[TaskRunDetail] | None = None
) -> ExecutionBody:
    """An execution; with its task runs when given."""
    trigger = None
    if execution.trigger is not None or TRIGGER_LABEL in execution.labels:
        trigger = ExecutionTrigger(
            id=execution.labels.get(TRIGGER_LABEL), variables=execution.trigger
        )
    return ExecutionBody(
        id=execution.id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        flow_revision=execution.flow_revision,
        state=state_body(execution.state, execution.state_history, execution.ended_at),
        inputs=execution.inputs,
        outputs=execution.outputs,
        labels=labels_list(execution.labels),
        trigger=trigger,
        original_id=execution.original_id,
        parent_id=execution.parent_id,
        parent_task_run_id=execution.parent_task_run_id,
        task_run_list=(
            None if task_runs is None else [task_run_body(d, execution) for d in task_runs]
        ),
    )


def detail_body(detail: ExecutionDetail) -> ExecutionBody:
    """An execution with its task runs."""
    return execution_body(detail.execution, detail.task_runs)


def log_body(line: LogLine) -> LogBody:
    """A log line."""
    return LogBody(
        execution_id=line.execution_id,
        task_run_id=line.task_run_id,
        attempt_number=line.attempt,
        timestamp=line.at,
        level=line.level,
        message=line.message,
        seq=line.seq,
    )


def problem_body(problem: Problem) -> ProblemBody:
    """A flow problem."""
    return ProblemBody(
        file=problem.file,
        line=problem.line,
        column=problem.column,
        path=problem.path,
        message=problem.message,
    )


def flow_json(flow: Flow, revision: FlowRevision) -> dict[str, Any]:
    """The flow as Kestra shows it, with its revision, update time and YAML source."""
    data: dict[str, Any] = flow.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["labels"] = [label.model_dump() for label in labels_list(flow.label_dict())]
    data["revision"] = revision.revision
    data["updated"] = revision.created_at.isoformat()
    data["deleted"] = revision.deleted
    data["source"] = revision.source
    return data


def flow_summary(flow: Flow | None, revision: FlowRevision, problems: list[Problem]) -> FlowSummary:
    """A flow in search results; from the revision alone when its source no longer loads."""
    if flow is None:
        return FlowSummary(
            id=revision.flow_id,
            namespace=revision.namespace,
            revision=revision.revision,
            updated=revision.created_at,
            errors=[problem_body(p) for p in problems],
        )
    return FlowSummary(
        id=flow.id,
        namespace=flow.namespace,
        revision=revision.revision,
        description=flow.description,
        labels=labels_list(flow.label_dict()),
        disabled=flow.disabled,
        triggers=[{"id": t.id, "type": t.type} for t in flow.triggers],
        updated=revision.created_at,
    )


def revision_body(revision: FlowRevision) -> RevisionBody:
    """A saved revision."""
    return RevisionBody(
        id=revision.flow_id,
        namespace=revision.namespace,
        revision=revision.revision,
        checksum=revision.checksum,
        deleted=revision.deleted,
        updated=revision.created_at,
        source=revision.source,
    )


def kv_json_value(value: Any) -> Any:
    """A KV value as JSON: dates in ISO-8601, durations as ISO-8601 durations."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    return value


def kv_body(entry: KVEntry) -> KVBody:
    """A KV entry with its value."""
    return KVBody(
        namespace=entry.namespace,
        key=entry.key,
        type=str(entry.type),
        value=kv_json_value(entry.value),
        expiration_date=entry.expires_at,
        update_date=entry.updated_at,
    )


def kv_key(entry: KVEntry) -> KVKey:
    """A KV entry in a listing."""
    return KVKey(
        key=entry.key,
        type=str(entry.type),
        expiration_date=entry.expires_at,
        update_date=entry.updated_at,
    )


def trigger_body(info: TriggerInfo) -> TriggerBody:
    """A trigger's status."""
    return TriggerBody(
        namespace=info.namespace,
        flow_id=info.flow_id,
        trigger_id=info.trigger_id,
        type=info.type,
        revision=info.revision,
        status=str(info.status),
        last_error=info.last_error,
        last_event_date=info.last_event_at,
        events=info.events,
        executions_created=info.created,
        duplicates=info.duplicates,
        dead_letters=info.dead_letters,
        reconnects=info.reconnects,
        disabled=info.disabled,
    )


def dead_letter_body(letter: DeadLetter) -> DeadLetterBody:
    """A dead letter, its payload as base64 plus a text preview."""
    return DeadLetterBody(
        id=letter.id,
        source=letter.source,
        namespace=letter.namespace,
        flow_id=letter.flow_id,
        trigger_id=letter.trigger_id,
        reason=letter.reason,
        attempts=letter.attempts,
        metadata=letter.metadata,
        created_date=letter.created_at,
        payload=base64.b64encode(letter.payload).decode("ascii"),
        payload_preview=letter.payload[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[
            :PREVIEW_CHARS
        ],
    )
