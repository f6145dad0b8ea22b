"""``GET /api/v1/triggers``: the status of every deployed trigger.

Switching one off or on is in `_trigger_controls`, backfills in `_backfill_jobs`.
"""

from __future__ import annotations

from fastapi import APIRouter

from ._deps import RuntimeDep
from ._models import TriggerPage, trigger_body

router = APIRouter(prefix="/triggers", tags=["triggers"])


@router.get("")
async def list_triggers(runtime: RuntimeDep) -> TriggerPage:
    """Every deployed trigger listener: status, last error, last event and counters."""
    infos = sorted(
        await runtime.trigger_view.triggers(), key=lambda i: (i.namespace, i.flow_id, i.trigger_id)
    )
    return TriggerPage(results=[trigger_body(i) for i in infos], total=len(infos))
