"""Batched execution creates: one statement, idempotent on the dedupe key.

Executions, their initial task runs and their owner leases go into the database in a
single statement (data-modifying CTEs), so they become visible together or not at all,
even outside an explicit transaction. ``ON CONFLICT DO NOTHING`` skips redeliveries
(same dedupe key) and retries (same execution id); the executions that already existed
are then read back.

The statement returns only the ids it inserted and their leases' expiry: a new
execution is built from what was sent (`_created`), as the row would have read back,
without Postgres turning four ``jsonb`` columns back into text for every create and the
client parsing them again from the wire.
"""

from __future__ import annotations

from typing import Any

from flows import StoreError

from . import _rows
from ._db import Connection
from ._json import loads
from ._ops import CreateOp, Outcome
from ._records import EXECUTION_LEASE, CreateResult, Execution, Lease, StateEntry
from ._updates import ended_at, task_run_arrays

_TASK_RUNS_UNNEST = """unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
           $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
           WITH ORDINALITY AS r(id, execution_id, task_id, parent_task_run_id, value,
                                iteration, state, history, created_at, ended_at, ord)"""

_INSERT_TASK_RUNS = """INSERT INTO task_runs (id, execution_id, task_id, parent_task_run_id,
               value, iteration, state, state_history, created_at, updated_at, ended_at)
           SELECT r.id, r.execution_id, r.task_id, r.parent_task_run_id, r.value, r.iteration,
                  r.state, r.history::jsonb, r.created_at, r.created_at, r.ended_at"""

_CREATE = f"""
WITH e AS (
    SELECT * FROM unnest($11::text[], $12::text[], $13::text[], $14::int[], $15::text[],
                         $16::text[], $17::text[], $18::text[], $19::text[], $20::text[],
                         $21::text[], $22::text[], $23::text[], $24::timestamptz[],
                         $25::timestamptz[])
        AS e(id, namespace, flow_id, flow_revision, state, history, inputs, trigger, labels,
             original_id, parent_id, parent_task_run_id, dedupe_key, created_at, ended_at)),
ins AS (
    INSERT INTO executions (id, namespace, flow_id, flow_revision, state, state_history,
        inputs, trigger, labels, original_id, parent_id, parent_task_run_id, dedupe_key,
        created_at, updated_at, ended_at)
    SELECT id, namespace, flow_id, flow_revision, state, history::jsonb, inputs::jsonb,
           trigger::jsonb, labels::jsonb, original_id, parent_id, parent_task_run_id,
           dedupe_key, created_at, created_at, ended_at FROM e
    ON CONFLICT DO NOTHING  -- a redelivery (same dedupe key) or a retry (same id)
    RETURNING id),
runs AS (
    {_INSERT_TASK_RUNS}
    FROM {_TASK_RUNS_UNNEST}
    WHERE r.execution_id IN (SELECT id FROM ins)
    ORDER BY r.ord),
owner AS (
    INSERT INTO leases (kind, key, owner, epoch, expires_at)
    SELECT $26, l.key, l.owner, 1, now() + l.ttl
    FROM unnest($27::text[], $28::text[], $29::interval[]) AS l(key, owner, ttl)
    WHERE l.key IN (SELECT id FROM ins)
    RETURNING key, owner, epoch, expires_at)
SELECT ins.id, owner.owner AS lease_owner, owner.epoch AS lease_epoch,
       owner.expires_at AS lease_expires_at
FROM ins LEFT JOIN owner ON owner.key = ins.id"""  # noqa: S608 - constant fragments only


def _execution_arrays(ops: list[CreateOp]) -> list[list[Any]]:
    """The 15 parameter arrays of the executions ``unnest`` in `_CREATE`."""
    return [
        [op.new.id for op in ops],
        [op.new.namespace for op in ops],
        [op.new.flow_id for op in ops],
        [op.new.flow_revision for op in ops],
        [str(op.new.state) for op in ops],
        [_rows.history_text([(op.new.state, op.created_at)]) for op in ops],
        [op.inputs for op in ops],
        [op.trigger for op in ops],
        [op.labels for op in ops],
        [op.new.original_id for op in ops],
        [op.new.parent_id for op in ops],
        [op.new.parent_task_run_id for op in ops],
        [op.new.dedupe_key for op in ops],
        [op.created_at for op in ops],
        [ended_at(op.new.state, op.created_at) for op in ops],
    ]


