"""``DELETE /api/v1/executions/by-query``: purge ended executions older than a date."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field

from ._deps import RuntimeDep
from ._models import ApiModel, ErrorBody, as_utc

router = APIRouter(prefix="/executions", tags=["executions"])


class PurgeResult(ApiModel):
    """What a purge deleted."""

    count: int = Field(description="executions deleted, with their task runs and logs")
    files: int = Field(description="files deleted from the internal storage")


_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}}


@router.delete("/by-query", responses=_ERRORS)
async def purge_executions(
    runtime: RuntimeDep,
    end_date: Annotated[
        dt.datetime, Query(alias="endDate", description="purge executions created before this")
    ],
    namespace: Annotated[str | None, Query(description="this namespace and below")] = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
) -> PurgeResult:
    """Delete ended executions created before ``endDate``: rows, task runs, logs, files.

    Running executions are left alone whatever their age.
    """
    count, files = await runtime.purge(as_utc(end_date), namespace=namespace, flow_id=flow_id)
    return PurgeResult(count=count, files=files)
