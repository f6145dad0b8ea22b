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


async def _restarted(handle: Any, before: str, deadline_s: float = 60.0) -> None:
    """Wait until Ray has restarted the actor (its incarnation changed), with a deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if await handle.incarnation.remote() != before:
                return
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            pass  # between the old process dying and the new one serving
        assert time.monotonic() < deadline, "the coordinator was not restarted in time"
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
        before = await handle.incarnation.remote()
        ray.kill(handle, no_restart=False)  # Ray restarts it; it rebuilds from Postgres
        await _restarted(handle, before)

        detail = await handle.execution_detail.remote(new.id)
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