def _leaders(
    items: list[tuple[int, CreateOp]],
) -> tuple[list[tuple[int, CreateOp]], list[tuple[int, int]]]:
    """One leader per dedupe key in the batch; followers are (index, leader index)."""
    leaders: list[tuple[int, CreateOp]] = []
    followers: list[tuple[int, int]] = []
    by_key: dict[str, int] = {}
    for index, op in items:
        key = op.new.dedupe_key
        if key is None:
            leaders.append((index, op))
        elif key in by_key:
            followers.append((index, by_key[key]))
        else:
            by_key[key] = index
            leaders.append((index, op))
    return leaders, followers


async def create_executions(
    conn: Connection, items: list[tuple[int, CreateOp]], outcomes: list[Outcome]
) -> None:
    """Create executions (with task runs and leases); set each op's `CreateResult`."""
    if not items:
        return
    leaders, followers = _leaders(items)
    ops = [op for _, op in leaders]
    with_lease = [op for op in ops if op.lease_owner is not None]
    rows = await conn.fetch(
        _CREATE,
        *task_run_arrays([(op.new.id, run) for op in ops for run in op.new.task_runs]),
        *_execution_arrays(ops),
        EXECUTION_LEASE,
        [op.new.id for op in with_lease],
        [op.lease_owner for op in with_lease],
        [op.lease_ttl for op in with_lease],
    )
    inserted: dict[str, Lease | None] = {}
    for row in rows:
        lease = None
        if row["lease_owner"] is not None:
            lease = Lease(
                EXECUTION_LEASE,
                row["id"],
                row["lease_owner"],
                row["lease_epoch"],
                row["lease_expires_at"],
            )
        inserted[row["id"]] = lease
    existing = await _existing(conn, [op for op in ops if op.new.id not in inserted])
    for index, op in leaders:
        if op.new.id in inserted:
            outcomes[index] = CreateResult(_created(op), True, inserted[op.new.id])
        elif (found := existing.get(op.new.dedupe_key or op.new.id)) is not None:
            outcomes[index] = CreateResult(found, created=False)
        else:
            outcomes[index] = StoreError(f"execution {op.new.id} was neither created nor found")
    for index, leader in followers:
        result = outcomes[leader]
        if isinstance(result, CreateResult):
            outcomes[index] = CreateResult(result.execution, created=False)
        else:
            outcomes[index] = StoreError(f"create with the same dedupe key failed: {result}")


def _created(op: CreateOp) -> Execution:
    """The execution `op` inserted, as `_rows.execution` would read its row back.

    The JSON columns are parsed from the text sent, so values go through the same JSON
    conversions (datetimes, bytes, tuples) as when read from the database.
    """
    new = op.new
    return Execution(
        id=new.id,
        namespace=new.namespace,
        flow_id=new.flow_id,
        flow_revision=new.flow_revision,
        state=new.state,
        state_history=(StateEntry(new.state, op.created_at),),
        inputs=loads(op.inputs),
        trigger=None if op.trigger is None else loads(op.trigger),
        labels=loads(op.labels),
        outputs=None,
        original_id=new.original_id,
        parent_id=new.parent_id,
        parent_task_run_id=new.parent_task_run_id,
        dedupe_key=new.dedupe_key,
        created_at=op.created_at,
        updated_at=op.created_at,
        ended_at=ended_at(new.state, op.created_at),
    )


async def _existing(conn: Connection, ops: list[CreateOp]) -> dict[str, Execution]:
    """The executions that made creates conflict, by dedupe key (or id, without a key).

    A new statement, so it sees rows committed by others after the insert started.
    """
    if not ops:
        return {}
    keys = [op.new.dedupe_key for op in ops if op.new.dedupe_key is not None]
    ids = [op.new.id for op in ops if op.new.dedupe_key is None]
    rows = await conn.fetch(
        "SELECT * FROM executions WHERE dedupe_key = ANY($1::text[]) OR id = ANY($2::text[])",
        keys,
        ids,
    )
    found: dict[str, Execution] = {}
    for row in rows:
        execution = _rows.execution(row)
        found[execution.dedupe_key or execution.id] = execution
    return found
