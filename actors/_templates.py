"""Templates of one execution run: the expression context, and rendering in it.

The context is Kestra's (``flow``, ``execution``, ``inputs``, ``outputs``, ``labels``,
``trigger``, ``taskrun``, ``parent(s)``, ``envs``, ``globals``), built afresh for each task
from the run's state. SECRET inputs enter it as opaque `SecretValue`s.

Where a template renders. The process that runs an execution serves other work on the
same event loop (the gateway's API and webhooks, a listener host's triggers), and a
template with a loop may take up to the render time budget (`KESTREL_RENDER_TIMEOUT_S`,
2 s by default). So only templates whose cost is linear in their data
(`ExpressionEngine.is_linear`: lookups, literals, comparisons, a short list of linear
filters such as ``tojson``) render inline; every other one (statements, calls, other
filters) renders on a small dedicated thread pool (`KESTREL_RENDER_THREADS`, 4 by
default), under the same budgets (they are per render and per thread). The event loop
keeps running meanwhile: a Python thread that computes gives the GIL up every switch
interval (5 ms).

Why not every template on the threads: measured on the 2-core development machine with
`benchmarks/render_path.py` (a runnable task with four templated properties, ``| tojson``
among them, context built each time; medians of 10,000, load average 3 to 8 from other
work, so figures moved by ~30 %), inline rendering took 125-190 us per task, the
is-linear check added ~6 us (cached per template), and sending the same render to a
thread took 250-340 us: the executor hop and the GIL hand-over cost more than the
render itself. Linear templates cannot loop, so they stay inline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flows import (
    ERROR_LOGS,
    KV_LOOKUP,
    ExpressionEngine,
    Flow,
    InputType,
    SecretValue,
    State,
    Task,
    WaitFor,
    build_context,
    contains_template,
    walk_tasks,
)

from ._run_port import RunOptions
from ._runstate import ExecutionState, TaskRunState
from ._scope import Scope
from ._store._records import utcnow

_KV_CALL = re.compile(r"""kv\(\s*[^,)]+(?:,\s*\\?['"]([\w.-]+)\\?['"])?""")


class Templates:
    """The context and the renders of one execution run.

    Args:
        flow: The flow revision the execution runs.
        state: The execution and its task runs (read for every context).
        engine: The process's expression engine.
        options: The run's options (envs, globals, KV snapshot).
        logs: The run's log lines so far, for ``errorLogs()``.
    """

    def __init__(
        self,
        flow: Flow,
        state: ExecutionState,
        engine: ExpressionEngine,
        options: RunOptions,
        logs: list[tuple[str | None, str, str]],
    ) -> None:
        self.flow = flow
        self.state = state
        self.engine = engine
        self._options = options
        self._logs = logs
        self._task_types: dict[str, str] = flow.derived("task_types", _task_types)
        self._waitfor_children: frozenset[str] = flow.derived("waitfor", _waitfor_children)
        self._kv_namespaces = (
            flow.derived("kv_namespaces", _kv_namespaces) if options.kv_snapshot else ()
        )
        self._kv: dict[str, dict[str, Any]] = {}

    # ---- the context ----

    def context(self, run: TaskRunState | None, scope: Scope) -> dict[str, Any]:
        """The expression context of `run` (of the execution when None) in `scope`."""
        execution = self.state.execution
        taskrun = None
        if run is not None:
            started = entered(run, State.RUNNING)
            taskrun = {
                "id": run.id,
                "taskId": run.task_id,
                "value": run.value,
                "iteration": run.iteration,
                "attemptsCount": sum(1 for a in run.attempts if a.state.terminal),
                "startDate": started or utcnow(),
                "parentId": run.parent_id,
            }
        labels = {**self.flow.label_dict(), **execution.labels}
        system = {"correlationId": execution.labels.get("system.correlationId", execution.id)}
        context = build_context(
            flow={
                "id": self.flow.id,
                "namespace": self.flow.namespace,
                "revision": execution.flow_revision,
                "variables": self.flow.variables,
                "labels": self.flow.label_dict(),
            },
            execution={
                "id": execution.id,
                "startDate": execution.created_at,
                "state": self.state.state.value,
                "originalId": execution.original_id or execution.id,
            },
            inputs=_opaque_secrets(self.flow, execution.inputs),
            outputs=self._outputs(),
            labels={**labels, "system": system},
            trigger=execution.trigger,
            taskrun=taskrun,
            parent=scope.parents[-1] if scope.parents else None,
            envs=self._options.envs,
        )
        if taskrun is not None:
            context["taskrun"].update(taskrun)
            context["task"] = {
                "id": run.task_id if run else None,
                "type": self._task_types.get(run.task_id if run else "", None),
            }
        context["parents"] = list(reversed(scope.parents))
        context["globals"] = dict(self._options.globals or {})
        context[ERROR_LOGS] = self._error_logs
        if self._kv_namespaces:
            context[KV_LOOKUP] = self._kv_lookup
        return context

    async def refresh_kv(self) -> None:
        """Read the KV namespaces the flow's ``kv()`` calls name (see `RunOptions`)."""
        if not self._kv_namespaces:
            return
        assert self._options.kv_snapshot is not None
        for namespace in self._kv_namespaces:
            self._kv[namespace] = await self._options.kv_snapshot(namespace)

    def _kv_lookup(self, key: str, namespace: str | None) -> Any:
        return self._kv.get(namespace or self.flow.namespace, {}).get(key)

    def _outputs(self) -> dict[str, Any]:
        """Kestra's ``outputs``; a WaitFor child's are those of its last iteration."""
        tree = self.state.outputs_tree()
        for task_id in self._waitfor_children & tree.keys():
            node = tree[task_id]
            if isinstance(node, dict) and node and all(str(k).isdigit() for k in node):
                tree[task_id] = node[max(node, key=int)]
        return tree

    def _error_logs(self) -> list[dict[str, Any]]:
        return [
            {"taskId": task_id, "level": level, "message": message}
            for task_id, level, message in self._logs
            if level == "ERROR"
        ]

    # ---- rendering ----

    async def render(
        self, template: str, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> str:
        """`ExpressionEngine.render`, off the event loop unless the template is linear."""
        engine = self.engine
        if engine.is_linear(template):
            return engine.render(template, context, task=task, prop=prop)
        return await off_loop(engine.render, template, context, task=task, prop=prop)

    async def render_value(
        self, value: Any, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> Any:
        """`ExpressionEngine.render_value`, off the event loop unless every template is linear."""
        return await render_value(self.engine, value, context, task=task, prop=prop)

    async def condition(
        self, expression: str | bool, context: Mapping[str, Any], *, task: str = "", prop: str = ""
    ) -> bool:
        """`ExpressionEngine.evaluate_condition`; a YAML boolean is itself."""
        if isinstance(expression, bool):
            return expression
        engine = self.engine
        if engine.is_linear(expression):
            return engine.evaluate_condition(expression, context, task=task, prop=prop)
        return await off_loop(engine.evaluate_condition, expression, context, task=task, prop=prop)

    async def task_condition(
        self, expression: str | bool, task: Task, run: TaskRunState, scope: Scope, prop: str
    ) -> bool:
        """A condition of `task` in `run`'s context."""
        if isinstance(expression, bool):
            return expression
        return await self.condition(expression, self.context(run, scope), task=task.id, prop=prop)

    async def task_value(
        self, value: Any, task: Task, run: TaskRunState, scope: Scope, prop: str
    ) -> Any:
        """A property of `task` rendered in `run`'s context."""
        return await self.render_value(value, self.context(run, scope), task=task.id, prop=prop)

    async def rendered_task(self, task: Task, context: Mapping[str, Any]) -> Task:
        """A copy of `task` with every property rendered (nested tasks excluded).

        A task without templates is used as it is: no copy, no validation.
        """
        raw = task.model_dump(
            by_alias=True, exclude_none=True, exclude={"id", "type", "retry", "timeout", "run_if"}
        )
        if not contains_template(raw):
            return task
        rendered = await self.render_value(raw, context, task=task.id)
        data = {**task.model_dump(by_alias=True, exclude_none=True), **rendered}
        return type(task).model_validate(data)


_T = TypeVar("_T")
_RENDER_THREADS = max(1, int(os.environ.get("KESTREL_RENDER_THREADS", "4") or 4))
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _render_pool() -> ThreadPoolExecutor:
    """The process's render threads, started on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_RENDER_THREADS, thread_name_prefix="kestrel-render")
        return _pool


async def off_loop(func: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run a render on the render threads; the caller's event loop keeps serving.

    A cancelled caller stops waiting at once; the render itself ends by the time budget.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_render_pool(), functools.partial(func, *args, **kwargs))


async def render_value(
    engine: ExpressionEngine,
    value: Any,
    context: Mapping[str, Any],
    *,
    task: str = "",
    prop: str = "",
) -> Any:
    """`ExpressionEngine.render_value`, off the event loop unless every template is linear."""
    if engine.is_linear(value):
        return engine.render_value(value, context, task=task, prop=prop)
    return await off_loop(engine.render_value, value, context, task=task, prop=prop)


def data_only(context: dict[str, Any]) -> dict[str, Any]:
    """The context without the runtime's hooks (``__errorLogs``, ``__kv``): what a worker gets."""
    return {k: v for k, v in context.items() if not k.startswith("__")}


def entered(run: TaskRunState, state: State) -> dt.datetime | None:
    """When `run` last entered `state` in this run of it, if it did."""
    for entry in reversed(run.history):
        if entry.state is state:
            return entry.date
    return None


def secret_inputs(flow: Flow, inputs: Mapping[str, Any]) -> list[str]:
    """The values of the execution's SECRET inputs."""
    return [
        str(inputs[i.id]) for i in flow.inputs if i.type is InputType.SECRET and inputs.get(i.id)
    ]


def _opaque_secrets(flow: Flow, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The inputs for templates: SECRET ones as `SecretValue` (the sandbox forbids transforms)."""
    secret = [i.id for i in flow.inputs if i.type is InputType.SECRET]
    if not secret or not inputs:
        return inputs
    return {
        k: SecretValue(v) if k in secret and isinstance(v, str) else v for k, v in inputs.items()
    }


def _task_types(flow: Flow) -> dict[str, str]:
    return {t.id: t.type for _, t in walk_tasks(flow)}


def _waitfor_children(flow: Flow) -> frozenset[str]:
    return frozenset(
        c.id for _, t in walk_tasks(flow) if isinstance(t, WaitFor) for _, c in t.children()
    )


def _kv_namespaces(flow: Flow) -> tuple[str, ...]:
    """Namespaces a flow's ``kv(...)`` calls read: its own, and any named literally."""
    text = flow.model_dump_json()
    found = [m.group(1) for m in _KV_CALL.finditer(text)]
    if not found:
        return ()
    return tuple(dict.fromkeys([flow.namespace, *(n for n in found if n)]))
