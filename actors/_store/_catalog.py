"""The store's catalog: flow revisions, trigger states and switches, dead letters.

What the API and the listener hosts read and change outside the event path; one
statement each on the pool.
"""

from __future__ import annotations

from . import _controls, _flows, _rows
from ._connections import Connections
from ._records import DeadLetter, FlowRevision, FlowSaveResult, TriggerState


class Catalog:
    """Flows (saved verbatim, revisioned), trigger states and dead letters.

    Args:
        connections: The store's pool.
    """

    def __init__(self, connections: Connections) -> None:
        self._conn = connections.conn

    # ---- flows --------------------------------------------------------------------------

    async def save_flow(self, namespace: str, flow_id: str, source: str) -> FlowSaveResult:
        """Save a flow's YAML source verbatim; a new revision only when it changed."""
        async with self._conn() as conn:
            return await _flows.save(conn, namespace, flow_id, source)

    async def get_flow(
        self,
        namespace: str,
        flow_id: str,
        revision: int | None = None,
        *,
        include_deleted: bool = False,
    ) -> FlowRevision | None:
        """A flow revision: the current one, or a given number."""
        async with self._conn() as conn:
            return await _flows.get(
                conn, namespace, flow_id, revision, include_deleted=include_deleted
            )

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRevision]:
        """Every revision of a flow, oldest first (deletions included)."""
        async with self._conn() as conn:
            return await _flows.revisions(conn, namespace, flow_id)

    async def list_flows(self, namespace: str | None = None) -> list[FlowRevision]:
        """The current revision of every live flow (under ``namespace`` when given)."""
        async with self._conn() as conn:
            return await _flows.latest_all(conn, namespace)

    async def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Soft-delete a flow (recorded as a revision); False if absent or deleted."""
        async with self._conn() as conn:
            return await _flows.delete(conn, namespace, flow_id)

    # ---- triggers -----------------------------------------------------------------------

    async def get_trigger_state(
        self, namespace: str, flow_id: str, trigger_id: str
    ) -> TriggerState | None:
        """A trigger's saved state, or None."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """SELECT * FROM trigger_states
                   WHERE namespace = $1 AND flow_id = $2 AND trigger_id = $3""",
                namespace,
                flow_id,
                trigger_id,
            )
        return None if row is None else _rows.trigger_state(row)

    async def list_trigger_states(
        self, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        """Saved trigger states, optionally of one namespace and/or flow."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM trigger_states
                   WHERE ($1::text IS NULL OR namespace = $1)
                     AND ($2::text IS NULL OR flow_id = $2)
                   ORDER BY namespace, flow_id, trigger_id""",
                namespace,
                flow_id,
            )
        return [_rows.trigger_state(row) for row in rows]

    async def set_trigger_disabled(
        self, namespace: str, flow_id: str, trigger_id: str, disabled: bool
    ) -> None:
        """Switch a trigger off (or on again) durably; its listener host acts on it."""
        async with self._conn() as conn:
            await _controls.set_disabled(conn, namespace, flow_id, trigger_id, disabled)

    async def disabled_triggers(
        self, namespace: str | None = None, flow_id: str | None = None
    ) -> set[tuple[str, str, str]]:
        """``(namespace, flow_id, trigger_id)`` of the triggers switched off by a user."""
        async with self._conn() as conn:
            return await _controls.disabled(conn, namespace, flow_id)

    # ---- dead letters -------------------------------------------------------------------

    async def write_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        """Keep a refused message verbatim with its reason; returns it as stored."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """INSERT INTO dead_letters (id, source, namespace, flow_id, trigger_id,
                        payload, metadata, reason, attempts)
                    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
                    RETURNING *""",
                letter.id,
                letter.source,
                letter.namespace,
                letter.flow_id,
                letter.trigger_id,
                letter.payload,
                letter.metadata,
                letter.reason,
                letter.attempts,
            )
        assert row is not None
        return _rows.dead_letter(row)

    async def list_dead_letters(
        self,
        *,
        source: str | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, newest first, filtered by source and/or flow."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM dead_letters
                    WHERE ($1::text IS NULL OR source = $1)
                      AND ($2::text IS NULL OR namespace = $2)
                      AND ($3::text IS NULL OR flow_id = $3)
                    ORDER BY created_at DESC, id LIMIT $4""",
                source,
                namespace,
                flow_id,
                limit,
            )
        return [_rows.dead_letter(row) for row in rows]

    async def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        """The dead letter with this id, or None."""
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)
        return None if row is None else _rows.dead_letter(row)

    async def delete_dead_letter(self, letter_id: str) -> bool:
        """Delete a dead letter; False when there was none."""
        async with self._conn() as conn:
            done = await conn.execute("DELETE FROM dead_letters WHERE id = $1", letter_id)
        return bool(done.endswith(" 1"))
