"""``/api/v1/logs/{executionId}``: an execution's log lines, and a live stream of new ones."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from ._deps import RuntimeDep
from ._errors import ApiError
from ._models import ErrorBody, LogBody, log_body
from ._sse import follow_logs, sse_response

router = APIRouter(prefix="/logs", tags=["logs"])

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorBody}, 404: {"model": ErrorBody}}

MinLevel = Annotated[
    str | None, Query(alias="minLevel", description="TRACE, DEBUG, INFO, WARN or ERROR")
]


def _level(value: str | None) -> str | None:
    if value is None:
        return None
    level = value.upper()
    if level == "WARNING":
        level = "WARN"
    if level not in LEVELS:
        raise ApiError(400, f"minLevel must be one of {', '.join(LEVELS)}", "minLevel")
    return level


@router.get("/{execution_id}", responses=_ERRORS)
async def execution_logs(
    execution_id: str,
    runtime: RuntimeDep,
    min_level: MinLevel = None,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
) -> list[LogBody]:
    """Every log line of an execution, in order."""
    level = _level(min_level)
    await runtime.control.execution(execution_id)
    lines = await runtime.store.execution_logs(
        execution_id, limit=None, min_level=level, task_run_id=task_run_id
    )
    return [log_body(line) for line in lines]


@router.get(
    "/{execution_id}/follow",
    responses={
        **_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "one event per line"},
    },
)
async def follow_execution_logs(
    execution_id: str,
    request: Request,
    runtime: RuntimeDep,
    min_level: MinLevel = None,
    since: Annotated[int, Query(ge=0, le=2**63 - 1, description="send lines after this seq")] = 0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: the lines so far, then new ones, until the execution ended.

    Each event's id is the line's ``seq``; reconnecting with ``Last-Event-ID`` resumes.
    """
    level = _level(min_level)
    if last_event_id is not None and _is_seq(last_event_id.strip()):
        since = max(since, min(int(last_event_id.strip()), 2**63 - 1))
    await runtime.control.execution(execution_id)
    return sse_response(
        follow_logs(runtime.store, request, execution_id, since=since, min_level=level)
    )


def _is_seq(text: str) -> bool:
    """ASCII digits only (``'²'.isdigit()`` is true, but ``int('²')`` fails)."""
    return text.isascii() and text.isdigit()
