"""Run flows in-process (memory recorder, in-process dispatcher) to test their semantics."""

from __future__ import annotations

import asyncio
import textwrap
from dataclasses import dataclass
from typing import Any

from actors._dispatch import InProcessDispatcher
from actors._interpreter import ExecutionRun, RunOptions
from actors._recorders import MemoryRecorder
from actors._runstate import ExecutionState
from actors._store._ids import new_id
from actors._store._records import Execution, utcnow
from flows import ExpressionEngine, Flow, State, input_to_json, parse_flow, parse_inputs

ENGINE = ExpressionEngine()


@dataclass
class Ran:
    state: State
    recorder: MemoryRecorder
    run: ExecutionRun

    def outputs(self, task_id: str) -> Any:
        return self.run.state.outputs_tree()[task_id]

    def states(self) -> dict[str, State]:
        """Final state per task id (last transition wins; loops overwrite)."""
        return {task: state for task, state in self.recorder.task_states()}

    def order(self, state: State = State.RUNNING) -> list[str]:
        return [task for task, s in self.recorder.task_states() if s is state]

    def messages(self) -> list[str]:
        return [line.message for line in self.recorder.logs]


def flow_of(text: str) -> Flow:
    flow = parse_flow(textwrap.dedent(text))
    flow.revision = 1
    return flow


def new_state(
    flow: Flow, inputs: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None
) -> ExecutionState:
    now = utcnow()
    typed = parse_inputs(flow, inputs or {})
    execution = Execution(
        id=new_id(),
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision or 1,
        state=State.CREATED,
        state_history=(),
        inputs={k: input_to_json(v) for k, v in typed.items()},
        trigger=trigger,
        labels={},
        outputs=None,
        original_id=None,
        parent_id=None,
        parent_task_run_id=None,
        dedupe_key=None,
        created_at=now,
        updated_at=now,
        ended_at=None,
    )
    return ExecutionState(execution=execution)


def prepare(text: str, **kwargs: Any) -> ExecutionRun:
    flow = flow_of(text)
    return ExecutionRun(
        flow,
        new_state(flow, kwargs.get("inputs"), kwargs.get("trigger")),
        MemoryRecorder(),
        InProcessDispatcher(),
        ENGINE,
        options=RunOptions(envs={}),
    )


async def run_text(text: str, *, within: float = 30, **kwargs: Any) -> Ran:
    run = prepare(text, **kwargs)
    state = await asyncio.wait_for(run.run(), within)
    recorder = run.journal.recorder
    assert isinstance(recorder, MemoryRecorder)
    return Ran(state, recorder, run)
