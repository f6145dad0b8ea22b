"""``/api/v1/triggers``: the status of every deployed trigger, and schedule backfills."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ._deps import RuntimeDep
from ._errors import ApiError
from ._models import (
    BackfillBody,
    BackfillRequest,
    ErrorBody,
    TriggerPage,
    as_utc,
    trigger_body,
)

router = APIRouter(prefix="/triggers", tags=["triggers"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}


@router.get("")
async def list_triggers(runtime: RuntimeDep) -> TriggerPage:
    """Every deployed trigger listener: status, last error, last event and counters."""
    infos = sorted(await runtime.triggers(), key=lambda i: (i.namespace, i.flow_id, i.trigger_id))
    return TriggerPage(results=[trigger_body(i) for i in infos], total=len(infos))


@router.put("/backfill", responses=_ERRORS)
async def backfill(body: BackfillRequest, runtime: RuntimeDep) -> BackfillBody:
    """Create the executions of a Schedule trigger's ticks in ``[start, end)`` (end: now)."""
    start = as_utc(body.start)
    end = None if body.end is None else as_utc(body.end)
    if end is not None and end <= start:
        raise ApiError(400, "end must be after start", "end")
    ids = await runtime.backfill(
        body.namespace, body.flow_id, body.trigger_id, start, end, body.inputs
    )
    return BackfillBody(executions=ids)
