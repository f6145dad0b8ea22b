"""Replay and restart.

Replay: a new execution linked to an old one that re-runs it from a chosen task run.
Restart: the failed task runs of a terminal execution run again, in the same execution.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from flows import NotFoundError, State

from ._large_outputs import resolve_outputs
from ._runstate import ExecutionState, derived_id
from ._scope import loop_ids
from ._store._ids import new_id
from ._store._records import ExecutionDetail, NewExecution, NewTaskRun

if TYPE_CHECKING:
    from ._service import ExecutionService


async def replay(service: ExecutionService, execution_id: str, task_run_id: str | None) -> str:
    """A new execution linked to `execution_id` that re-runs from `task_run_id`.

    Task runs that finished before the chosen one (other than its enclosing flowable
    tasks) are copied with their attempts and outputs; the rest runs again, in `service`,
    with the recorded flow revision, trigger and inputs.

    Raises:
        NotFoundError: Unknown execution or task run.
    """
    store = service.store
    detail = await store.execution_detail(execution_id)
    if detail is None:
        raise NotFoundError(f"execution {execution_id} does not exist")
    source = detail.execution
    flow = await service.flow(source.namespace, source.flow_id, source.flow_revision)
    kept = _replayed_runs(detail, task_run_id)
    old = ExecutionState.from_detail(detail, loop_ids(flow))
    await resolve_outputs(service.storage, old)
    new_id_ = new_id()
    renamed = {r.id: derived_id(new_id_, r.key) for r in old.task_runs.values()}
    new = NewExecution(
        id=new_id_,
        namespace=source.namespace,
        flow_id=source.flow_id,
        flow_revision=source.flow_revision,
        inputs=dict(source.inputs),
        trigger=source.trigger,
        labels=dict(source.labels),
        original_id=source.original_id or source.id,
        parent_id=source.parent_id,
        parent_task_run_id=source.parent_task_run_id,
        task_runs=tuple(
            NewTaskRun(
                task_id=r.task_id,
                id=renamed[r.id],
                parent_task_run_id=(
                    renamed[r.parent_task_run_id] if r.parent_task_run_id else None
                ),
                value=r.value,
                iteration=r.iteration,
                state=r.state,
            )
            for r in (d.task_run for d in kept)
        ),
    )
    result = await store.create_execution(
        new, lease_owner=service.owner, lease_ttl=service.lease_ttl
    )
    lease = result.lease
    for d in kept:
        for attempt in d.attempts:
            await store.record_attempt(new_id_, renamed[d.task_run.id], attempt, lease=lease)
        if d.outputs:
            await store.set_outputs(new_id_, renamed[d.task_run.id], d.outputs, lease=lease)
    await service.run_execution(new_id_, lease=lease, flow=flow)
    return new_id_


async def restart(service: ExecutionService, execution_id: str) -> bool:
    """Re-run the failed task runs of a terminal execution, in the same execution.

    Returns:
        False when it is not terminal, or another owner holds it.

    Raises:
        NotFoundError: Unknown execution.
    """
    found = await service.store.get_execution(execution_id)
    if found is None:
        raise NotFoundError(f"execution {execution_id} does not exist")
    if not found.state.terminal:
        return False
    if not await service.run_execution(execution_id, restart=True):
        return False
    await asyncio.sleep(0)  # the run records RUNNING as its first step ...
    await service.flushed(execution_id)  # ... and the caller sees it once it is durable
    return True


def _replayed_runs(detail: ExecutionDetail, task_run_id: str | None) -> list[Any]:
    """The task runs a replay from `task_run_id` keeps: finished ones created before it."""
    runs = list(detail.task_runs)
    if task_run_id is None:
        return []
    index = next((i for i, d in enumerate(runs) if d.task_run.id == task_run_id), None)
    if index is None:
        raise NotFoundError(f"task run {task_run_id} is not in execution {detail.execution.id}")
    by_id = {d.task_run.id: d for d in runs}
    ancestors: set[str] = set()
    parent = runs[index].task_run.parent_task_run_id
    while parent:
        ancestors.add(parent)
        parent = by_id[parent].task_run.parent_task_run_id if parent in by_id else None
    done = {State.SUCCESS, State.WARNING, State.SKIPPED}
    kept = [d for d in runs[:index] if d.task_run.id not in ancestors and d.task_run.state in done]
    kept_ids = {d.task_run.id for d in kept}
    # A kept run's parent must be kept too, or be an ancestor that runs again.
    return [
        d
        for d in kept
        if d.task_run.parent_task_run_id is None
        or d.task_run.parent_task_run_id in kept_ids
        or d.task_run.parent_task_run_id in ancestors
    ]
