"""Execution actors on a real Ray with a real Postgres: warm pool, recording, recovery."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest
import ray

from actors._pool import ExecutionPool, PoolOptions
from actors._store._records import ExecutionDetail
from actors._store._store import Store
from flows import State
from tests.polling import eventually

pytestmark = pytest.mark.integration

SLOW_FLOW = """
id: slow
namespace: tests.actors
tasks:
  - {id: first, type: core.Return, value: "{{ 1 + 1 }}"}
  - id: long
    type: python.Function
    function: tests.runtime.flowfuncs:slow
    kwargs: {seconds: 2}
  - {id: after, type: core.Log, message: "after {{ outputs.first.value }}"}
"""

QUICK_FLOW = """
id: quick
namespace: tests.actors
inputs:
  - {id: n, type: INT}
tasks:
  - id: work
    type: python.Function
    function: tests.runtime.flowfuncs:echo
    kwargs: {n: "{{ inputs.n }}"}
  - {id: note, type: core.Log, message: "n={{ outputs.work.n }}"}
  - id: script
    type: scripts.Python
    script: |
      print("printed by the script", inputs["n"])
      logger.warning("logged by the script")
"""


@pytest.fixture
async def store(fresh_database: str) -> AsyncIterator[Store]:
    async with Store(fresh_database) as opened:
        yield opened


@pytest.fixture
async def pool(store: Store, ray_cluster: Any) -> AsyncIterator[ExecutionPool]:
    options = PoolOptions(
        min_actors=1,
        max_actors=2,
        lease_ttl_s=2.0,
        recovery_interval_s=0.5,
        name_prefix=f"test-exec-{uuid.uuid4().hex[:8]}",
    )
    async with ExecutionPool(store, options) as started:
        yield started


async def deploy(store: Store, source: str) -> None:
    from flows import parse_flow

    flow = parse_flow(source)
    await store.save_flow(flow.namespace, flow.id, source)


async def detail_when(
    store: Store, execution_id: str, predicate: Any, within: float = 30
) -> ExecutionDetail:
    async def check() -> ExecutionDetail | None:
        detail = await store.execution_detail(execution_id)
        return detail if detail is not None and predicate(detail) else None

    return await eventually(check, within, what=f"condition for {execution_id}", interval=0.05)


def run_of(detail: ExecutionDetail, task_id: str) -> Any:
    return next(d for d in detail.task_runs if d.task_run.task_id == task_id)


async def test_execution_runs_on_the_pool_and_is_recorded(
    store: Store, pool: ExecutionPool
) -> None:
    await deploy(store, QUICK_FLOW)
    started = await pool.create("tests.actors", "quick", {"n": 21})
    assert started.created
    assert await pool.wait(started.execution_id, within=60) is State.SUCCESS
    detail = await store.execution_detail(started.execution_id)
    assert detail is not None
    assert [d.task_run.task_id for d in detail.task_runs] == ["work", "note", "script"]
    work = run_of(detail, "work")
    assert work.outputs == {"n": 21}
    assert len(work.attempts) == 1 and work.attempts[0].state is State.SUCCESS
    assert work.attempts[0].worker  # recorded where it ran
    assert [line.message for line in detail.logs] == [
        "n=21",
        "printed by the script 21",
        "logged by the script",
    ]
    script = run_of(detail, "script")
    printed, logged = detail.logs[1], detail.logs[2]
    assert (printed.task_run_id, printed.attempt, printed.level) == (script.task_run.id, 1, "INFO")
    assert (logged.task_run_id, logged.attempt, logged.level) == (script.task_run.id, 1, "WARN")
    history = [e.state for e in detail.execution.state_history]
    assert history[0] is State.CREATED and history[-1] is State.SUCCESS
    assert State.RUNNING in history


async def test_same_dedupe_key_creates_one_execution(store: Store, pool: ExecutionPool) -> None:
    await deploy(store, QUICK_FLOW)
    first = await pool.create("tests.actors", "quick", {"n": 1}, dedupe_key="src:1")
    again = await pool.create("tests.actors", "quick", {"n": 1}, dedupe_key="src:1")
    assert first.created and not again.created
    assert again.execution_id == first.execution_id


async def test_invalid_inputs_create_nothing(store: Store, pool: ExecutionPool) -> None:
    from flows import InputError

    await deploy(store, QUICK_FLOW)
    with pytest.raises(InputError, match="'n'"):
        await pool.create("tests.actors", "quick", {"n": "not a number"})
    page = await store.search_executions(namespace="tests.actors")
    assert page.total == 0


async def test_killed_actor_execution_resumes_without_rerunning_finished_tasks(
    store: Store, pool: ExecutionPool
) -> None:
    await deploy(store, SLOW_FLOW)
    started = await pool.create("tests.actors", "slow")
    eid = started.execution_id

    def long_running(detail: ExecutionDetail) -> bool:
        runs = {d.task_run.task_id: d for d in detail.task_runs}
        return "long" in runs and any(a.state is State.RUNNING for a in runs["long"].attempts)

    await detail_when(store, eid, long_running)
    lease = await store.get_lease("execution", eid)
    assert lease is not None
    for handle in pool.handles():
        ray.kill(handle, no_restart=False)  # the actor restarts empty, as after a crash
    assert await pool.wait(eid, within=90) is State.SUCCESS
    detail = await store.execution_detail(eid)
    assert detail is not None
    assert len(run_of(detail, "first").attempts) == 1  # finished before the crash: kept
    long = run_of(detail, "long")
    assert [a.state for a in long.attempts] == [State.FAILED, State.SUCCESS]
    assert long.attempts[0].error is not None
    assert long.attempts[0].error["type"] == "interrupted"
    assert len(run_of(detail, "after").attempts) == 1
    new_lease = await store.get_lease("execution", eid)
    assert new_lease is not None and new_lease.epoch > lease.epoch


def _ray_processes(session_dir: str | None) -> set[int]:
    """PIDs of this session's Ray worker processes (actors and task workers).

    Other Ray instances on a shared machine are left out: a worker counts only when a
    process it descends from names this session's directory (the raylet does).
    """
    found = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        worker = "default_worker.py" in cmdline or cmdline.startswith("ray::")
        if worker and (session_dir is None or _descends_from(proc, session_dir)):
            found.add(proc.info["pid"])
    return found


def _descends_from(proc: psutil.Process, session_dir: str) -> bool:
    try:
        return any(session_dir in " ".join(p.cmdline()) for p in proc.parents())
    except psutil.Error:
        return False


async def test_event_path_starts_no_process_on_a_warm_pool(
    store: Store, pool: ExecutionPool, ray_cluster: Any
) -> None:
    await deploy(store, QUICK_FLOW)
    # Warm up: the first runnable task may start the Ray task worker it reuses afterwards.
    for n in range(4):
        warm = await pool.create("tests.actors", "quick", {"n": n})
        assert await pool.wait(warm.execution_id, within=60) is State.SUCCESS
    actors_before = len(ray.util.list_named_actors(all_namespaces=True))
    processes_before = _ray_processes(ray_cluster.session_dir)
    ids = []
    for n in range(200):
        started = await pool.create("tests.actors", "quick", {"n": n})
        ids.append(started.execution_id)
    states = await asyncio.gather(*(pool.wait(i, within=120) for i in ids))
    assert set(states) == {State.SUCCESS}
    assert len(ray.util.list_named_actors(all_namespaces=True)) == actors_before
    assert _ray_processes(ray_cluster.session_dir) <= processes_before
    assert pool.size == 1


UNSENDABLE_FLOW = """
id: unsendable
namespace: tests.actors
tasks:
  - id: bad
    type: python.Function
    function: tests.runtime.flowfuncs:echo
    resources:
      custom: {CPU: 1}  # Ray refuses it when the attempt is submitted, not at parse time
    retry: {type: constant, interval: PT0.1S, maxAttempts: 3}
  - {id: never, type: core.Log, message: unreachable}
"""


async def test_an_attempt_ray_refuses_to_take_ends_failed_with_its_task_run(
    store: Store, pool: ExecutionPool
) -> None:
    """Regression: a dispatch failure crashed the interpreter, so the execution ended FAILED
    while its task run and attempt stayed RUNNING forever."""
    await deploy(store, UNSENDABLE_FLOW)
    started = await pool.create("tests.actors", "unsendable")
    assert await pool.wait(started.execution_id, within=60) is State.FAILED
    detail = await store.execution_detail(started.execution_id)
    assert detail is not None
    assert [d.task_run.task_id for d in detail.task_runs] == ["bad"]
    bad = run_of(detail, "bad")
    assert bad.task_run.state is State.FAILED
    assert len(bad.attempts) == 1  # the same options fail every time: not retried
    attempt = bad.attempts[0]
    assert attempt.state is State.FAILED and attempt.ended_at is not None
    assert attempt.error is not None
    assert attempt.error["type"] == "ValueError" and attempt.error["retriable"] is False
    assert attempt.error["message"].startswith("the attempt could not be sent to Ray: ")
    assert "num_cpus" in attempt.error["message"]
