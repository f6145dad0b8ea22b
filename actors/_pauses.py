"""Tasks that wait in the execution: Pause (until resumed, or for a duration) and Sleep.

A paused task run keeps an `asyncio.Event` here until `resume` sets it; resumed, its
``onResume`` values (validated by the caller) become its outputs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from flows import (
    ExpressionError,
    InputError,
    Pause,
    PauseBehavior,
    Sleep,
    State,
    input_to_json,
    parse_duration,
    parse_inputs,
)

from ._run_port import RunPort
from ._runstate import TaskRunState
from ._scope import Scope
from ._store._records import utcnow
from ._templates import entered


class Pauses:
    """The Pause and Sleep handlers of one execution run, and what they wait for."""

    def __init__(self, port: RunPort) -> None:
        self._port = port
        self._events: dict[str, asyncio.Event] = {}
        self._inputs: dict[str, Mapping[str, Any]] = {}

    def resume(self, task_run_id: str | None, inputs: Mapping[str, Any] | None) -> bool:
        """Resume a paused task run (the first waiting one when None); False if none waits."""
        if task_run_id is None:
            waiting = [k for k, e in self._events.items() if not e.is_set()]
            if not waiting:
                return False
            task_run_id = waiting[0]
        event = self._events.get(task_run_id)
        if event is None:
            return False
        if inputs is not None:
            self._inputs[task_run_id] = dict(inputs)
        event.set()
        return True

    async def pause(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        """`flow.Pause`: wait for a resume, or for its duration (then per ``behavior``)."""
        assert isinstance(task, Pause)
        port = self._port
        journal = port.journal
        paused_at = entered(run, State.PAUSED) or utcnow()
        if entered(run, State.PAUSED) is None:
            journal.transition(run, State.PAUSED)
            journal.set_execution(State.PAUSED)
        event = self._events.setdefault(run.id, asyncio.Event())
        duration = task.duration
        if isinstance(duration, str):
            rendered = await port.templates.task_value(duration, task, run, scope, "pauseDuration")
            try:
                duration = (
                    rendered
                    if isinstance(rendered, dt.timedelta)
                    else parse_duration(str(rendered))
                )
            except ValueError as exc:
                raise ExpressionError(str(exc), task=task.id, prop="pauseDuration") from None
        wait_s = remaining(paused_at, duration or task.timeout)
        resumed = True
        try:
            if wait_s is None:
                await event.wait()
            else:
                await asyncio.wait_for(event.wait(), wait_s)
        except TimeoutError:
            resumed = False
        finally:
            self._events.pop(run.id, None)
        inputs = self._inputs.pop(run.id, None)
        if not resumed and duration is None:
            journal.log(run, "ERROR", f"pause timed out after {task.timeout}")
            return State.FAILED
        if resumed or task.behavior is PauseBehavior.RESUME:
            state = State.SUCCESS
        else:
            state = self._elapsed(task, run)
        if task.on_resume:
            journal.set_outputs(run, {"onResume": _on_resume_values(task, inputs)})
        if state is State.CANCELLED:
            return state
        journal.transition(run, State.RUNNING)
        journal.set_execution(State.RUNNING)
        if task.tasks and state is State.SUCCESS:
            return await port.run_list(task.tasks, scope.child(run))
        return state

    def _elapsed(self, task: Pause, run: TaskRunState) -> State:
        """The state `behavior` gives a pause whose duration passed (WARN, FAIL, CANCEL)."""
        message = f"no resume within {task.duration}: {task.behavior.value}"
        if task.behavior is PauseBehavior.WARN:
            self._port.journal.log(run, "WARN", message)
            return State.WARNING
        self._port.journal.log(run, "ERROR", message)
        if task.behavior is PauseBehavior.CANCEL:
            self._port.cancel()
            return State.CANCELLED
        return State.FAILED

    async def sleep(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        """`flow.Sleep`: its duration since the task run started (a resumed one sleeps less)."""
        assert isinstance(task, Sleep)
        started = entered(run, State.RUNNING) or utcnow()
        left = remaining(started, task.duration)
        if left:
            await asyncio.sleep(left)
        return State.SUCCESS


def remaining(since: dt.datetime, duration: dt.timedelta | None) -> float | None:
    """Seconds left of `duration` counted from `since`; None without a duration."""
    if duration is None:
        return None
    return max(0.0, (since + duration - utcnow()).total_seconds())


def _on_resume_values(task: Pause, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``onResume`` outputs: the values given to the resume, else the defaults."""
    if given is not None:
        return dict(given)
    try:  # no resume (the duration passed): each input's default, where it has one
        return dict(input_to_json(parse_inputs(task.on_resume, {})))
    except InputError:
        return {spec.id: input_to_json(spec.defaults) for spec in task.on_resume}
