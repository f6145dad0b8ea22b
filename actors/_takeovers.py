"""Fail an execution that keeps losing its owner instead of taking down owner after owner.

An execution whose lease is taken over again and again (its owner dies or stalls past the
lease, e.g. a render that outlives it) would otherwise be resumed forever, taking down
or stalling each new owner. After `max_takeovers()` takeovers the next owner fails it
with an error log that says why.
"""

from __future__ import annotations

import os

from flows import TERMINAL_STATES, State

from ._store._records import ExecutionDetail, Lease, LogLine
from ._store._store import Store

DEFAULT_MAX_TAKEOVERS = 5
MAX_TAKEOVERS_ENV = "KESTREL_MAX_TAKEOVERS"


def max_takeovers() -> int:
    """How many takeovers an execution survives (``KESTREL_MAX_TAKEOVERS``, default 5)."""
    raw = os.environ.get(MAX_TAKEOVERS_ENV, "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_MAX_TAKEOVERS
    return value if value >= 0 else DEFAULT_MAX_TAKEOVERS


def too_many_takeovers(lease: Lease, limit: int) -> bool:
    """Whether ``lease`` was taken over more than ``limit`` times."""
    return lease.takeovers > limit


async def fail_lost_execution(
    store: Store, detail: ExecutionDetail, lease: Lease, limit: int
) -> None:
    """Fail the execution and its unfinished task runs, log why, and release the lease."""
    execution_id = detail.execution.id
    message = (
        f"execution failed: its owner was lost {lease.takeovers} times (lease expired "
        f"without release); the limit is {MAX_TAKEOVERS_ENV}={limit}. A task "
        "or render that outlives its lease keeps losing its owner."
    )
    for run in detail.task_runs:
        if run.task_run.state not in TERMINAL_STATES:
            await store.transition_task_run(
                execution_id, run.task_run.id, State.FAILED, lease=lease
            )
    await store.append_logs([LogLine(execution_id=execution_id, message=message, level="ERROR")])
    await store.transition(execution_id, State.FAILED, lease=lease)
    await store.release_lease(lease)
