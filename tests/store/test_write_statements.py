"""Round trips per batch: one statement per kind of write, counted on the connections.

`Store(query_logger=...)` sees every statement the store's connections run (asyncpg's
query logging), BEGIN and COMMIT included, so these tests count round trips, not time.
The store gets one connection, warmed up first: asyncpg introspects a statement's types
on that connection the first time it prepares it (extra queries, once).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable

import pytest
from asyncpg.connection import LoggedQuery

from actors._store import Attempt, Lease, LogLine, NewTaskRun, Store
from actors._store._ops import (
    AddTaskRunsOp,
    AttemptOp,
    CreateOp,
    LabelsOp,
    LogsOp,
    OutputsOp,
    ReleaseLeaseOp,
    TaskRunTransitionOp,
    TransitionOp,
)
from flows import StaleLeaseError, State, StoreError

from ._factories import new_execution

pytestmark = pytest.mark.integration

MINUTE = dt.timedelta(minutes=1)
EXECUTIONS = 20
ONE_CONNECTION = {"min_connections": 1, "max_connections": 1}


def _run_writes(store: Store, lease: Lease, n: int) -> list[Awaitable[object]]:
    """What a one-task run writes behind (`StoreRecorder`), enqueued without waiting."""
    execution_id = lease.key
    at = dt.datetime.now(dt.UTC)
    task = NewTaskRun(task_id="only", created_at=at)
    started = Attempt(number=1, state=State.RUNNING, started_at=at, worker="w-1")
    ended = Attempt(number=1, state=State.SUCCESS, ended_at=at + dt.timedelta(seconds=1))
    line = LogLine(execution_id=execution_id, message=f"done {n}", task_run_id=task.id)
    ops = [
        TransitionOp.of(execution_id, State.RUNNING, at, lease=lease),
        AddTaskRunsOp.of(execution_id, [task], lease),
        TaskRunTransitionOp.of(execution_id, task.id, State.RUNNING, at, lease),
        AttemptOp.of(execution_id, task.id, started, lease),
        AttemptOp.of(execution_id, task.id, ended, lease),
        OutputsOp.of(execution_id, task.id, {"n": n}, lease),
        LogsOp((line,)),
        LabelsOp.of(execution_id, {"n": n}, lease),
        TaskRunTransitionOp.of(execution_id, task.id, State.SUCCESS, lease=lease),
        TransitionOp.of(execution_id, State.SUCCESS, outputs={"n": n}, lease=lease),
        ReleaseLeaseOp(lease),
    ]
    return [store.enqueue(op) for op in ops]


async def _leased(store: Store, count: int) -> list[Lease]:
    created = await asyncio.gather(
        *(
            store.create_execution(new_execution(), lease_owner="owner", lease_ttl=MINUTE)
            for _ in range(count)
        )
    )
    leases = [c.lease for c in created]
    assert all(lease is not None for lease in leases)
    return [lease for lease in leases if lease is not None]


async def test_a_batch_of_many_runs_history_is_one_statement(fresh_database: str) -> None:
    queries: list[LoggedQuery] = []
    async with Store(fresh_database, **ONE_CONNECTION, query_logger=queries.append) as store:
        warm, *leases = await _leased(store, EXECUTIONS + 1)
        await asyncio.gather(*_run_writes(store, warm, -1))
        batches = store.batcher.batches
        queries.clear()
        pending = [w for n, lease in enumerate(leases) for w in _run_writes(store, lease, n)]
        outcomes = await asyncio.gather(*pending)

        assert store.batcher.batches == batches + 1  # all 220 writes in one batch
        assert len(queries) == 1  # one round trip: no BEGIN/COMMIT, one call
        assert "kestrel_write_history" in queries[0].query
        assert outcomes.count(True) == EXECUTIONS  # every release took
        assert all(o is None or o is True for o in outcomes)

        for n, lease in enumerate(leases):
            detail = await store.execution_detail(lease.key)
            assert detail is not None
            execution = detail.execution
            assert [e.state for e in execution.state_history] == [
                State.CREATED,
                State.RUNNING,
                State.SUCCESS,
            ]
            assert execution.outputs == {"n": n}
            assert execution.labels == {"n": str(n)}
            (run,) = detail.task_runs
            assert [e.state for e in run.task_run.state_history] == [
                State.CREATED,
                State.RUNNING,
                State.SUCCESS,
            ]
            (attempt,) = run.attempts
            assert attempt.state is State.SUCCESS and attempt.worker == "w-1"
            assert attempt.started_at is not None and attempt.ended_at is not None
            assert run.outputs == {"n": n}
            assert [line.message for line in detail.logs] == [f"done {n}"]
            current = await store.get_lease(lease.kind, lease.key)
            assert current is not None and current.expires_at <= dt.datetime.now(dt.UTC)


async def test_a_batch_of_creates_is_one_statement(fresh_database: str) -> None:
    queries: list[LoggedQuery] = []
    async with Store(fresh_database, **ONE_CONNECTION, query_logger=queries.append) as store:
        await store.create_execution(new_execution())  # pool warm, types introspected
        queries.clear()
        batches = store.batcher.batches
        created = await asyncio.gather(
            *(store.create_execution(new_execution(task_ids=("a",))) for _ in range(EXECUTIONS))
        )
        assert store.batcher.batches == batches + 1
        assert len(queries) == 1
        assert all(c.created for c in created)


async def test_creates_and_history_in_one_batch_are_two_statements_in_one_transaction(
    fresh_database: str,
) -> None:
    queries: list[LoggedQuery] = []
    async with Store(fresh_database, **ONE_CONNECTION, query_logger=queries.append) as store:
        warm, *leases = await _leased(store, 6)
        await asyncio.gather(*_run_writes(store, warm, -1))
        queries.clear()
        new = [new_execution(task_ids=("a",)) for _ in range(5)]
        pending = [store.enqueue(CreateOp.of(n)) for n in new]
        pending += [w for n, lease in enumerate(leases) for w in _run_writes(store, lease, n)]
        await asyncio.gather(*pending)
        statements = [q.query.strip().rstrip(";").upper() for q in queries]
        assert statements[0] == "BEGIN" and statements[-1] == "COMMIT"
        assert len(statements) == 4  # BEGIN, the creates, the history call, COMMIT
        for n in new:
            assert await store.get_execution(n.id) is not None


async def test_a_stale_and_a_current_owner_in_one_batch_are_fenced_apart(
    fresh_database: str,
) -> None:
    """A row's writes merge only under one lease: the batch is cut, each write judged."""
    async with Store(fresh_database, max_connections=2) as store:
        (old,) = await _leased(store, 1)
        current = await store.take_execution_lease(old.key, "owner", MINUTE)
        assert current is not None and current.epoch == old.epoch + 1
        stale_write = store.enqueue(TransitionOp.of(old.key, State.RUNNING, lease=old))
        good_write = store.enqueue(TransitionOp.of(old.key, State.SUCCESS, lease=current))
        stale_again = store.enqueue(
            TransitionOp.of(old.key, State.FAILED, lease=dataclasses.replace(old))
        )
        results = await asyncio.gather(stale_write, good_write, stale_again, return_exceptions=True)
        assert isinstance(results[0], StaleLeaseError)
        assert results[1] is None
        assert isinstance(results[2], StaleLeaseError)
        execution = await store.get_execution(old.key)
        assert execution is not None
        assert [e.state for e in execution.state_history] == [State.CREATED, State.SUCCESS]


