"""Triggers switched off by a user: one row per disabled trigger, outliving restarts."""

from __future__ import annotations

from ._db import Connection


async def set_disabled(
    conn: Connection, namespace: str, flow_id: str, trigger_id: str, disabled: bool
) -> None:
    """Record that a trigger is disabled (or enabled again)."""
    if disabled:
        await conn.execute(
            """INSERT INTO disabled_triggers (namespace, flow_id, trigger_id)
               VALUES ($1, $2, $3) ON CONFLICT DO NOTHING""",
            namespace,
            flow_id,
            trigger_id,
        )
    else:
        await conn.execute(
            """DELETE FROM disabled_triggers
               WHERE namespace = $1 AND flow_id = $2 AND trigger_id = $3""",
            namespace,
            flow_id,
            trigger_id,
        )


async def disabled(
    conn: Connection, namespace: str | None = None, flow_id: str | None = None
) -> set[tuple[str, str, str]]:
    """``(namespace, flow_id, trigger_id)`` of the disabled triggers (of one flow if given)."""
    rows = await conn.fetch(
        """SELECT namespace, flow_id, trigger_id FROM disabled_triggers
           WHERE ($1::text IS NULL OR namespace = $1) AND ($2::text IS NULL OR flow_id = $2)""",
        namespace,
        flow_id,
    )
    return {(row["namespace"], row["flow_id"], row["trigger_id"]) for row in rows}
