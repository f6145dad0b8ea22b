"""Kestra core types beyond the basics (Each*, WorkingDirectory, Echo, state store, ...).

Loops with ``value``, working directories, Echo, OutputValues, execution Labels, log
Fetch and the flow state store.

Their runtime behaviour lives in `actors` (the flowable and inline ones) or in `run`
(the state store, on the KV store).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import AliasChoices, Field

from ._errors import TaskError
from ._model import FlowableTask, Path, RunnableTask, Task, TaskRef, branch
from ._registry import register_type
from ._run_context import RunContext
from ._tasks_core import LogLevel

_K = "io.kestra.plugin.core"


class _Branch(FlowableTask):
    tasks: Annotated[list[TaskRef], Field(min_length=1)]

    def children(self) -> Iterator[tuple[Path, Task]]:
        """The nested ``tasks``."""
        return branch(("tasks",), self.tasks)


@register_type(
    "flow.WorkingDirectory",
    aliases=(f"{_K}.flow.WorkingDirectory", "io.kestra.core.tasks.flows.WorkingDirectory"),
)
class WorkingDirectory(_Branch):
    """Run tasks one after another, as Kestra's WorkingDirectory does.

    Kestra shares one local folder between its runnable tasks; here each runnable task
    still runs on its own Ray worker, so files are passed through outputs, not the folder.
    """


@register_type(
    "flow.EachSequential",
    aliases=(f"{_K}.flow.EachSequential", "io.kestra.core.tasks.flows.EachSequential"),
)
class EachSequential(_Branch):
    """Run tasks once per item of ``value`` (a list, or JSON text), one after another."""

    value: Any


@register_type(
    "flow.EachParallel",
    aliases=(f"{_K}.flow.EachParallel", "io.kestra.core.tasks.flows.EachParallel"),
)
class EachParallel(_Branch):
    """Run tasks once per item of ``value``, all at once (``concurrent`` caps it; 0 = all)."""

    value: Any
    concurrent: Annotated[int, Field(ge=0)] = 0


@register_type("debug.Echo", aliases=(f"{_K}.debug.Echo", "io.kestra.core.tasks.debugs.Echo"))
class Echo(Task):
    """Log ``format`` (rendered) at ``level``; runs inline. Kestra's deprecated core.Log."""

    format: str
    level: LogLevel = LogLevel.INFO


@register_type("output.OutputValues", aliases=(f"{_K}.output.OutputValues",))
class OutputValues(Task):
    """Render ``values`` into ``outputs.<id>.values``; runs inline."""

    values: dict[str, Any] = Field(default_factory=dict)


@register_type("execution.Labels", aliases=(f"{_K}.execution.Labels",))
class Labels(Task):
    """Add or replace labels of the running execution (a map, a key/value list or JSON)."""

    labels: dict[str, Any] | list[dict[str, Any]] | str


@register_type("log.Fetch", aliases=(f"{_K}.log.Fetch", "io.kestra.core.tasks.log.Fetch"))
class Fetch(Task):
    """Count the log lines of this execution (``tasksId`` to pick tasks, ``level`` minimum).

    Outputs ``size``; Kestra also writes them to a storage file (``uri``), which needs the
    internal storage and is not produced here.
    """

    execution_id: str | None = None
    tasks_id: list[str] = Field(default_factory=list)
    level: LogLevel = LogLevel.INFO


class _State(RunnableTask):
    """A flow's named state document, kept in the KV store under ``state.<flow>.<name>``."""

    name: str = "default"
    namespace: str | None = None
    task_run_value: bool = Field(
        default=True,
        validation_alias=AliasChoices("taskrunValue", "taskRunValue"),
        description="keep one document per loop value (Kestra's taskrunValue)",
    )

    def _key(self, ctx: RunContext) -> str:
        value = ""
        if self.task_run_value:
            taskrun = ctx.variables.get("taskrun")
            if isinstance(taskrun, dict) and taskrun.get("value") is not None:
                value = f".{taskrun['value']}"
        return f"state.{ctx.flow_id}.{self.name}{value}"

    async def _load(self, ctx: RunContext) -> tuple[bool, dict[str, Any]]:
        found, value = await ctx.kv_get(self._key(ctx), self.namespace)
        if isinstance(value, str):
            value = json.loads(value)
        return found, dict(value) if isinstance(value, dict) else {}


@register_type("state.Get", aliases=(f"{_K}.state.Get",))
class StateGet(_State):
    """Read the state document into ``outputs.<id>.data`` (empty when there is none)."""

    error_on_missing: bool = False

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Read the document."""
        found, data = await self._load(ctx)
        if not found and self.error_on_missing:
            raise TaskError(f"state '{self.name}' does not exist", retriable=False)
        return {"count": len(data), "data": data}


@register_type("state.Set", aliases=(f"{_K}.state.Set",))
class StateSet(_State):
    """Merge ``data`` into the state document."""

    data: dict[str, Any] = Field(default_factory=dict)

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Merge and store the document."""
        _, current = await self._load(ctx)
        current.update(self.data)
        await ctx.kv_set(self._key(ctx), current, namespace=self.namespace)
        return {"count": len(current)}


@register_type("state.Delete", aliases=(f"{_K}.state.Delete",))
class StateDelete(_State):
    """Delete the state document; ``deleted`` says whether it existed."""

    error_on_missing: bool = False

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Delete the document."""
        deleted = await ctx.kv_delete(self._key(ctx), self.namespace)
        if not deleted and self.error_on_missing:
            raise TaskError(f"state '{self.name}' does not exist", retriable=False)
        return {"deleted": deleted}
