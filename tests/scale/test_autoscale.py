"""The warm pool asks Ray's autoscaler for capacity when a backlog outgrows it.

A pool of one execution actor (its largest) with a target load of 2 gets 3 long
executions: it is saturated, so it asks Ray for 3 CPUs (`request_resources`, recorded
by Ray where an autoscaler reads it); once they end, it withdraws the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors import ExecutionPool, PoolOptions, Store
from tests.polling import eventually
from tests.servers import RayCluster

pytestmark = pytest.mark.integration

BACKLOG = 3


def sleepy(namespace: str) -> str:
    return (
        f"id: slow\nnamespace: {namespace}\n"
        "tasks:\n  - {id: nap, type: flow.Sleep, duration: PT60S}\n"
    )


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[Store]:
    async with Store(fresh_database) as started:
        yield started


def _recorded_request() -> list[dict[str, Any]] | None:
    """The resource request Ray keeps for a v1 autoscaler (None with autoscaler v2)."""
    from ray.autoscaler._private.constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.autoscaler.v2.utils import is_autoscaler_v2
    from ray.experimental.internal_kv import _internal_kv_get

    if is_autoscaler_v2():
        return None
    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return [] if raw is None else list(json.loads(raw))


async def test_saturated_pool_asks_ray_for_cpus_then_withdraws(
    store: Store, ray_cluster: RayCluster
) -> None:
    namespace = f"scale.auto{uuid.uuid4().hex[:8]}"
    await store.save_flow(namespace, "slow", sleepy(namespace))
    options = PoolOptions(
        min_actors=1,
        max_actors=1,
        target_load=2,
        name_prefix=f"auto-{uuid.uuid4().hex[:8]}",
        warm_workers=0,
    )
    async with ExecutionPool(store, options) as pool:
        started = [await pool.create(namespace, "slow") for _ in range(BACKLOG)]
        await eventually(lambda: pool.capacity.cpus == BACKLOG, what="CPUs requested")
        recorded = _recorded_request()
        if recorded is not None:
            assert recorded == [{"CPU": 1}] * BACKLOG
        for one in started:
            await pool.kill(one.execution_id)
        await eventually(lambda: pool.capacity.cpus == 0, what="request withdrawn")
        recorded = _recorded_request()
        if recorded is not None:
            assert recorded == []
