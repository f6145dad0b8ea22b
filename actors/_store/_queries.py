"""The store's execution reads: single statements on the pool, never batched.

Also the two maintenance statements over executions (`purge_executions`, and the
per-minute counts the dashboard draws).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence

from flows import State

from . import _latest, _purge, _reads
from ._connections import Connections
from ._records import Execution, ExecutionDetail, LogLine, Page


class Queries:
    """Reads of executions, their logs and what replay needs.

    Args:
        connections: The store's pool.
    """

    def __init__(self, connections: Connections) -> None:
        self._conn = connections.conn

    async def get_execution(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None."""
        async with self._conn() as conn:
            return await _reads.get_execution(conn, execution_id)

    async def get_execution_by_dedupe_key(self, dedupe_key: str) -> Execution | None:
        """The execution created from this dedupe key, or None."""
        async with self._conn() as conn:
            return await _reads.by_dedupe_key(conn, dedupe_key)

    async def executions_by_dedupe_keys(self, dedupe_keys: Sequence[str]) -> dict[str, str]:
        """Dedupe key → id of the execution created under it, for those that exist."""
        if not dedupe_keys:
            return {}
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT dedupe_key, id FROM executions WHERE dedupe_key = ANY($1::text[])",
                list(dedupe_keys),
            )
        return {row["dedupe_key"]: row["id"] for row in rows}

    async def search_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Collection[State] | None = None,
        labels: Mapping[str, str] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Execution]:
        """Search executions, newest first; ``Page.total`` counts every match.

        Args:
            namespace: This namespace and those below it.
            flow_id: Exact flow id.
            states: Any of these current states.
            labels: All these labels, with these values.
            since: Created at or after.
            until: Created before.
            limit: Page size.
            offset: Matches to skip.
        """
        async with self._conn() as conn:
            return await _reads.search(
                conn,
                namespace=namespace,
                flow_id=flow_id,
                states=states,
                labels=labels,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )

    async def execution_logs(
        self,
        execution_id: str,
        *,
        since: int = 0,
        limit: int | None = 1000,
        min_level: str | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        """Log lines with ``seq > since``, in order; pass the last ``seq`` to stream on."""
        async with self._conn() as conn:
            return await _reads.logs(
                conn,
                execution_id,
                since=since,
                limit=limit,
                min_level=min_level,
                task_run_id=task_run_id,
            )

    async def execution_detail(self, execution_id: str) -> ExecutionDetail | None:
        """Everything recorded about an execution, read consistently: what replay needs."""
        async with self._conn() as conn:
            return await _reads.detail(conn, execution_id)

    async def find_expired_executions(
        self, *, limit: int = 100, unleased_after: dt.timedelta | None = None
    ) -> list[Execution]:
        """Unfinished executions whose lease expired: for a new owner to resume.

        With ``unleased_after``, also those never leased that are at least that old.
        """
        async with self._conn() as conn:
            return await _reads.expired(conn, limit=limit, unleased_after=unleased_after)

    async def last_execution_states(
        self, namespace: str | None = None
    ) -> dict[tuple[str, str], State]:
        """``(namespace, flow_id)`` → the state of each live flow's newest execution."""
        async with self._conn() as conn:
            return await _latest.last_states(conn, namespace)

    async def executions_per_minute(
        self, since: dt.datetime, namespace: str | None = None
    ) -> list[tuple[dt.datetime, State, int]]:
        """How many executions were created each minute since `since`, by current state."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT date_trunc('minute', created_at) AS minute, state, count(*) AS n
                    FROM executions
                    WHERE created_at >= $1
                      AND ($2::text IS NULL OR namespace = $2 OR namespace LIKE $3)
                    GROUP BY 1, 2 ORDER BY 1, 2""",
                since,
                namespace,
                None if namespace is None else _reads._like_below(namespace),
            )
        return [(row["minute"], State(row["state"]), int(row["n"])) for row in rows]

    async def purge_executions(
        self,
        before: dt.datetime,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> list[tuple[str, str, str]]:
        """Delete ended executions created before `before` (this namespace and below).

        Returns:
            ``(id, namespace, flow_id)`` of every execution deleted, for their files.
        """
        async with self._conn() as conn, conn.transaction():
            return await _purge.purge(conn, before, namespace, flow_id)
