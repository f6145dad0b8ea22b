"""``GET /api/v1/namespaces`` and ``GET /api/v1/flows/{namespace}``: flows by namespace.

Kestra's shapes: a namespace is ``{"id": ...}`` in a ``{"results", "total"}`` page (we add
how many flows it holds), and the flows of one namespace are a plain list.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Query

from flows import FlowError, NotFoundError, parse_flow

from ._deps import RuntimeDep
from ._models import ApiModel, ErrorBody, FlowSummary, flow_summary

namespaces_router = APIRouter(prefix="/namespaces", tags=["namespaces"])
flows_router = APIRouter(prefix="/flows", tags=["flows"])


class NamespaceBody(ApiModel):
    """A namespace that holds live flows."""

    id: str
    flow_count: int


class NamespacePage(ApiModel):
    """Every namespace with flows, by id."""

    results: list[NamespaceBody]
    total: int


@namespaces_router.get("")
async def list_namespaces(
    runtime: RuntimeDep,
    q: Annotated[str | None, Query(description="text in the namespace")] = None,
) -> NamespacePage:
    """The namespaces that have live flows, with how many each holds."""
    counts = Counter(r.namespace for r in await runtime.store.list_flows())
    found = [
        NamespaceBody(id=ns, flow_count=n)
        for ns, n in sorted(counts.items())
        if not q or q.lower() in ns.lower()
    ]
    return NamespacePage(results=found, total=len(found))


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No live flow in this namespace."}
}


@flows_router.get("/{namespace}", responses=_ERRORS)
async def namespace_flows(namespace: str, runtime: RuntimeDep) -> list[FlowSummary]:
    """The live flows of exactly this namespace (not the ones below it), by id."""
    last = await runtime.store.last_execution_states(namespace)
    out: list[FlowSummary] = []
    for revision in await runtime.store.list_flows(namespace):
        if revision.namespace != namespace:
            continue
        try:
            flow = parse_flow(revision.source, f"{revision.namespace}.{revision.flow_id}")
            summary = flow_summary(flow, revision, [])
        except FlowError as exc:
            summary = flow_summary(None, revision, exc.problems)
        state = last.get((revision.namespace, revision.flow_id))
        summary.last_execution_state = None if state is None else state.value
        out.append(summary)
    if not out:
        raise NotFoundError(f"namespace {namespace} has no flows")
    return out
