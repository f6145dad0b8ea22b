"""``/api/v1/deadletters``: messages that could not become executions, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ._deps import RuntimeDep
from ._models import DeadLetterPage, dead_letter_body
from ._redrive import with_redrives

router = APIRouter(prefix="/deadletters", tags=["dead letters"])


@router.get("")
async def list_dead_letters(
    runtime: RuntimeDep,
    namespace: Annotated[str | None, Query()] = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    source: Annotated[str | None, Query(description="e.g. kafka:orders/3@1234")] = None,
    size: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLetterPage:
    """The newest dead letters (payload as base64, with a UTF-8 preview)."""
    letters = await runtime.store.list_dead_letters(
        source=source, namespace=namespace, flow_id=flow_id, limit=size
    )
    bodies = await with_redrives(runtime, [dead_letter_body(d) for d in letters])
    return DeadLetterPage(results=bodies, total=len(letters))
