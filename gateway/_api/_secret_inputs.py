"""SECRET inputs never leave the API in clear: every execution it returns has them masked.

The store keeps SECRET inputs as they were given (a run, a resume and a replay need them);
what the API, its event streams and so the UI and the CLI show is ``******`` instead.
Which inputs are SECRET comes from the flow revision the execution ran (cached per
revision). A revision that cannot be read any more masks every input: never fail open.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

from actors import Execution, ExecutionDetail, Store
from flows import FlowError, InputType, parse_flow

MASK = "******"
_ALL = frozenset({"*"})
_CACHE_SIZE = 1024
_cache: OrderedDict[tuple[str, str, int], frozenset[str]] = OrderedDict()


def secret_ids_of(source: str) -> frozenset[str]:
    """The ids of a flow's SECRET inputs (every input, ``{"*"}``, if the flow is unreadable)."""
    try:
        flow = parse_flow(source)
    except FlowError:
        return _ALL
    return frozenset(i.id for i in flow.inputs if i.type is InputType.SECRET)


async def _secret_ids(store: Store, execution: Execution, source: str | None) -> frozenset[str]:
    key = (execution.namespace, execution.flow_id, execution.flow_revision)
    found = _cache.get(key)
    if found is not None:
        _cache.move_to_end(key)
        return found
    if source is None:
        revision = await store.get_flow(
            execution.namespace, execution.flow_id, execution.flow_revision, include_deleted=True
        )
        source = revision.source if revision is not None else None
    found = _ALL if source is None else secret_ids_of(source)
    _cache[key] = found
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return found


def mask_inputs(inputs: dict[str, Any], secret_ids: frozenset[str]) -> dict[str, Any]:
    """``inputs`` with the values of `secret_ids` (all, for ``{"*"}``) masked."""
    return {
        name: MASK
        if (name in secret_ids or secret_ids is _ALL) and value not in (None, "")
        else value
        for name, value in inputs.items()
    }


async def masked(store: Store, execution: Execution, source: str | None = None) -> Execution:
    """The execution with its SECRET inputs masked."""
    if not execution.inputs:
        return execution
    ids = await _secret_ids(store, execution, source)
    if not ids:
        return execution
    return dataclasses.replace(execution, inputs=mask_inputs(dict(execution.inputs), ids))


async def masked_detail(store: Store, detail: ExecutionDetail) -> ExecutionDetail:
    """The execution detail with its SECRET inputs masked."""
    source = detail.flow.source if detail.flow is not None else None
    execution = await masked(store, detail.execution, source)
    if execution is detail.execution:
        return detail
    return dataclasses.replace(detail, execution=execution)
