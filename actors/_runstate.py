"""The in-memory state of one execution while it runs, rebuilt from the store at will.

Task-run ids are derived from the execution id and the task run's place in the flow
(its *key*), so that an execution resumed by another actor, restarted, or replayed finds
the task runs it already has instead of creating new ones.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from flows import State

from ._store._ids import _ALPHABET, ID_LENGTH
from ._store._records import (
    Attempt,
    Execution,
    ExecutionDetail,
    NewTaskRun,
    StateEntry,
    TaskRunDetail,
    utcnow,
)

_ID_NAMESPACE = uuid.UUID("6f1c7a64-3f0e-4f2b-9d8a-6b1f6c0f4b11")


def derived_id(*parts: str) -> str:
    """A stable id (same alphabet as the store's ids) for the given parts."""
    number = uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)).int
    chars: list[str] = []
    for _ in range(ID_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def child_key(parent_key: str | None, task_id: str, value: str | None = None) -> str:
    """The key of a task run: its parent's key, the iteration value it runs for, its id."""
    head = parent_key or ""
    if value is not None and parent_key is not None:
        head = f"{head}[{value}]"
    return f"{head}/{task_id}" if head else task_id


@dataclass
class TaskRunState:
    """One task run, as the interpreter tracks it.

    Attributes:
        id: Derived from the execution id and `key`.
        key: The task run's place in the flow, e.g. ``each[a]/notify``.
        task_id: The task's id.
        parent_id: The enclosing flowable task run, if any.
        values: Iteration values of every enclosing loop, outermost first.
        iteration: The iteration number within the closest loop, if any.
        state: Current state.
        history: Every state entered.
        attempts: Attempts so far (runnable and inline tasks).
        outputs: The task's outputs.
    """

    id: str
    key: str
    task_id: str
    parent_id: str | None = None
    values: tuple[str, ...] = ()
    iteration: int | None = None
    state: State = State.CREATED
    history: list[StateEntry] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> str | None:
        """The closest enclosing loop's iteration value (Kestra's ``taskrun.value``)."""
        return self.values[-1] if self.values else None

    def new_record(self) -> NewTaskRun:
        """The store record that creates this task run."""
        return NewTaskRun(
            task_id=self.task_id,
            id=self.id,
            parent_task_run_id=self.parent_id,
            value=self.value,
            iteration=self.iteration,
            state=self.state,
            created_at=self.history[0].date if self.history else None,
        )


@dataclass
class ExecutionState:
    """An execution and its task runs while it runs."""

    execution: Execution
    task_runs: dict[str, TaskRunState] = field(default_factory=dict)
    state: State = State.CREATED
    started_at: dt.datetime = field(default_factory=utcnow)

    @property
    def id(self) -> str:
        """The execution's id."""
        return self.execution.id

    def task_run_id(self, key: str) -> str:
        """The id of the task run at `key` in this execution."""
        return derived_id(self.execution.id, key)

    def outputs_tree(self) -> dict[str, Any]:
        """Kestra's ``outputs``: ``outputs.<task>`` or, in loops, ``outputs.<task>[value]...``."""
        tree: dict[str, Any] = {}
        for run in self.task_runs.values():
            if not run.outputs:
                continue
            if not run.values:
                tree[run.task_id] = run.outputs
                continue
            node = tree.setdefault(run.task_id, {})
            for value in run.values[:-1]:
                node = node.setdefault(value, {})
            node[run.values[-1]] = run.outputs
        return tree

    @classmethod
    def from_detail(cls, detail: ExecutionDetail, loop_tasks: frozenset[str]) -> ExecutionState:
        """Rebuild from what the store recorded.

        Args:
            detail: The execution with its task runs, attempts and outputs.
            loop_tasks: Ids of the flow's looping tasks (ForEach, LoopUntil): their
                children's values are iteration values.
        """
        state = cls(execution=detail.execution, state=detail.execution.state)
        state.started_at = detail.execution.created_at
        by_id = {d.task_run.id: d for d in detail.task_runs}
        places: dict[str, tuple[str, tuple[str, ...]]] = {}

        def place(d: TaskRunDetail) -> tuple[str, tuple[str, ...]]:
            run = d.task_run
            known = places.get(run.id)
            if known is not None:
                return known
            parent = by_id.get(run.parent_task_run_id) if run.parent_task_run_id else None
            found: tuple[str, tuple[str, ...]]
            if parent is None:
                found = (child_key(None, run.task_id), ())
            else:
                parent_key, values = place(parent)
                in_loop = parent.task_run.task_id in loop_tasks and run.value is not None
                value = run.value if in_loop else None
                found = (
                    child_key(parent_key, run.task_id, value),
                    (*values, run.value) if in_loop and run.value is not None else values,
                )
            places[run.id] = found
            return found

        for d in detail.task_runs:
            run = d.task_run
            key, values = place(d)
            state.task_runs[run.id] = TaskRunState(
                id=run.id,
                key=key,
                task_id=run.task_id,
                parent_id=run.parent_task_run_id,
                values=values,
                iteration=run.iteration,
                state=run.state,
                history=list(run.state_history),
                attempts=list(d.attempts),
                outputs=dict(d.outputs or {}),
            )
        return state


def successful(states: Iterable[State]) -> State:
    """Aggregate child states: FAILED/KILLED win, then WARNING, else SUCCESS."""
    result = State.SUCCESS
    for state in states:
        if state in (State.KILLED, State.CANCELLED):
            return State.KILLED
        if state is State.FAILED:
            result = State.FAILED
        elif state is State.WARNING and result is State.SUCCESS:
            result = State.WARNING
    return result
