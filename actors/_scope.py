"""Where a task runs inside an execution: its parent task run and the enclosing loop iterations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flows import EachParallel, EachSequential, Flow, ForEach, LoopUntil, Task, walk_tasks

from ._runstate import TaskRunState

LOOP_TYPES: tuple[type[Task], ...] = (ForEach, LoopUntil, EachSequential, EachParallel)
"""Tasks whose children run once per iteration (their task-run keys carry the value)."""


def loop_ids(flow: Flow) -> frozenset[str]:
    """Ids of the flow's looping tasks (see `ExecutionState.from_detail`)."""
    return frozenset(t.id for _, t in walk_tasks(flow) if isinstance(t, LOOP_TYPES))


@dataclass
class Scope:
    """Where a task runs: its parent task run and the enclosing loop iterations."""

    parent: TaskRunState | None = None
    values: tuple[str, ...] = ()
    iteration: int | None = None
    value_here: str | None = None  # set only for the direct children of a loop iteration
    parents: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def child(self, run: TaskRunState) -> Scope:
        """The scope of `run`'s children (same iteration)."""
        return Scope(parent=run, values=self.values, iteration=self.iteration, parents=self.parents)

    def iteration_of(self, run: TaskRunState, value: str, index: int) -> Scope:
        """The scope of the children of `run`'s iteration `index` over `value`."""
        parent_taskrun = {"taskrun": {"id": run.id, "value": run.value, "iteration": run.iteration}}
        if self.parents:
            parent_taskrun["parent"] = self.parents[-1]
        return Scope(
            parent=run,
            values=(*self.values, value),
            iteration=index,
            value_here=value,
            parents=(*self.parents, parent_taskrun),
        )
