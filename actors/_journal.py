"""What an execution run records: task runs, transitions, outputs, logs, labels, its own state.

Everything goes to the `Recorder` in order, masked: the engine's secrets (``secret()``)
and this execution's SECRET inputs never reach the store in clear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from flows import ExpressionEngine, SecretMask, State, Task

from ._large_outputs import store_if_large
from ._run_port import Recorder
from ._runstate import ExecutionState, TaskRunState, child_key
from ._scope import Scope
from ._storage import StorageConfig
from ._store._records import Attempt, LogLine, StateEntry, utcnow


class RunJournal:
    """The write side of one execution run.

    Args:
        state: The execution and its task runs (updated in place).
        recorder: Where changes go.
        engine: The process's expression engine (its secrets are masked).
        secret_inputs: This execution's SECRET input values (masked here only: the engine
            is shared by every execution of the process and would keep them forever).
    """

    def __init__(
        self,
        state: ExecutionState,
        recorder: Recorder,
        engine: ExpressionEngine,
        secret_inputs: list[str],
    ) -> None:
        self.state = state
        self.recorder = recorder
        self._engine = engine
        self._secrets = SecretMask(secret_inputs)
        self.logs: list[tuple[str | None, str, str]] = []  # (task id, level, message)
        self._by_key: dict[str, TaskRunState] = {}
        # Every history stays in order even if the wall clock steps back: a new entry is
        # never dated before the one it follows.
        history = state.execution.state_history
        self._execution_at = history[-1].date if history else state.execution.created_at

    def mask(self, text: str) -> str:
        """`text` with the engine's secrets and this execution's secret inputs masked."""
        text = self._engine.mask(text)
        return self._secrets.mask(text) if self._secrets else text

    def mask_value(self, value: Any) -> Any:
        """`mask` every string in a value."""
        value = self._engine.mask_value(value)
        return self._secrets.mask_value(value) if self._secrets else value

    async def flush(self) -> None:
        """Wait until every change recorded so far is durable."""
        await self.recorder.flush()

    def set_execution(self, state: State, outputs: Mapping[str, Any] | None = None) -> None:
        """The execution enters `state` (with its flow outputs when it ends)."""
        now = self._execution_at = max(utcnow(), self._execution_at)
        self.state.state = state
        self.recorder.execution_state(state, now, self.mask_value(outputs) if outputs else outputs)

    def task_run(self, task: Task, scope: Scope) -> tuple[TaskRunState, bool]:
        """The task run of `task` in `scope`: found (recovery) or new. True when new."""
        key = child_key(scope.parent.key if scope.parent else None, task.id, scope.value_here)
        found = self._by_key.get(key)
        if found is None:
            run_id = self.state.task_run_id(key)
            found = self.state.task_runs.get(run_id)
        if found is not None:
            found.key = key
            self._by_key[key] = found
            return found, False
        run = TaskRunState(
            id=self.state.task_run_id(key),
            key=key,
            task_id=task.id,
            parent_id=scope.parent.id if scope.parent else None,
            values=scope.values,
            iteration=scope.iteration,
            history=[StateEntry(State.CREATED, utcnow())],  # dated now, not when written
        )
        self.state.task_runs[run.id] = run
        self._by_key[key] = run
        self.recorder.task_run_created(run)
        return run, True

    def transition(self, run: TaskRunState, state: State) -> None:
        """`run` enters `state` (nothing when it is there already)."""
        if run.state is state and run.history:
            return
        now = utcnow()
        if run.history and now < run.history[-1].date:
            now = run.history[-1].date
        run.state = state
        run.history.append(StateEntry(state, now))
        self.recorder.task_run_state(run, state, now)

    def attempt(self, run: TaskRunState, attempt: Attempt, *, replace: bool = False) -> None:
        """Record an attempt: a new one, or (`replace`) the end of the last one."""
        if replace:
            run.attempts[-1] = attempt
        else:
            run.attempts.append(attempt)
        self.recorder.attempt(run, attempt)

    def closed_attempt(self, run: TaskRunState, index: int, attempt: Attempt) -> None:
        """Record attempt `index` of `run`, closed after the fact (a dead owner's)."""
        run.attempts[index] = attempt
        self.recorder.attempt(run, attempt)

    def set_outputs(self, run: TaskRunState, outputs: Mapping[str, Any]) -> None:
        """A flowable task's outputs (kept in the store as they are)."""
        masked = self.mask_value(dict(outputs))
        run.outputs = dict(masked)
        self.recorder.outputs(run, masked)

    async def set_task_outputs(
        self,
        task: Task,
        run: TaskRunState,
        outputs: Mapping[str, Any],
        storage: StorageConfig | None,
    ) -> None:
        """A task's outputs; large ones go to storage and the store keeps a reference."""
        if not outputs:
            self.set_outputs(run, outputs)
            return
        masked = dict(self.mask_value(dict(outputs)))
        config = storage or StorageConfig.local()
        reference = await store_if_large(config, self.state, task.id, run.id, masked)
        run.outputs = masked
        self.recorder.outputs(run, masked if reference is None else reference)

    def log(
        self,
        run: TaskRunState | None,
        level: str,
        message: str,
        attempt: int | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        """A log line of the execution (`run` None) or of a task run."""
        self.logs.append((run.task_id if run else None, level, message))
        line = LogLine(
            execution_id=self.state.id,
            message=self.mask(message),
            level=level,
            task_run_id=run.id if run else None,
            attempt=attempt,
        )
        self.recorder.log(line if at is None else dataclasses.replace(line, at=at))

    def add_labels(self, labels: Mapping[str, str]) -> None:
        """Merge labels into the execution's."""
        self.state.execution.labels.update(labels)
        self.recorder.labels(labels)
