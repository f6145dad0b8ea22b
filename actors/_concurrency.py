"""A flow's ``concurrency`` limit: admit an execution, or queue, cancel or fail it."""

from __future__ import annotations

import logging

from flows import ConcurrencyBehavior, Flow, State

from ._store._records import Lease
from ._store._store import Store

_log = logging.getLogger(__name__)

_OVER_LIMIT = {
    ConcurrencyBehavior.QUEUE: State.QUEUED,
    ConcurrencyBehavior.CANCEL: State.CANCELLED,
    ConcurrencyBehavior.FAIL: State.FAILED,
}


async def admit(store: Store, flow: Flow, execution_id: str, lease: Lease) -> State:
    """Take a concurrency slot (RUNNING), or queue/cancel/fail the execution per the flow.

    An execution not admitted gives its lease back.
    """
    assert flow.concurrency is not None
    otherwise = _OVER_LIMIT[flow.concurrency.behavior]
    state = await store.admit(
        execution_id, flow.namespace, flow.id, flow.concurrency.limit, otherwise
    )
    if state is not State.RUNNING:
        await store.release_lease(lease)
        _log.info(
            "execution %s %s: flow %s is at its concurrency limit",
            execution_id,
            state.value,
            flow.uid,
        )
    return state
