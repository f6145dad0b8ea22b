"""Deleting ended executions older than a date (rows, task runs, attempts, outputs, logs)."""

from __future__ import annotations

import datetime as dt

from flows import TERMINAL_STATES

from ._db import Connection

_PURGE = """
DELETE FROM executions
WHERE created_at < $1
  AND state = ANY($2::text[])
  AND ($3::text IS NULL OR namespace = $3 OR namespace LIKE $3 || '.%')
  AND ($4::text IS NULL OR flow_id = $4)
RETURNING id, namespace, flow_id
"""


async def purge(
    conn: Connection, before: dt.datetime, namespace: str | None, flow_id: str | None
) -> list[tuple[str, str, str]]:
    """Delete ended executions created before `before`; ``(id, namespace, flow)`` of each.

    Task runs, attempts, outputs and logs go with them (foreign keys cascade).
    """
    states = sorted(s.value for s in TERMINAL_STATES)
    rows = await conn.fetch(_PURGE, before, states, namespace, flow_id)
    return [(r["id"], r["namespace"], r["flow_id"]) for r in rows]
