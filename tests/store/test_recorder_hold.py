"""`StoreRecorder` holds a run's changes for a moment, then hands them over in order.

The hold keeps the first attempt's RUNNING writes off the two cores while the worker
starts the task body (see `StoreRecorder`); these tests check what the hold must not
change: the order, `flush`, and that held changes reach the store by themselves.
"""

from __future__ import annotations

import datetime as dt

import pytest
from asyncpg.connection import LoggedQuery

from actors._recorders import StoreRecorder
from actors._store import LogLine, Store
from flows import State
from tests.polling import eventually

from ._factories import new_execution

pytestmark = pytest.mark.integration

MINUTE = dt.timedelta(minutes=1)
ONE_CONNECTION = {"min_connections": 1, "max_connections": 1}


async def _recorder(store: Store, hold_s: float) -> tuple[StoreRecorder, str]:
    created = await store.create_execution(new_execution(), lease_owner="me", lease_ttl=MINUTE)
    assert created.lease is not None
    execution_id = created.execution.id
    return StoreRecorder(store, execution_id, created.lease, hold_s=hold_s), execution_id


def _record_run(recorder: StoreRecorder, execution_id: str) -> None:
    at = dt.datetime.now(dt.UTC)
    recorder.execution_state(State.RUNNING, at, None)
    recorder.log(LogLine(execution_id=execution_id, message="working"))
    recorder.execution_state(State.SUCCESS, at + dt.timedelta(seconds=1), {"n": 1})


async def test_held_changes_wait_for_flush_then_land_in_order_in_one_statement(
    fresh_database: str,
) -> None:
    queries: list[LoggedQuery] = []
    async with Store(fresh_database, **ONE_CONNECTION, query_logger=queries.append) as store:
        recorder, execution_id = await _recorder(store, hold_s=3600)
        items = store.batcher.items
        _record_run(recorder, execution_id)
        found = await store.get_execution(execution_id)  # the loop turns: nothing written
        assert found is not None and found.state is State.CREATED
        assert store.batcher.items == items
        queries.clear()

        await recorder.flush()

        # One history statement (asyncpg may introspect types first, on a new connection).
        assert sum("kestrel_write_history" in q.query for q in queries) == 1
        detail = await store.execution_detail(execution_id)
        assert detail is not None
        assert [e.state for e in detail.execution.state_history] == [
            State.CREATED,
            State.RUNNING,
            State.SUCCESS,
        ]
        assert detail.execution.outputs == {"n": 1}
        assert [line.message for line in detail.logs] == ["working"]


async def test_held_changes_reach_the_store_by_themselves(fresh_database: str) -> None:
    async with Store(fresh_database) as store:
        recorder, execution_id = await _recorder(store, hold_s=0.005)
        _record_run(recorder, execution_id)

        async def ended() -> bool:
            found = await store.get_execution(execution_id)
            return found is not None and found.state is State.SUCCESS

        await eventually(ended, what="the held changes written without a flush")


async def test_release_hands_over_at_once_and_no_hold_hands_each(fresh_database: str) -> None:
    async with Store(fresh_database) as store:
        held, held_id = await _recorder(store, hold_s=3600)
        items = store.batcher.items
        _record_run(held, held_id)
        held.release()
        held.release()  # idempotent
        await eventually(lambda: store.batcher.items == items + 3, what="3 writes handed over")

        direct, direct_id = await _recorder(store, hold_s=0)
        items = store.batcher.items
        _record_run(direct, direct_id)
        await eventually(lambda: store.batcher.items == items + 3, what="3 writes handed over")
        await direct.flush()
