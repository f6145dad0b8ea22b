"""A recorded write log folded back into what the store held at any point of a run."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from actors import (
    Attempt,
    Execution,
    ExecutionDetail,
    StateEntry,
    TaskRun,
    TaskRunDetail,
)
from flows import Flow, State, input_to_json, parse_inputs

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclasses.dataclass
class _Run:
    fields: dict[str, Any]
    history: list[State] = dataclasses.field(default_factory=list)
    attempts: dict[int, State] = dataclasses.field(default_factory=dict)
    outputs: dict[str, Any] | None = None


def detail_after(history: dict[str, Any], flow: Flow, cut: int) -> ExecutionDetail:
    """The execution as stored once the first `cut` writes of `history` were durable."""
    runs: dict[str, _Run] = {}
    states: list[State] = []
    for write in history["writes"][:cut]:
        kind, rest = write[0], write[1:]
        if kind == "created":
            run_id, task_id, parent_id, value, iteration = rest
            runs[run_id] = _Run(
                {"task_id": task_id, "parent": parent_id, "value": value, "iteration": iteration}
            )
        elif kind == "state":
            runs[rest[0]].history.append(State(rest[1]))
        elif kind == "attempt":
            runs[rest[0]].attempts[rest[1]] = State(rest[2])
        elif kind == "outputs":
            runs[rest[0]].outputs = rest[1]
        elif kind == "execution":
            states.append(State(rest[0]))
    execution_id = history["executionId"]
    typed = parse_inputs(flow, history["inputs"])
    execution = Execution(
        id=execution_id,
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        state=states[-1] if states else State.CREATED,
        state_history=tuple(StateEntry(s, EPOCH) for s in states),
        inputs={k: input_to_json(v) for k, v in typed.items()},
        trigger=history["trigger"],
        labels={},
        outputs=None,
        original_id=None,
        parent_id=None,
        parent_task_run_id=None,
        dedupe_key=None,
        created_at=EPOCH,
        updated_at=EPOCH,
        ended_at=None,
    )
    return ExecutionDetail(
        execution=execution,
        task_runs=tuple(_detail(execution_id, run_id, run) for run_id, run in runs.items()),
        logs=(),
        flow=None,
    )


def _detail(execution_id: str, run_id: str, run: _Run) -> TaskRunDetail:
    state = run.history[-1] if run.history else State.CREATED
    task_run = TaskRun(
        id=run_id,
        execution_id=execution_id,
        task_id=run.fields["task_id"],
        parent_task_run_id=run.fields["parent"],
        value=run.fields["value"],
        iteration=run.fields["iteration"],
        state=state,
        state_history=tuple(StateEntry(s, EPOCH) for s in run.history),
        created_at=EPOCH,
        updated_at=EPOCH,
        ended_at=EPOCH if state.terminal else None,
    )
    attempts = tuple(
        Attempt(number=n, state=s, started_at=EPOCH, ended_at=EPOCH if s.terminal else None)
        for n, s in sorted(run.attempts.items())
    )
    return TaskRunDetail(task_run=task_run, attempts=attempts, outputs=run.outputs)