async def test_a_task_run_created_and_moved_in_one_batch_is_inserted_in_its_last_state(
    store: Store,
) -> None:
    (lease,) = await _leased(store, 1)
    at = dt.datetime.now(dt.UTC)
    fresh = NewTaskRun(task_id="fresh", created_at=at)
    again = NewTaskRun(task_id="again", created_at=at)
    await store.add_task_runs(lease.key, [again], lease=lease)  # written once already
    later = at + dt.timedelta(seconds=2)
    writes = [
        AddTaskRunsOp.of(lease.key, [fresh], lease),
        TaskRunTransitionOp.of(lease.key, fresh.id, State.RUNNING, at, lease),
        TaskRunTransitionOp.of(lease.key, fresh.id, State.SUCCESS, later, lease),
        AddTaskRunsOp.of(lease.key, [again], lease),  # a retried write: the row exists
        TaskRunTransitionOp.of(lease.key, again.id, State.RUNNING, later, lease),
    ]
    assert await asyncio.gather(*(store.enqueue(w) for w in writes)) == [None] * 5
    detail = await store.execution_detail(lease.key)
    assert detail is not None
    runs = {d.task_run.task_id: d.task_run for d in detail.task_runs}
    assert [e.state for e in runs["fresh"].state_history] == [
        State.CREATED,
        State.RUNNING,
        State.SUCCESS,
    ]
    assert runs["fresh"].state is State.SUCCESS
    assert runs["fresh"].ended_at == later and runs["fresh"].updated_at == later
    assert [e.state for e in runs["again"].state_history] == [State.CREATED, State.RUNNING]
    assert runs["again"].state is State.RUNNING and runs["again"].ended_at is None


