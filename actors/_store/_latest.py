"""The latest execution of each flow (for flow lists: "how did it go last time?")."""

from __future__ import annotations

from flows import State

from ._db import Connection
from ._flows import like_prefix


async def last_states(
    conn: Connection, namespace: str | None = None
) -> dict[tuple[str, str], State]:
    """``(namespace, flow_id)`` → the state of the flow's newest execution (live flows)."""
    rows = await conn.fetch(
        """SELECT f.namespace, f.flow_id, e.state FROM flows f
           CROSS JOIN LATERAL (
               SELECT state FROM executions
               WHERE namespace = f.namespace AND flow_id = f.flow_id
               ORDER BY created_at DESC LIMIT 1) e
           WHERE NOT f.deleted
             AND ($1::text IS NULL OR f.namespace = $1 OR f.namespace LIKE $2)""",
        namespace,
        None if namespace is None else like_prefix(namespace),
    )
    return {(row["namespace"], row["flow_id"]): State(row["state"]) for row in rows}
