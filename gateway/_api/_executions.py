"""``/api/v1/executions``: create, read, search, follow, replay, restart, kill, resume."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from flows import Flow, InputError, InputType, NotFoundError, State

from .._runtime import Runtime, new_execution_id
from ._bodies import media_type, parse_labels, read_inputs
from ._deps import RuntimeDep, SettingsDep
from ._errors import ApiError
from ._files import read_upload_inputs
from ._models import (
    ErrorBody,
    ExecutionBody,
    ExecutionPage,
    as_utc,
    detail_body,
    execution_body,
)
from ._secret_inputs import masked, masked_detail
from ._sse import follow_execution, sse_response

router = APIRouter(prefix="/executions", tags=["executions"])

WAIT_SECONDS = 600.0
"""The longest ``wait=true`` holds a request; the execution is returned as it is then."""

RESTART_SETTLE_SECONDS = 2.0
"""How long a restart answer waits for the execution to leave its terminal state."""

RESERVED_LABEL_PREFIX = "kestrel."
UPLOAD_SCHEMES = ("data:", "kestra://", "nsfile://")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody, "description": "invalid inputs, each named"},
}
_INPUTS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Inputs: a JSON object, or form fields (files for FILE inputs).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "multipart/form-data": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        },
    }
}

_RESUME_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The Pause task's onResume inputs: a JSON object, or form fields.",
        "content": _INPUTS_BODY["requestBody"]["content"],
    }
}

LabelsQuery = Annotated[
    list[str] | None, Query(description="key:value, repeatable", examples=["team:data"])
]


async def _detail(runtime: Runtime, execution_id: str) -> ExecutionBody:
    detail = await runtime.store.execution_detail(execution_id)
    if detail is None:
        raise NotFoundError(f"execution {execution_id} not found")
    return detail_body(await masked_detail(runtime.store, detail))


def _check_uploads(flow: Flow, inputs: Mapping[str, Any]) -> None:
    """FILE inputs sent over HTTP are uploads or stored URIs, never a server-side path."""
    bad: dict[str, str] = {}
    for spec in flow.inputs:
        is_file = spec.type is InputType.FILE or (
            spec.type is InputType.ARRAY and spec.item_type is InputType.FILE
        )
        if not is_file or spec.id not in inputs:
            continue
        value = inputs[spec.id]
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not item.startswith(UPLOAD_SCHEMES):
                bad[spec.id] = (
                    "over the API a FILE input is an upload (multipart file), a data: URI, "
                    "or a kestra:// or nsfile:// URI; server paths are refused"
                )
    if bad:
        raise InputError(bad)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def _user_labels(values: list[str]) -> dict[str, str]:
    labels = parse_labels(values)
    reserved = [k for k in labels if k.startswith(RESERVED_LABEL_PREFIX)]
    if reserved:
        raise ApiError(
            400, f"labels starting with '{RESERVED_LABEL_PREFIX}' are reserved", "labels"
        )
    return labels


@router.get("/search", responses=_ERRORS)
async def search_executions(
    runtime: RuntimeDep,
    namespace: Annotated[str | None, Query(description="this namespace and below")] = None,
    flow_id: Annotated[str | None, Query(alias="flowId")] = None,
    state: Annotated[list[State] | None, Query(description="repeatable")] = None,
    labels: LabelsQuery = None,
    start_date: Annotated[dt.datetime | None, Query(alias="startDate")] = None,
    end_date: Annotated[dt.datetime | None, Query(alias="endDate")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,  # offset stays a Postgres bigint
    size: Annotated[int, Query(ge=1, le=1000)] = 25,
) -> ExecutionPage:
    """Executions, newest first: created in ``[startDate, endDate)``, in these states."""
    found = await runtime.store.search_executions(
        namespace=namespace,
        flow_id=flow_id,
        states=state or None,
        labels=parse_labels(labels or ()) or None,
        since=_utc(start_date),
        until=_utc(end_date),
        limit=size,
        offset=(page - 1) * size,
    )
    items = [await masked(runtime.store, e) for e in found.items]
    return ExecutionPage(results=[execution_body(e) for e in items], total=found.total)


@router.post("/{execution_id}/replay", responses=_ERRORS)
async def replay_execution(
    execution_id: str,
    runtime: RuntimeDep,
    task_run_id: Annotated[str | None, Query(alias="taskRunId")] = None,
) -> ExecutionBody:
    """A new execution replaying this one from a task run (or from the start)."""
    replayed = await runtime.control.replay(execution_id, task_run_id)
    return await _detail(runtime, replayed.id)


@router.post("/{execution_id}/restart", responses=_ERRORS)
async def restart_execution(execution_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """Re-run the failed task runs of an ended execution; 409 while it runs."""
    before = await runtime.control.execution(execution_id)
    await runtime.control.restart(execution_id)
    # The restart is submitted, not yet started: answer once the execution has moved on
    # (or after a short while), so the caller never sees the old terminal state as "now".
    deadline = time.monotonic() + RESTART_SETTLE_SECONDS
    while time.monotonic() < deadline:
        now = await runtime.control.execution(execution_id)
        if len(now.state_history) > len(before.state_history):
            break
        await asyncio.sleep(0.02)
    return await _detail(runtime, execution_id)


@router.delete("/{execution_id}/kill", responses=_ERRORS)
async def kill_execution(execution_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """Kill a running execution (and its running tasks); 409 once it ended."""
    await runtime.control.kill(execution_id)
    return await _detail(runtime, execution_id)


@router.post("/{execution_id}/kill", responses=_ERRORS)
async def kill_execution_post(execution_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """Same as ``DELETE /executions/{id}/kill``."""
    return await kill_execution(execution_id, runtime)


@router.post("/{execution_id}/resume", openapi_extra=_RESUME_BODY, responses=_ERRORS)
async def resume_execution(
    execution_id: str, request: Request, runtime: RuntimeDep
) -> ExecutionBody:
    """Resume a paused execution with its Pause task's ``onResume`` inputs; 409 when not paused.

    The inputs are validated like flow inputs (422 naming each bad one) and readable as
    ``outputs.<pauseId>.onResume.<input>``.
    """
    inputs = await read_inputs(request)
    await runtime.control.resume(execution_id, inputs)
    return await _detail(runtime, execution_id)


@router.post("/{execution_id}/pause", responses=_ERRORS)
async def pause_execution(execution_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """Pause a RUNNING execution: running tasks finish, none starts until it is resumed."""
    await runtime.control.pause(execution_id)
    return await _detail(runtime, execution_id)


@router.post("/{namespace}/{flow_id}", openapi_extra=_INPUTS_BODY, responses=_ERRORS)
async def create_execution(
    namespace: str,
    flow_id: str,
    request: Request,
    runtime: RuntimeDep,
    settings: SettingsDep,
    labels: LabelsQuery = None,
    wait: Annotated[bool, Query(description="answer once the execution ended")] = False,
) -> ExecutionBody:
    """Start an execution of a flow's current revision with these inputs."""
    extra_labels = _user_labels(labels or [])
    execution_id: str | None = None
    if media_type(request) == "multipart/form-data":
        flow = await runtime.catalog.flow(namespace, flow_id)
        execution_id = new_execution_id()
        inputs = await read_upload_inputs(
            request, runtime.storage, flow, execution_id, settings.max_file_bytes
        )
    else:
        inputs = await read_inputs(request)
        flow = await runtime.catalog.flow(namespace, flow_id)
    _check_uploads(flow, inputs)
    execution = await runtime.control.execute(
        namespace, flow_id, inputs, labels=extra_labels, execution_id=execution_id
    )
    if wait:
        with contextlib.suppress(TimeoutError):
            await runtime.pool.wait(execution.id, WAIT_SECONDS)
    return await _detail(runtime, execution.id)


@router.get("/{execution_id}", responses=_ERRORS)
async def get_execution(execution_id: str, runtime: RuntimeDep) -> ExecutionBody:
    """An execution with its task runs and their attempts."""
    return await _detail(runtime, execution_id)


@router.get(
    "/{execution_id}/follow",
    responses={
        **_ERRORS,
        200: {"content": {"text/event-stream": {}}, "description": "one event per change"},
    },
)
async def follow(execution_id: str, request: Request, runtime: RuntimeDep) -> StreamingResponse:
    """Server-sent events: the execution now and at every state change, until it ends."""
    await runtime.control.execution(execution_id)
    return sse_response(follow_execution(runtime.store, request, execution_id))
