"""Flowable tasks that shape the run: Sequential, Parallel, If, Switch, ForEach, Dag, ...

The others: LoopUntil/WaitFor, Subflow and Fail.

Each handler gets the task, its task run and its scope, and returns the task run's state;
it sees the execution only through its `RunPort`. `Pauses` (Pause, Sleep) and
`run_foreach_item` are the other handlers; `Flowables.handlers` maps every flowable type to
its handler.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from flows import (
    AllowFailure,
    Dag,
    EachParallel,
    EachSequential,
    ExpressionError,
    Fail,
    ForEach,
    ForEachItem,
    If,
    LoopUntil,
    NotFoundError,
    Parallel,
    Pause,
    Sequential,
    Sleep,
    State,
    Subflow,
    Switch,
    Task,
    TaskError,
    WaitFor,
    WorkingDirectory,
)

from ._attempts import FlowableHandler
from ._foreach_item import run_foreach_item
from ._inline_tasks import text
from ._pauses import Pauses
from ._run_port import RunPort
from ._runstate import TaskRunState, successful
from ._scope import Scope
from ._store._records import utcnow
from ._templates import entered

_DONE = frozenset({State.SUCCESS, State.WARNING, State.SKIPPED})


class Flowables:
    """The flowable-task handlers of one execution run."""

    def __init__(self, port: RunPort, pauses: Pauses) -> None:
        self._port = port
        self.handlers: dict[type[Task], FlowableHandler] = {
            Sequential: self._sequential,
            AllowFailure: self._sequential,
            WorkingDirectory: self._sequential,
            Parallel: self._parallel,
            If: self._if,
            Switch: self._switch,
            ForEach: self._foreach,
            EachSequential: self._foreach,
            EachParallel: self._foreach,
            Dag: self._dag,
            Subflow: self._subflow,
            Pause: pauses.pause,
            Sleep: pauses.sleep,
            LoopUntil: self._loop_until,
            WaitFor: self._loop_until,
            Fail: self._fail,
            ForEachItem: functools.partial(run_foreach_item, port),
        }

    async def _sequential(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Sequential | AllowFailure | WorkingDirectory)
        state = await self._port.run_list(task.tasks, scope.child(run))
        if isinstance(task, AllowFailure) and state is State.FAILED:
            return State.WARNING
        return state

    async def _parallel(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Parallel)
        inner = scope.child(run)
        jobs = [_bind(self._port.run_task, t, inner) for t in task.tasks if not t.disabled]
        return await self._port.run_concurrently(jobs, task.concurrent)

    async def _if(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, If)
        held = await self._port.templates.task_condition(
            task.condition, task, run, scope, "condition"
        )
        return await self._port.run_list(task.then if held else task.else_, scope.child(run))

    async def _switch(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Switch)
        templates = self._port.templates
        value = (
            await templates.render(
                str(task.value), templates.context(run, scope), task=task.id, prop="value"
            )
            if isinstance(task.value, str)
            else text(task.value)
        )
        branch = task.cases.get(value)
        self._port.journal.set_outputs(run, {"value": value, "defaults": branch is None})
        return await self._port.run_list(
            branch if branch is not None else task.defaults, scope.child(run)
        )

    async def _foreach(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, ForEach | EachSequential | EachParallel)
        source = task.values if isinstance(task, ForEach) else task.value
        values = await self._port.templates.task_value(source, task, run, scope, "values")
        if values is None or values == "":
            raise ExpressionError("values rendered to null", task=task.id, prop="values")
        if isinstance(values, str):
            values = _json_list(values, task.id)
        if not isinstance(values, list):
            raise ExpressionError(
                f"values must be a list, got {type(values).__name__}", task=task.id, prop="values"
            )
        if any(v is None for v in values):
            raise ExpressionError("values holds a null item", task=task.id, prop="values")
        jobs = [
            _bind(self._port.run_list, task.tasks, scope.iteration_of(run, text(v), i))
            for i, v in enumerate(values)
        ]
        if isinstance(task, EachParallel):
            return await self._port.run_concurrently(jobs, task.concurrent)
        limit = task.concurrency_limit if isinstance(task, ForEach) else 1
        return await self._port.run_concurrently(jobs, limit)

    async def _dag(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Dag)
        inner = scope.child(run)
        nodes = {n.task.id: n for n in task.tasks}
        results: dict[str, State] = {}
        running: dict[str, asyncio.Task[State]] = {}
        limit = task.concurrent or len(nodes)
        failed = False
        try:
            while len(results) < len(nodes):
                for node_id, node in nodes.items():
                    if node_id in results or node_id in running or failed or len(running) >= limit:
                        continue
                    if all(results.get(d) in _DONE for d in node.depends_on):
                        started = self._port.run_task(node.task, inner)
                        running[node_id] = asyncio.ensure_future(started)
                if not running:
                    break  # the rest waits on a failed dependency
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for node_id in [k for k, v in running.items() if v in done]:
                    results[node_id] = running.pop(node_id).result()
                    failed = failed or results[node_id] in (State.FAILED, State.KILLED)
        finally:
            for pending in running.values():
                pending.cancel()
        return successful(results.values())

    async def _subflow(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Subflow)
        port = self._port
        if port.subflows is None:
            raise TaskError("flow.Subflow needs a subflow launcher", retriable=False)
        inputs = await port.templates.task_value(task.inputs, task, run, scope, "inputs")
        names = await port.templates.task_value(
            {"namespace": task.namespace, "flowId": task.flow_id}, task, run, scope, "flowId"
        )
        if (names["namespace"], names["flowId"]) != (task.namespace, task.flow_id):
            task = task.model_copy(
                update={"namespace": str(names["namespace"]), "flow_id": str(names["flowId"])}
            )
        try:
            launched = await port.subflows.launch(port, run, task, inputs)
        except (NotFoundError, TaskError) as exc:
            port.journal.log(run, "ERROR", f"subflow {task.namespace}.{task.flow_id}: {exc}")
            return State.FAILED
        child_id, child_state, child_outputs = launched
        port.journal.set_outputs(
            run, {"executionId": child_id, "state": child_state.value, "outputs": child_outputs}
        )
        if not task.wait:
            return State.SUCCESS
        if child_state is State.FAILED or child_state is State.KILLED:
            return State.FAILED if task.transmit_failed else State.WARNING
        return State.WARNING if child_state is State.WARNING else State.SUCCESS

    async def _loop_until(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, LoopUntil | WaitFor)
        port = self._port
        check = task.check_frequency
        interval = check.interval.total_seconds() if check.interval else 1.0
        max_iterations = check.max_iterations or 100
        started = entered(run, State.RUNNING) or utcnow()
        for index in range(max_iterations):
            port.journal.set_outputs(run, {"iterationCount": index + 1})
            state = await port.run_list(task.tasks, scope.iteration_of(run, str(index), index))
            if state in (State.FAILED, State.KILLED):
                return state
            if await port.templates.task_condition(task.condition, task, run, scope, "condition"):
                return State.SUCCESS
            if check.max_duration and utcnow() - started >= check.max_duration:
                break
            await asyncio.sleep(interval)
        port.journal.log(
            run,
            "WARN" if not task.fail_on_max_reached else "ERROR",
            f"'{task.id}' reached its limit before its condition held",
        )
        if task.fail_on_max_reached:
            return State.FAILED
        return State.SUCCESS if isinstance(task, WaitFor) else State.WARNING  # Kestra's rules

    async def _fail(self, task: Any, run: TaskRunState, scope: Scope) -> State:
        assert isinstance(task, Fail)
        templates = self._port.templates
        if task.condition is None or await templates.task_condition(
            task.condition, task, run, scope, "condition"
        ):
            message = await templates.render(
                task.error_message, templates.context(run, scope), task=task.id, prop="errorMessage"
            )
            self._port.journal.log(run, "ERROR", message)
            return State.FAILED
        return State.SUCCESS


def _bind(
    func: Callable[[Any, Scope], Awaitable[State]], first: Any, scope: Scope
) -> Callable[[], Awaitable[State]]:
    return lambda: func(first, scope)


def _json_list(raw: str, task_id: str) -> list[Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ExpressionError(
            f"values must render to a list, got {raw!r}", task=task_id, prop="values"
        ) from None
    if not isinstance(value, list):
        raise ExpressionError(
            f"values must render to a list, got {raw!r}", task=task_id, prop="values"
        )
    return value