async def test_each_write_about_a_missing_row_fails_only_itself_in_a_batch_that_took(
    fresh_database: str,
) -> None:
    """The call answers only what it did not write; every other op in the batch succeeds."""
    async with Store(fresh_database, **ONE_CONNECTION) as store:
        good, other = await _leased(store, 2)
        stale = dataclasses.replace(other, epoch=other.epoch - 1)
        at = dt.datetime.now(dt.UTC)
        attempt = Attempt(number=1, state=State.RUNNING, started_at=at)
        lost = LogLine(execution_id="nope", message="lost")
        kept = LogLine(execution_id=good.key, message="kept")
        writes = {
            "add runs, no execution": AddTaskRunsOp.of("nope", [NewTaskRun(task_id="t")]),
            "transition, no execution": TransitionOp.of("nope", State.RUNNING),
            "task run, no task run": TaskRunTransitionOp.of(good.key, "no-run", State.RUNNING),
            "attempt, no task run": AttemptOp.of(good.key, "no-run", attempt),
            "outputs, no task run": OutputsOp.of(good.key, "no-run", {"x": 1}),
            "labels, no execution": LabelsOp.of("nope", {"x": "1"}),
            "logs, one execution missing": LogsOp((kept, lost)),
            "stale, no task run": AttemptOp.of(other.key, "no-run", attempt, stale),
            "release, not ours": ReleaseLeaseOp(stale),
            "release, ours": ReleaseLeaseOp(other),
        }
        enqueued = [store.enqueue(w) for w in writes.values()]
        enqueued += _run_writes(store, good, 7)
        outcomes = await asyncio.gather(*enqueued, return_exceptions=True)
        got = dict(zip(writes, outcomes, strict=False))
        for name in list(writes)[:7]:
            assert isinstance(got[name], StoreError), (name, got[name])
            assert not isinstance(got[name], StaleLeaseError), name
        assert "unknown task run 'no-run'" in str(got["attempt, no task run"])
        assert "unknown execution 'nope'" in str(got["logs, one execution missing"])
        assert isinstance(got["stale, no task run"], StaleLeaseError)
        assert got["release, not ours"] is False
        assert got["release, ours"] is True
        assert outcomes[len(writes) :] == [None] * 10 + [True]  # the good run's writes
        detail = await store.execution_detail(good.key)
        assert detail is not None and detail.execution.state is State.SUCCESS
        assert [line.message for line in detail.logs] == ["kept", "done 7"]
