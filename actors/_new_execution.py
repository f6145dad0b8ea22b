"""New executions: the row of one (inputs validated, files stored), and retries as new ones."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flows import Flow, input_to_json, parse_inputs

from ._input_files import check_file_inputs, needs_storing, store_input_files
from ._storage import StorageConfig, open_storage
from ._store._ids import new_id
from ._store._records import Execution, NewExecution


async def new_execution(
    flow: Flow,
    raw_inputs: Mapping[str, Any] | None,
    storage: StorageConfig,
    *,
    trigger: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    dedupe_key: str | None,
    parent: tuple[str, str] | None,
    execution_id: str | None,
) -> NewExecution:
    """A new execution of a saved flow (see `ExecutionService.create` for the arguments).

    FILE inputs given as bytes or local files are written to the internal storage first;
    the execution keeps their URIs (it gets its id here then).

    Raises:
        InputError: Inputs are invalid.
    """
    assert flow.revision is not None
    inputs = parse_inputs(flow, raw_inputs or {})
    if execution_id is None and needs_storing(flow, inputs):
        execution_id = new_id()
    if parent is None:
        check_file_inputs(flow, inputs)  # subflows may pass their parent's files
    if execution_id is not None:
        inputs = await store_input_files(open_storage(storage), flow, inputs, execution_id)
    new = NewExecution(
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision,
        inputs={k: input_to_json(v) for k, v in inputs.items()},
        trigger=dict(trigger) if trigger is not None else None,
        labels={**flow.label_dict(), **(labels or {})},
        dedupe_key=dedupe_key,
        parent_id=parent[0] if parent else None,
        parent_task_run_id=parent[1] if parent else None,
    )
    if execution_id is not None:
        new = dataclasses.replace(new, id=execution_id)
    return new


class RetriesLater:
    """Retry ``behavior: CREATE_NEW_EXECUTION``: the same run again, as a new execution.

    Args:
        create: `ExecutionService.create`.
    """

    def __init__(self, create: Callable[..., Awaitable[Any]]) -> None:
        self._create = create
        self._tasks: set[asyncio.Task[None]] = set()

    def starter(self, flow: Flow, execution: Execution) -> Callable[[float, dict[str, str]], None]:
        """What a run calls (`RunOptions.new_execution`) to start its retry after a delay."""

        def start(delay: float, labels: dict[str, str]) -> None:
            async def later() -> None:
                await asyncio.sleep(delay)
                await self._create(
                    flow,
                    execution.inputs,
                    trigger=execution.trigger,
                    labels={**execution.labels, **labels},
                    dedupe_key=f"retry:{execution.id}",
                )

            task = asyncio.create_task(later(), name=f"retry-{execution.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return start

    async def cancel(self) -> None:
        """Cancel the retries still waiting (the service stops)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
