"""``/api/v1/flows``: create, read, update, delete, list revisions, validate and search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from actors import FlowRevision
from flows import (
    ConflictError,
    Flow,
    FlowError,
    NotFoundError,
    Problem,
    flow_json_schema,
    parse_flow,
    validate_flow_text,
)

from .._runtime import Runtime
from ._bodies import read_yaml
from ._deps import RuntimeDep
from ._models import (
    ErrorBody,
    FlowPage,
    ProblemBody,
    RevisionBody,
    flow_json,
    flow_summary,
    problem_body,
    revision_body,
)

router = APIRouter(prefix="/flows", tags=["flows"])

SOURCE_FILE = "<api>"
"""The file name problems of a flow sent over the API are reported against."""

_YAML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The flow's YAML source.",
        "content": {
            "application/x-yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    404: {"model": ErrorBody},
    409: {"model": ErrorBody},
    422: {"model": ErrorBody, "description": "invalid flow: every problem with its position"},
}


def _load(revision: FlowRevision) -> tuple[Flow | None, list[Problem]]:
    try:
        flow = parse_flow(revision.source, f"{revision.namespace}.{revision.flow_id}")
    except FlowError as exc:
        return None, exc.problems
    flow.revision = revision.revision
    return flow, []


async def _stored(
    runtime: Runtime, namespace: str, flow_id: str, revision: int | None
) -> FlowRevision:
    found = await runtime.store.get_flow(namespace, flow_id, revision)
    if found is None:
        which = f" revision {revision}" if revision is not None else ""
        raise NotFoundError(f"flow {namespace}.{flow_id}{which} not found")
    return found


async def _flow_answer(runtime: Runtime, flow: Flow) -> dict[str, Any]:
    revision = await _stored(runtime, flow.namespace, flow.id, flow.revision)
    return flow_json(flow, revision)


@router.post("", status_code=201, openapi_extra=_YAML_BODY, responses=_ERRORS)
async def create_flow(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Create a flow from its YAML; 409 if it exists already (update it with PUT)."""
    source = await read_yaml(request)
    flow = parse_flow(source, SOURCE_FILE)
    if await runtime.store.get_flow(flow.namespace, flow.id) is not None:
        raise ConflictError(
            f"flow {flow.uid} already exists: update it with PUT "
            f"/api/v1/flows/{flow.namespace}/{flow.id}"
        )
    deployed, _ = await runtime.catalog.deploy(source, SOURCE_FILE)
    return await _flow_answer(runtime, deployed)


@router.post("/validate", openapi_extra=_YAML_BODY)
async def validate_flow(request: Request) -> list[ProblemBody]:
    """Every problem of a flow's YAML, with its position; empty when it is valid."""
    source = await read_yaml(request)
    return [problem_body(p) for p in validate_flow_text(source, SOURCE_FILE)]


@router.get("/schema")
async def flow_schema() -> dict[str, Any]:
    """The JSON Schema of the flow language (what ``kestrel schema`` prints)."""
    return flow_json_schema()


@router.get("/search", responses=_ERRORS)
async def search_flows(
    runtime: RuntimeDep,
    namespace: Annotated[str | None, Query(description="this namespace and below")] = None,
    q: Annotated[str | None, Query(description="text in the id, namespace or description")] = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    size: Annotated[int, Query(ge=1, le=1000)] = 25,
) -> FlowPage:
    """Live flows (current revisions), by namespace then id."""
    summaries = []
    last = await runtime.store.last_execution_states(namespace)
    for revision in await runtime.store.list_flows(namespace):
        flow, problems = _load(revision)
        summary = flow_summary(flow, revision, problems)
        state = last.get((revision.namespace, revision.flow_id))
        summary.last_execution_state = None if state is None else state.value
        if q:
            text = " ".join((summary.id, summary.namespace, summary.description or "")).lower()
            if q.lower() not in text:
                continue
        summaries.append(summary)
    start = (page - 1) * size
    return FlowPage(results=summaries[start : start + size], total=len(summaries))


@router.get("/{namespace}/{id}", responses=_ERRORS)
async def get_flow(
    namespace: str,
    id: str,
    runtime: RuntimeDep,
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,  # a Postgres integer
) -> dict[str, Any]:
    """A flow (its current revision, or the one asked for), with its YAML ``source``."""
    stored = await _stored(runtime, namespace, id, revision)
    flow, problems = _load(stored)
    if flow is None:
        return {
            "id": id,
            "namespace": namespace,
            "revision": stored.revision,
            "source": stored.source,
            "errors": [problem_body(p).model_dump() for p in problems],
        }
    return flow_json(flow, stored)


@router.put("/{namespace}/{id}", openapi_extra=_YAML_BODY, responses=_ERRORS)
async def update_flow(
    namespace: str, id: str, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    """Replace a flow's YAML (a new revision when it changed); 404 if it does not exist."""
    source = await read_yaml(request)
    flow = parse_flow(source, SOURCE_FILE)
    mismatched = [
        Problem(f"is '{sent}' but the URL says '{want}'", key, SOURCE_FILE)
        for key, sent, want in (("namespace", flow.namespace, namespace), ("id", flow.id, id))
        if sent != want
    ]
    if mismatched:
        raise FlowError(mismatched)
    await _stored(runtime, namespace, id, None)
    deployed, _ = await runtime.catalog.deploy(source, SOURCE_FILE)
    return await _flow_answer(runtime, deployed)


@router.delete("/{namespace}/{id}", status_code=204, responses=_ERRORS)
async def delete_flow(namespace: str, id: str, runtime: RuntimeDep) -> Response:
    """Delete a flow: its triggers stop; its revisions and executions stay."""
    await runtime.catalog.delete(namespace, id)
    return Response(status_code=204)


@router.get("/{namespace}/{id}/revisions", responses=_ERRORS)
async def flow_revisions(namespace: str, id: str, runtime: RuntimeDep) -> list[RevisionBody]:
    """Every revision of a flow, oldest first (a deletion is a revision too)."""
    revisions = await runtime.store.flow_revisions(namespace, id)
    if not revisions:
        raise NotFoundError(f"flow {namespace}.{id} not found")
    return [revision_body(r) for r in revisions]
