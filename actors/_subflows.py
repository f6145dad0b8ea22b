"""Child executions of `flow.Subflow` and `flow.ForEachItem`, started by the execution service."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flows import ExpressionEngine, Flow, InputError, State, StoreError, Subflow, build_context

from ._run_port import RunPort
from ._runstate import ExecutionState, TaskRunState
from ._scope import loop_ids
from ._templates import render_value

if TYPE_CHECKING:
    from ._service import ExecutionService


class Subflows:
    """The `SubflowLauncher` an `ExecutionService` gives the runs it starts.

    Args:
        service: Creates, runs and waits for the children.
        engine: Renders a Subflow's ``outputs`` in the ended child's context.
    """

    def __init__(self, service: ExecutionService, engine: ExpressionEngine) -> None:
        self._service = service
        self._engine = engine

    async def launch(
        self,
        parent: RunPort,
        run: TaskRunState,
        task: Subflow,
        inputs: dict[str, Any],
        *,
        key: str | None = None,
    ) -> tuple[str, State, dict[str, Any]]:
        """Create (or find, when resumed) the child execution of a Subflow task run.

        `key` tells apart the children of one task run (``ForEachItem`` batches).
        """
        service = self._service
        flow = await service.flow(task.namespace, task.flow_id, task.revision)
        labels = {**(parent.state.execution.labels if task.inherit_labels else {}), **task.labels}
        # Kestra's correlation id: every execution of a subflow chain carries the root's id.
        root = parent.state.execution
        labels["system.correlationId"] = root.labels.get("system.correlationId", root.id)
        try:
            result = await service.create(
                flow,
                inputs,
                labels=labels,
                dedupe_key=f"subflow:{run.id}" + (f":{key}" if key is not None else ""),
                parent=(parent.id, run.id),
            )
        except InputError as exc:
            raise StoreError(f"subflow {task.namespace}.{task.flow_id}: {exc}") from exc
        child = result.execution
        if not result.created and not child.state.terminal and not service.runs_here(child.id):
            await service.run_execution(child.id)
        if not task.wait:
            return child.id, child.state, {}
        try:
            summary = await service.wait(child.id)
        except asyncio.CancelledError:
            service.kill(child.id)
            raise
        ended = await service.store.get_execution(child.id)
        outputs = dict(ended.outputs or {}) if ended else {}
        if task.outputs:
            outputs.update(await self._outputs(flow, child.id, task))
        return child.id, summary.state, outputs

    async def _outputs(self, flow: Flow, child_id: str, task: Subflow) -> dict[str, Any]:
        """A Subflow's ``outputs``, rendered in the ended child execution's context."""
        detail = await self._service.store.execution_detail(child_id)
        if detail is None:
            return {}
        state = ExecutionState.from_detail(detail, loop_ids(flow))
        context = build_context(
            flow=flow,
            execution={"id": child_id, "state": detail.execution.state.value},
            inputs=detail.execution.inputs,
            outputs=state.outputs_tree(),
            envs={},
        )
        rendered = await render_value(
            self._engine, task.outputs, context, task=task.id, prop="outputs"
        )
        return dict(rendered)
