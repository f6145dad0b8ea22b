"""Kestrel's Postgres store: schema and migrations, typed records, batched writes, reads.

A plain async library (no Ray): every actor that writes state opens its own `Store`, so
no write takes an extra hop.
"""

from flows import format_duration, parse_duration

from ._batcher import Batcher
from ._changes import CONTROL_CHANNEL, FLOW_CHANNEL, FlowChange, FlowChanges
from ._ids import new_id
from ._kv import encode_value
from ._migrations import Migration, apply_migrations, load_migrations
from ._records import (
    EXECUTION_LEASE,
    Attempt,
    CreateResult,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowRevision,
    FlowSaveResult,
    KVEntry,
    KVType,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    Page,
    StateEntry,
    TaskRun,
    TaskRunDetail,
    TriggerState,
)
from ._store import Store

__all__ = [
    "CONTROL_CHANNEL",
    "EXECUTION_LEASE",
    "FLOW_CHANNEL",
    "Attempt",
    "Batcher",
    "CreateResult",
    "DeadLetter",
    "Execution",
    "ExecutionDetail",
    "FlowChange",
    "FlowChanges",
    "FlowRevision",
    "FlowSaveResult",
    "KVEntry",
    "KVType",
    "Lease",
    "LogLine",
    "Migration",
    "NewExecution",
    "NewTaskRun",
    "Page",
    "StateEntry",
    "Store",
    "TaskRun",
    "TaskRunDetail",
    "TriggerState",
    "apply_migrations",
    "encode_value",
    "format_duration",
    "load_migrations",
    "new_id",
    "parse_duration",
]
