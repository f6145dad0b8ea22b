"""``PUT /api/v1/triggers/{namespace}/{flowId}/{triggerId}``: switch a trigger off or on.

Kestra's shape: the body is ``{"disabled": true}`` (or false). A disabled trigger's
listener stops (a webhook answers 404), the choice is kept in Postgres so it outlives
restarts, and ``GET /api/v1/triggers`` lists the trigger as ``STOPPED``, ``disabled``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import ConfigDict

from ._deps import RuntimeDep
from ._models import ApiModel, ErrorBody, TriggerBody, trigger_body

router = APIRouter(prefix="/triggers", tags=["triggers"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": 'The body is not `{"disabled": bool}`.'},
    404: {"model": ErrorBody, "description": "No such flow or trigger."},
    409: {"model": ErrorBody, "description": "The flow's source disables the trigger."},
}


class TriggerUpdate(ApiModel):
    """What ``PUT /triggers/{namespace}/{flowId}/{triggerId}`` changes."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool


@router.put("/{namespace}/{flow_id}/{trigger_id}", responses=_ERRORS)
async def update_trigger(
    namespace: str, flow_id: str, trigger_id: str, body: TriggerUpdate, runtime: RuntimeDep
) -> TriggerBody:
    """Disable a trigger (its listener stops) or enable it again (it starts)."""
    info = await runtime.trigger_view.set_disabled(namespace, flow_id, trigger_id, body.disabled)
    return trigger_body(info)
