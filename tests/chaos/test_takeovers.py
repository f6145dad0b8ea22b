"""An execution that keeps losing its owner is failed after N takeovers, not resumed forever.

Takeovers are forced through the real store: owners take the execution's lease and never
release it (their lease expires at once), as owners that die or stall past their lease do.
The service then resumes it through its ordinary recovery pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from actors._dispatch import InProcessDispatcher
from actors._service import ExecutionService
from actors._store._store import Store
from flows import State

pytestmark = pytest.mark.integration

EXPIRED = dt.timedelta(seconds=-1)  # the owner is gone at once: its lease lapses unreleased
MINUTE = dt.timedelta(minutes=1)

FLOW = """
id: bouncing
namespace: tests.takeovers
tasks:
  - {id: first, type: core.Return, value: "one"}
  - {id: second, type: core.Return, value: "two"}
"""


@pytest.fixture
async def service(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ExecutionService]:
    monkeypatch.setenv("KESTREL_MAX_TAKEOVERS", "3")
    async with (
        Store(fresh_database) as store,
        ExecutionService(store, InProcessDispatcher(), lease_ttl=MINUTE) as svc,
    ):
        yield svc


async def lose_owners(store: Store, execution_id: str, times: int) -> None:
    """``times`` owners take the lease in turn and are lost without releasing it."""
    for n in range(times):
        assert await store.take_execution_lease(execution_id, f"lost-{n}", EXPIRED) is not None


async def test_an_execution_that_keeps_losing_its_owner_is_failed_with_a_clear_error(
    service: ExecutionService,
) -> None:
    assert service.max_takeovers == 3
    flow = await service.deploy(FLOW)
    bouncing = (await service.create(flow, {}, start=False)).execution.id
    survivor = (await service.create(flow, {}, start=False)).execution.id
    await lose_owners(service.store, bouncing, 4)  # the first take is no takeover: 3 so far
    await lose_owners(service.store, survivor, 3)  # 2 so far

    assert await service.recover() == 2  # both taken over once more: 4 and 3 takeovers

    ended = await service.wait(bouncing, within=20)
    assert ended.state is State.FAILED
    errors = await service.store.execution_logs(bouncing, min_level="ERROR")
    assert [line.message for line in errors] == [
        "execution failed: its owner was lost 4 times (lease expired without release); "
        "the limit is KESTREL_MAX_TAKEOVERS=3. A task or render that outlives its lease "
        "keeps losing its owner."
    ]
    detail = await service.store.execution_detail(bouncing)
    assert detail is not None and detail.task_runs == ()  # no task ran on the last owner
    assert (await service.wait(survivor, within=20)).state is State.SUCCESS


async def test_a_lease_handed_on_by_release_is_no_takeover(service: ExecutionService) -> None:
    flow = await service.deploy(FLOW)
    execution_id = (await service.create(flow, {}, start=False)).execution.id
    store = service.store
    for n in range(6):  # owners that release in order (restart, admission): never counted
        lease = await store.take_execution_lease(execution_id, f"owner-{n}", MINUTE)
        assert lease is not None and lease.takeovers == 0
        assert await store.release_lease(lease)
    assert await service.run_execution(execution_id)
    assert (await service.wait(execution_id, within=20)).state is State.SUCCESS
    lease = await store.take_execution_lease(execution_id, "after", MINUTE)
    assert lease is not None and lease.takeovers == 0
