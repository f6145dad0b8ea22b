"""Leases and fencing: stale owners cannot write; expired leases change hands."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import asyncpg
import pytest

from actors._store import Attempt, LogLine, NewTaskRun, Store, TriggerState
from actors._store._ops import ReleaseLeaseOp, TransitionOp
from flows import StaleLeaseError, State, StoreError
from tests.polling import eventually

from ._factories import new_execution

pytestmark = pytest.mark.integration

MINUTE = dt.timedelta(minutes=1)
EXPIRED = dt.timedelta(seconds=-1)  # a TTL in the past: the lease is expired at once


async def test_a_stale_epoch_cannot_write_and_a_new_owner_takes_an_expired_lease(
    store: Store,
) -> None:
    created = await store.create_execution(
        new_execution(task_ids=("t",)), lease_owner="actor-a", lease_ttl=EXPIRED
    )
    old = created.lease
    assert old is not None and old.epoch == 1 and old.owner == "actor-a"
    execution_id = created.execution.id
    assert await store.take_execution_lease(execution_id, "actor-b", MINUTE) is not None

    before = await store.execution_detail(execution_id)
    assert before is not None
    task_run_id = before.task_runs[0].task_run.id
    writes = await asyncio.gather(
        store.transition(execution_id, State.RUNNING, lease=old),
        store.transition_task_run(execution_id, task_run_id, State.RUNNING, lease=old),
        store.record_attempt(
            execution_id, task_run_id, Attempt(number=1, state=State.RUNNING), lease=old
        ),
        store.set_outputs(execution_id, task_run_id, {"x": 1}, lease=old),
        store.add_task_runs(execution_id, [NewTaskRun(task_id="u")], lease=old),
        return_exceptions=True,
    )
    assert all(isinstance(w, StaleLeaseError) for w in writes), writes
    for refused in writes:  # the error carries the stale lease and who holds it now
        assert isinstance(refused, StaleLeaseError)
        assert refused.lease == old and refused.holder == "actor-b"
        assert refused.holder_epoch == 2
    with pytest.raises(StaleLeaseError) as renewing:
        await store.renew_lease(old, MINUTE)
    assert renewing.value.lease == old and "cannot renew" in str(renewing.value)
    assert not await store.release_lease(old)

    detail = await store.execution_detail(execution_id)
    assert detail is not None
    assert detail.execution.state is State.CREATED
    assert [d.task_run.task_id for d in detail.task_runs] == ["t"]
    assert detail.task_runs[0].attempts == () and detail.task_runs[0].outputs is None


async def test_the_current_owner_writes_renews_and_releases(store: Store) -> None:
    execution_id = (await store.create_execution(new_execution())).execution.id
    lease = await store.take_execution_lease(execution_id, "actor-a", MINUTE)
    assert lease is not None
    assert await store.take_execution_lease(execution_id, "actor-b", MINUTE) is None
    await store.transition(execution_id, State.RUNNING, lease=lease)
    renewed = await store.renew_lease(lease, 2 * MINUTE)
    assert renewed.epoch == lease.epoch and renewed.expires_at > lease.expires_at
    await store.append_logs([LogLine(execution_id=execution_id, message="still mine")])
    await store.transition(execution_id, State.SUCCESS, lease=renewed)
    assert await store.release_lease(renewed)
    taken = await store.take_execution_lease(execution_id, "actor-b", MINUTE)
    assert taken is not None and taken.epoch == lease.epoch + 1
    execution = await store.get_execution(execution_id)
    assert execution is not None and execution.state is State.SUCCESS


async def test_an_expired_lease_not_yet_taken_still_fences_correctly(store: Store) -> None:
    execution_id = (await store.create_execution(new_execution())).execution.id
    lease = await store.take_execution_lease(execution_id, "actor-a", EXPIRED)
    assert lease is not None
    # Nobody took it over: the holder's epoch is still the current one.
    await store.transition(execution_id, State.RUNNING, lease=lease)
    assert (await store.renew_lease(lease, MINUTE)).epoch == lease.epoch


async def test_renewing_many_answers_only_the_stale_leases(store: Store) -> None:
    """One statement renews every current lease and hands back only those taken since."""
    keys = [f"shop/many/t{i}" for i in range(4)]
    held = await store.take_leases("trigger", keys, "host-1", EXPIRED)
    assert [lease.key for lease in sorted(held, key=lambda lease: lease.key)] == keys
    mine = {lease.key: lease for lease in held}
    taken = await store.take_lease("trigger", keys[1], "host-2", MINUTE)
    assert taken is not None and taken.epoch == mine[keys[1]].epoch + 1
    released = await store.take_lease("trigger", keys[2], "host-1", EXPIRED)  # a later epoch
    assert released is not None and released.epoch == mine[keys[2]].epoch + 1

    ordered = [mine[key] for key in keys]
    stale = await store.renew_leases(ordered, MINUTE)
    # The very objects passed in, in order; expired-but-not-taken leases renewed.
    assert [id(lease) for lease in stale] == [id(mine[keys[1]]), id(mine[keys[2]])]
    for key in (keys[0], keys[3]):
        row = await store.get_lease("trigger", key)
        assert row is not None and row.owner == "host-1" and row.epoch == mine[key].epoch
        assert row.expires_at > dt.datetime.now(dt.UTC)
    row = await store.get_lease("trigger", keys[1])
    assert row is not None and row.owner == "host-2" and row.epoch == taken.epoch
    row = await store.get_lease("trigger", keys[2])  # the newer epoch was not renewed
    assert row is not None and row.epoch == released.epoch
    assert row.expires_at <= dt.datetime.now(dt.UTC)
    assert await store.renew_leases([], MINUTE) == []


async def test_a_lease_for_another_execution_is_refused(store: Store) -> None:
    a = (await store.create_execution(new_execution())).execution.id
    b = (await store.create_execution(new_execution())).execution.id
    lease = await store.take_execution_lease(a, "actor-a", MINUTE)
    assert lease is not None
    with pytest.raises(StoreError, match="used to write execution"):
        await store.transition(b, State.RUNNING, lease=lease)


async def test_expired_executions_are_found_for_recovery(store: Store) -> None:
    dead = await store.create_execution(new_execution(), lease_owner="a", lease_ttl=EXPIRED)
    alive = await store.create_execution(new_execution(), lease_owner="b", lease_ttl=MINUTE)
    done = await store.create_execution(new_execution(), lease_owner="c", lease_ttl=EXPIRED)
    await store.transition(done.execution.id, State.SUCCESS)
    never = await store.create_execution(
        new_execution(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    )
    found = [e.id for e in await store.find_expired_executions()]
    assert found == [dead.execution.id]
    found = [e.id for e in await store.find_expired_executions(unleased_after=MINUTE)]
    assert sorted(found) == sorted([dead.execution.id, never.execution.id])
    assert alive.execution.id not in found


async def test_trigger_state_writes_are_fenced_by_a_trigger_lease(store: Store) -> None:
    old = await store.take_lease("trigger", "shop/alerts/orders", "host-1", EXPIRED)
    new = await store.take_lease("trigger", "shop/alerts/orders", "host-2", MINUTE)
    assert old is not None and new is not None and new.epoch == old.epoch + 1
    state = TriggerState(namespace="shop", flow_id="alerts", trigger_id="orders", cursor={"0": 10})
    with pytest.raises(StaleLeaseError):
        await store.save_trigger_state(state, lease=old)
    await store.save_trigger_state(state, lease=new)
    saved = await store.get_trigger_state("shop", "alerts", "orders")
    assert saved is not None and saved.cursor == {"0": 10}


async def test_a_release_enqueued_with_the_last_writes_lands_in_their_batch(store: Store) -> None:
    """Write-behind callers release with their final transition: one batch, in order."""
    execution_id = (await store.create_execution(new_execution())).execution.id
    lease = await store.take_execution_lease(execution_id, "actor-a", MINUTE)
    assert lease is not None
    final = store.enqueue(TransitionOp.of(execution_id, State.SUCCESS, lease=lease))
    stale = store.enqueue(ReleaseLeaseOp(dataclasses.replace(lease, epoch=lease.epoch - 1)))
    released = store.enqueue(ReleaseLeaseOp(lease))
    assert await final is None
    assert await released is True
    assert await stale is False  # a former epoch: not ours to release
    taken = await store.take_execution_lease(execution_id, "actor-b", MINUTE)
    assert taken is not None and taken.epoch == lease.epoch + 1
    execution = await store.get_execution(execution_id)
    assert execution is not None and execution.state is State.SUCCESS


async def test_writes_fail_as_store_errors_then_land_after_the_database_cuts_connections(
    store: Store,
) -> None:
    execution_id = (await store.create_execution(new_execution())).execution.id
    admin = await asyncpg.connect(store.dsn)
    try:
        cut = await admin.fetchval(
            """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()"""
        )
        assert cut >= 1

        async def landed() -> (
            bool
        ):  # a write on a cut connection fails, precisely; a later one lands
            try:
                await store.transition(execution_id, State.SUCCESS)
            except StoreError as exc:
                assert "connection" in str(exc)
                return False
            return True

        await eventually(landed, 10, what="a write to land after the cut", interval=0)
        state = await admin.fetchval("SELECT state FROM executions WHERE id = $1", execution_id)
        assert state == "SUCCESS"
    finally:
        await admin.close()
