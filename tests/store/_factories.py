"""Small builders shared by the store tests."""

from __future__ import annotations

from typing import Any

from actors._store import NewExecution, NewTaskRun


def new_execution(
    *,
    dedupe_key: str | None = None,
    task_ids: tuple[str, ...] = (),
    namespace: str = "shop.orders",
    flow_id: str = "order-alerts",
    **fields: Any,
) -> NewExecution:
    """An execution of ``namespace/flow_id`` revision 1, with task runs for ``task_ids``."""
    return NewExecution(
        namespace=namespace,
        flow_id=flow_id,
        flow_revision=fields.pop("flow_revision", 1),
        dedupe_key=dedupe_key,
        task_runs=tuple(NewTaskRun(task_id=task_id) for task_id in task_ids),
        **fields,
    )
