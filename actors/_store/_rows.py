"""Database rows to typed records, and state histories to and from JSON."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import asyncpg

from flows import State

from ._kv import decode_value
from ._records import (
    Attempt,
    DeadLetter,
    Execution,
    FlowRevision,
    KVEntry,
    KVType,
    Lease,
    LogLine,
    StateEntry,
    TaskRun,
    TriggerState,
)


def history_text(entries: Iterable[tuple[State, dt.datetime]]) -> str:
    """A state history as stored, ``[{"state": ..., "date": ISO-8601}, ...]``, as JSON text.

    Written directly, not through the JSON encoder: nothing in it needs escaping. A
    state is one of `State`'s upper-case names and a date's ISO-8601 form holds only
    digits, ``-``, ``:``, ``.``, ``+`` and ``T``; the write path builds one per row written.
    """
    items = ",".join(
        f'{{"state":"{state}","date":"{date.isoformat()}"}}' for state, date in entries
    )
    return f"[{items}]"


def _history(raw: Any) -> tuple[StateEntry, ...]:
    return tuple(
        StateEntry(State(item["state"]), dt.datetime.fromisoformat(item["date"]))
        for item in raw or ()
    )


def execution(row: asyncpg.Record) -> Execution:
    """An `Execution` from an ``executions`` row (extra columns are ignored)."""
    return Execution(
        id=row["id"],
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        flow_revision=row["flow_revision"],
        state=State(row["state"]),
        state_history=_history(row["state_history"]),
        inputs=row["inputs"],
        trigger=row["trigger"],
        labels=row["labels"],
        outputs=row["outputs"],
        original_id=row["original_id"],
        parent_id=row["parent_id"],
        parent_task_run_id=row["parent_task_run_id"],
        dedupe_key=row["dedupe_key"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
    )


def task_run(row: asyncpg.Record) -> TaskRun:
    """A `TaskRun` from a ``task_runs`` row."""
    return TaskRun(
        id=row["id"],
        execution_id=row["execution_id"],
        task_id=row["task_id"],
        parent_task_run_id=row["parent_task_run_id"],
        value=row["value"],
        iteration=row["iteration"],
        state=State(row["state"]),
        state_history=_history(row["state_history"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        ended_at=row["ended_at"],
    )


def attempt(row: asyncpg.Record) -> Attempt:
    """An `Attempt` from a ``task_run_attempts`` row."""
    return Attempt(
        number=row["attempt"],
        state=State(row["state"]),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        worker=row["worker"],
        node=row["node"],
        error=row["error"],
    )


def log_line(row: asyncpg.Record) -> LogLine:
    """A `LogLine` from a ``logs`` row."""
    return LogLine(
        execution_id=row["execution_id"],
        message=row["message"],
        level=row["level"],
        task_run_id=row["task_run_id"],
        attempt=row["attempt"],
        at=row["at"],
        seq=row["seq"],
    )


def flow_revision(row: asyncpg.Record) -> FlowRevision:
    """A `FlowRevision` from a ``flows`` or ``flow_revisions`` row."""
    return FlowRevision(
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        revision=row["revision"],
        checksum=row["checksum"],
        source=row["source"],
        deleted=row["deleted"],
        created_at=row["created_at"],
    )


def kv_entry(row: asyncpg.Record) -> KVEntry:
    """A `KVEntry` from a ``kv`` row."""
    return KVEntry(
        namespace=row["namespace"],
        key=row["key"],
        type=KVType(row["type"]),
        value=decode_value(row["type"], row["value"]),
        expires_at=row["expires_at"],
        updated_at=row["updated_at"],
    )


def trigger_state(row: asyncpg.Record) -> TriggerState:
    """A `TriggerState` from a ``trigger_states`` row."""
    return TriggerState(
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        trigger_id=row["trigger_id"],
        cursor=row["cursor"],
        status=row["status"],
        last_event_at=row["last_event_at"],
        last_error=row["last_error"],
        updated_at=row["updated_at"],
    )


def dead_letter(row: asyncpg.Record) -> DeadLetter:
    """A `DeadLetter` from a ``dead_letters`` row."""
    return DeadLetter(
        id=row["id"],
        source=row["source"],
        payload=bytes(row["payload"]),
        reason=row["reason"],
        attempts=row["attempts"],
        metadata=row["metadata"],
        namespace=row["namespace"],
        flow_id=row["flow_id"],
        trigger_id=row["trigger_id"],
        created_at=row["created_at"],
    )


def lease(row: asyncpg.Record) -> Lease:
    """A `Lease` from a ``leases`` row."""
    return Lease(
        kind=row["kind"],
        key=row["key"],
        owner=row["owner"],
        epoch=row["epoch"],
        expires_at=row["expires_at"],
        takeovers=row.get("takeovers", 0),
    )
