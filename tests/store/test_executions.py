"""Executions: idempotent creates, batched transitions, the replay read, search, logs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from actors._store import (
    Attempt,
    LogLine,
    NewExecution,
    NewTaskRun,
    Store,
    TaskRunDetail,
)
from flows import State, StoreError

from ._factories import new_execution

pytestmark = pytest.mark.integration

UTC = dt.UTC


async def test_fifty_concurrent_creates_with_one_dedupe_key_make_one_execution(
    store: Store,
) -> None:
    results = await asyncio.gather(
        *(
            store.create_execution(new_execution(dedupe_key="kafka:orders/0@42", task_ids=("a",)))
            for _ in range(50)
        )
    )
    ids = {r.execution.id for r in results}
    assert len(ids) == 1
    assert sum(r.created for r in results) == 1
    page = await store.search_executions()
    assert page.total == 1
    detail = await store.execution_detail(ids.pop())
    assert detail is not None and len(detail.task_runs) == 1  # the duplicates added none


async def test_creates_from_separate_stores_race_on_the_database_constraint(
    fresh_database: str,
) -> None:
    stores = [Store(fresh_database, min_connections=1, max_connections=2) for _ in range(5)]
    await asyncio.gather(*(s.start() for s in stores))
    try:
        results = await asyncio.gather(
            *(
                s.create_execution(new_execution(dedupe_key="nats:orders@7"))
                for s in stores
                for _ in range(10)
            )
        )
    finally:
        await asyncio.gather(*(s.stop() for s in stores))
    assert len({r.execution.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert all(r.execution.dedupe_key == "nats:orders@7" for r in results)


async def test_a_duplicate_returns_the_existing_execution_as_it_is_now(store: Store) -> None:
    first = await store.create_execution(new_execution(dedupe_key="k", inputs={"n": 1}))
    await store.transition(first.execution.id, State.RUNNING)
    again = await store.create_execution(new_execution(dedupe_key="k", inputs={"n": 2}))
    assert not again.created
    assert again.execution.id == first.execution.id
    assert again.execution.inputs == {"n": 1}
    assert again.execution.state is State.RUNNING


async def test_a_new_execution_is_returned_as_stored(store: Store) -> None:
    # The create statement returns only ids: the execution is rebuilt from what was sent.
    trigger = {"data": {"at": dt.datetime(2026, 1, 2, tzinfo=UTC), "raw": b"\x00"}, "n": (1, 2)}
    for state in (State.CREATED, State.SUCCESS):
        result = await store.create_execution(
            new_execution(
                dedupe_key=f"k-{state}",
                inputs={"n": 1, "s": "é"},
                trigger=trigger,
                labels={"team": "a"},
                state=state,
                task_ids=("a",),
            )
        )
        assert result.created
        assert result.execution == await store.get_execution(result.execution.id)
    untriggered = await store.create_execution(new_execution())
    assert untriggered.execution == await store.get_execution(untriggered.execution.id)


async def test_transitions_from_many_executions_share_batches(store: Store) -> None:
    created = await asyncio.gather(*(store.create_execution(new_execution()) for _ in range(40)))
    ids = [c.execution.id for c in created]
    batches_before = store.batcher.batches
    for state in (State.RUNNING, State.SUCCESS):
        await asyncio.gather(*(store.transition(i, state) for i in ids))
    assert store.batcher.batches - batches_before < 2 * len(ids)  # some writes were batched
    for execution_id in ids:
        execution = await store.get_execution(execution_id)
        assert execution is not None
        assert [e.state for e in execution.state_history] == [
            State.CREATED,
            State.RUNNING,
            State.SUCCESS,
        ]
        assert execution.ended_at == execution.state_history[-1].date


async def test_writes_about_an_unknown_execution_fail_only_their_caller(store: Store) -> None:
    good = await store.create_execution(new_execution())
    results = await asyncio.gather(
        store.transition("nope", State.RUNNING),
        store.transition(good.execution.id, State.RUNNING),
        store.append_logs([LogLine(execution_id="nope", message="lost")]),
        store.append_logs([LogLine(execution_id=good.execution.id, message="kept")]),
        store.add_task_runs("nope", [NewTaskRun(task_id="t")]),
        store.transition_task_run(good.execution.id, "no-such-run", State.RUNNING),
        return_exceptions=True,
    )
    assert isinstance(results[0], StoreError) and "unknown execution" in str(results[0])
    assert results[1] is None
    assert isinstance(results[2], StoreError)
    assert results[3] is None
    assert isinstance(results[4], StoreError)
    assert isinstance(results[5], StoreError) and "unknown task run" in str(results[5])
    logs = await store.execution_logs(good.execution.id)
    assert [line.message for line in logs] == ["kept"]


def _at(seconds: int) -> dt.datetime:
    return dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC) + dt.timedelta(seconds=seconds)


async def test_an_execution_round_trips_exactly_for_replay(store: Store) -> None:
    flow = await store.save_flow("shop.orders", "order-alerts", "id: order-alerts\n")
    runs = (
        NewTaskRun(task_id="fetch", created_at=_at(1)),
        NewTaskRun(task_id="each", created_at=_at(2)),
        NewTaskRun(task_id="notify", created_at=_at(3), value="eu", iteration=0),
    )
    new = NewExecution(
        namespace="shop.orders",
        flow_id="order-alerts",
        flow_revision=flow.flow.revision,
        inputs={"threshold": 100, "tags": ["a", "b"], "ratio": 0.5},
        trigger={"topic": "orders", "partition": 3, "offset": 42, "value": {"total": 250}},
        labels={"team": "data"},
        dedupe_key="kafka:orders/3@42",
        original_id="orig-1",
        parent_id="parent-1",
        parent_task_run_id="parent-run-1",
        task_runs=(runs[0], runs[1]),
        created_at=_at(0),
    )
    created = await store.create_execution(new)
    execution_id = created.execution.id
    await store.add_task_runs(
        execution_id,
        [
            NewTaskRun(
                task_id=runs[2].task_id,
                id=runs[2].id,
                parent_task_run_id=runs[1].id,
                value=runs[2].value,
                iteration=runs[2].iteration,
                created_at=runs[2].created_at,
            )
        ],
    )
    await store.transition(execution_id, State.RUNNING, at=_at(10))
    boom = {"message": "connection reset", "type": "ConnectorError"}
    attempts = {
        runs[0].id: [
            Attempt(
                number=1,
                state=State.SUCCESS,
                started_at=_at(11),
                ended_at=_at(12),
                worker="w-1",
                node="node-a",
            )
        ],
        runs[1].id: [
            Attempt(
                number=1,
                state=State.FAILED,
                started_at=_at(13),
                ended_at=_at(14),
                worker="w-2",
                node="node-a",
                error=boom,
            ),
            Attempt(
                number=2,
                state=State.SUCCESS,
                started_at=_at(15),
                ended_at=_at(16),
                worker="w-3",
                node="node-b",
            ),
        ],
        runs[2].id: [Attempt(number=1, state=State.SUCCESS, started_at=_at(17), ended_at=_at(18))],
    }
    outputs: dict[str, dict[str, Any]] = {
        runs[0].id: {"rows": [{"id": 1}, {"id": 2}], "count": 2},
        runs[1].id: {"ok": True},
        runs[2].id: {"sent": "eu", "at": "2030-01-02T03:04:23+00:00"},
    }
    for run in runs:
        await store.transition_task_run(execution_id, run.id, State.RUNNING, at=_at(20))
        for attempt in attempts[run.id]:
            await store.record_attempt(execution_id, run.id, attempt)
        await store.set_outputs(execution_id, run.id, outputs[run.id])
        await store.transition_task_run(execution_id, run.id, State.SUCCESS, at=_at(30))
    lines = [
        LogLine(
            execution_id=execution_id,
            message=f"line {i}: ünïcode ✓",
            level=("INFO", "DEBUG", "WARN", "ERROR")[i % 4],
            task_run_id=runs[i % 3].id if i % 5 else None,
            attempt=1 if i % 5 else None,
            at=_at(40 + i),
        )
        for i in range(20)
    ]
    await asyncio.gather(store.append_logs(lines[:10]), store.append_logs(lines[10:]))
    await store.transition(execution_id, State.SUCCESS, at=_at(99), outputs={"result": 42})

    detail = await store.execution_detail(execution_id)
    assert detail is not None
    execution = detail.execution
    assert (execution.namespace, execution.flow_id, execution.flow_revision) == (
        new.namespace,
        new.flow_id,
        new.flow_revision,
    )
    assert execution.inputs == new.inputs
    assert execution.trigger == new.trigger
    assert execution.labels == new.labels
    assert (execution.original_id, execution.parent_id, execution.parent_task_run_id) == (
        "orig-1",
        "parent-1",
        "parent-run-1",
    )
    assert execution.dedupe_key == new.dedupe_key
    assert execution.outputs == {"result": 42}
    assert [(e.state, e.date) for e in execution.state_history] == [
        (State.CREATED, _at(0)),
        (State.RUNNING, _at(10)),
        (State.SUCCESS, _at(99)),
    ]
    assert execution.created_at == _at(0)
    assert execution.ended_at == _at(99)
    assert detail.flow == flow.flow

    assert [d.task_run.id for d in detail.task_runs] == [r.id for r in runs]
    by_id: dict[str, TaskRunDetail] = {d.task_run.id: d for d in detail.task_runs}
    for run in runs:
        got = by_id[run.id]
        assert got.task_run.task_id == run.task_id
        assert got.task_run.execution_id == execution_id
        assert got.task_run.created_at == run.created_at
        assert [(e.state, e.date) for e in got.task_run.state_history] == [
            (State.CREATED, run.created_at),
            (State.RUNNING, _at(20)),
            (State.SUCCESS, _at(30)),
        ]
        assert list(got.attempts) == attempts[run.id]
        assert got.outputs == outputs[run.id]
    notify = by_id[runs[2].id].task_run
    assert (notify.parent_task_run_id, notify.value, notify.iteration) == (runs[1].id, "eu", 0)

    assert [(line.seq > 0) for line in detail.logs] == [True] * 20
    assert [
        (line.message, line.level, line.task_run_id, line.attempt, line.at) for line in detail.logs
    ] == [(line.message, line.level, line.task_run_id, line.attempt, line.at) for line in lines]


async def test_logs_stream_with_a_since_cursor(store: Store) -> None:
    execution_id = (await store.create_execution(new_execution())).execution.id
    await store.append_logs([LogLine(execution_id=execution_id, message=f"m{i}") for i in range(5)])
    first = await store.execution_logs(execution_id, limit=3)
    assert [line.message for line in first] == ["m0", "m1", "m2"]
    rest = await store.execution_logs(execution_id, since=first[-1].seq)
    assert [line.message for line in rest] == ["m3", "m4"]
    assert await store.execution_logs(execution_id, since=rest[-1].seq) == []
    await store.append_logs(
        [
            LogLine(execution_id=execution_id, message="late", level="ERROR"),
            LogLine(execution_id=execution_id, message="noise", level="DEBUG"),
        ]
    )
    newer = await store.execution_logs(execution_id, since=rest[-1].seq)
    assert [line.message for line in newer] == ["late", "noise"]
    errors = await store.execution_logs(execution_id, min_level="WARN")
    assert [line.message for line in errors] == ["late"]


async def test_attempt_writes_merge_fields(store: Store) -> None:
    created = await store.create_execution(new_execution(task_ids=("t",)))
    execution_id = created.execution.id
    detail = await store.execution_detail(execution_id)
    assert detail is not None
    run_id = detail.task_runs[0].task_run.id
    await store.record_attempt(
        execution_id, run_id, Attempt(number=1, state=State.RUNNING, started_at=_at(1), worker="w")
    )
    await store.record_attempt(
        execution_id, run_id, Attempt(number=1, state=State.SUCCESS, ended_at=_at(2))
    )
    detail = await store.execution_detail(execution_id)
    assert detail is not None
    assert detail.task_runs[0].attempts == (
        Attempt(number=1, state=State.SUCCESS, started_at=_at(1), ended_at=_at(2), worker="w"),
    )


async def test_search_filters_and_paginates(store: Store) -> None:
    base = dt.datetime(2031, 5, 1, tzinfo=UTC)
    specs = [
        ("shop.orders", "alerts", {"team": "data"}, 0),
        ("shop.orders", "alerts", {"team": "web"}, 1),
        ("shop.orders.eu", "alerts", {"team": "data", "env": "prod"}, 2),
        ("shop.ordersx", "alerts", {"team": "data"}, 3),
        ("billing", "invoices", {"team": "data"}, 4),
    ]
    ids = []
    for namespace, flow_id, labels, minute in specs:
        result = await store.create_execution(
            new_execution(
                namespace=namespace,
                flow_id=flow_id,
                labels=labels,
                created_at=base + dt.timedelta(minutes=minute),
            )
        )
        ids.append(result.execution.id)
    await store.transition(ids[1], State.FAILED)

    page = await store.search_executions(namespace="shop.orders")
    assert [e.id for e in page.items] == [ids[2], ids[1], ids[0]]  # newest first, not ordersx
    assert page.total == 3
    page = await store.search_executions(labels={"team": "data"}, limit=2)
    assert [e.id for e in page.items] == [ids[4], ids[3]] and page.total == 4
    page = await store.search_executions(labels={"team": "data"}, limit=2, offset=2)
    assert [e.id for e in page.items] == [ids[2], ids[0]] and page.total == 4
    page = await store.search_executions(labels={"team": "data"}, limit=2, offset=10)
    assert page.items == () and page.total == 4
    page = await store.search_executions(states=[State.FAILED])
    assert [e.id for e in page.items] == [ids[1]]
    page = await store.search_executions(
        since=base + dt.timedelta(minutes=1), until=base + dt.timedelta(minutes=3)
    )
    assert [e.id for e in page.items] == [ids[2], ids[1]]
    page = await store.search_executions(flow_id="invoices", namespace="billing")
    assert [e.id for e in page.items] == [ids[4]]


async def test_flow_revisions_change_only_with_the_source(store: Store) -> None:
    v1 = "id: f\nnamespace: n\ntasks: []\n"
    v2 = "id: f\nnamespace: n\ntasks: []  # edited\n"
    first = await store.save_flow("n", "f", v1)
    same = await store.save_flow("n", "f", v1)
    second = await store.save_flow("n", "f", v2)
    assert (first.changed, same.changed, second.changed) == (True, False, True)
    assert (first.flow.revision, same.flow.revision, second.flow.revision) == (1, 1, 2)
    assert second.flow.source == v2
    assert (await store.get_flow("n", "f", 1)) == first.flow
    assert await store.delete_flow("n", "f")
    assert await store.get_flow("n", "f") is None
    deleted = await store.get_flow("n", "f", include_deleted=True)
    assert deleted is not None and deleted.deleted and deleted.revision == 3
    assert await store.list_flows("n") == []
    back = await store.save_flow("n", "f", v2)
    assert back.changed and back.flow.revision == 4
    assert [r.revision for r in await store.flow_revisions("n", "f")] == [1, 2, 3, 4]
    assert [f.flow_id for f in await store.list_flows("n")] == ["f"]


async def test_concurrent_saves_of_one_flow_get_distinct_revisions(store: Store) -> None:
    results = await asyncio.gather(*(store.save_flow("n", "f", f"v{i}") for i in range(8)))
    assert sorted(r.flow.revision for r in results) == list(range(1, 9))
