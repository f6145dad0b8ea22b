"""Flow concurrency limits: admit an execution only while fewer than `limit` are running."""

from __future__ import annotations

import datetime as dt

from flows import State

from . import _rows
from ._db import Connection

ACTIVE_STATES = (State.RUNNING, State.PAUSED, State.RETRYING, State.KILLING)
"""States that hold one of the flow's concurrency slots."""


async def admit(
    conn: Connection,
    execution_id: str,
    namespace: str,
    flow_id: str,
    limit: int,
    otherwise: State,
) -> State:
    """Move the execution to RUNNING if a slot is free, else to `otherwise` (QUEUED, ...).

    One transaction, serialized per flow by an advisory lock, so two admissions never
    both take the last slot.

    Returns:
        The state the execution is now in (RUNNING, or `otherwise`).
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", f"{namespace}.{flow_id}"
        )
        running = await conn.fetchval(
            """SELECT count(*) FROM executions
                WHERE namespace = $1 AND flow_id = $2 AND id <> $3
                  AND state = ANY($4::text[])""",
            namespace,
            flow_id,
            execution_id,
            [str(s) for s in ACTIVE_STATES],
        )
        state = State.RUNNING if running < limit else otherwise
        now = dt.datetime.now(dt.UTC)
        await conn.execute(
            """UPDATE executions
                  SET state = $2,
                      state_history = CASE WHEN state = $2 THEN state_history
                                           ELSE state_history || $3::text::jsonb END,
                      updated_at = $4,
                      ended_at = $5
                WHERE id = $1""",
            execution_id,
            str(state),
            _rows.history_text([(state, now)]),
            now,
            now if state.terminal else None,
        )
        return state


async def oldest_queued(conn: Connection, namespace: str, flow_id: str) -> str | None:
    """The id of the flow's oldest QUEUED execution, if any."""
    value: str | None = await conn.fetchval(
        """SELECT id FROM executions
            WHERE namespace = $1 AND flow_id = $2 AND state = 'QUEUED'
            ORDER BY created_at LIMIT 1""",
        namespace,
        flow_id,
    )
    return value
