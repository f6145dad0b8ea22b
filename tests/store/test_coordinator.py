"""The coordinator as a named, restartable async Ray actor."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import ray

from actors._coordinator import Coordinator, get_coordinator, start_coordinator
from actors._store import LogLine, NewTaskRun
from flows import State
from tests.servers import RayCluster

from ._factories import new_execution

pytestmark = pytest.mark.integration


async def _call_until_restarted(method: Any, *args: Any, deadline_s: float = 60.0) -> Any:
    """Call an actor method, retrying while Ray restarts the actor (bounded by a deadline)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return await method.remote(*args)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_create_and_read_through_the_actor_survive_a_restart(
    ray_cluster: RayCluster, fresh_database: str
) -> None:
    name = f"kestrel-coordinator-{uuid.uuid4().hex[:8]}"
    handle = await start_coordinator(fresh_database, name=name, kv_purge_interval=0)
    try:
        new = new_execution(dedupe_key=f"test:{name}", task_ids=("a", "b"))
        created = await handle.create_execution.remote(new)
        assert created.created and created.execution.id == new.id
        again = await handle.create_execution.remote(new_execution(dedupe_key=new.dedupe_key))
        assert not again.created and again.execution.id == new.id
        await handle.transition.remote(new.id, State.RUNNING)
        await handle.append_logs.remote([LogLine(execution_id=new.id, message="hello")])
        await handle.add_task_runs.remote(new.id, [NewTaskRun(task_id="c")])

        assert get_coordinator(name) is not None  # found by name
        ray.kill(handle, no_restart=False)  # Ray restarts it; it rebuilds from Postgres

        detail = await _call_until_restarted(handle.execution_detail, new.id)
        assert detail is not None
        assert detail.execution.state is State.RUNNING
        assert [d.task_run.task_id for d in detail.task_runs] == ["a", "b", "c"]
        assert [line.message for line in detail.logs] == ["hello"]
        page = await handle.search_executions.remote(namespace=new.namespace)
        assert page.total == 1
    finally:
        ray.kill(handle, no_restart=True)


async def test_the_coordinator_also_works_in_process(fresh_database: str) -> None:
    async with Coordinator(fresh_database, kv_purge_interval=0) as coordinator:
        created = await coordinator.create_execution(new_execution())
        found = await coordinator.get_execution(created.execution.id)
        assert found == created.execution
        assert await coordinator.ping() == "pong"
