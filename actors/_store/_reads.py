"""The read side for executions: get, search, logs, full detail, recovery candidates."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Any

from flows import TERMINAL_STATES, State

from . import _flows, _rows
from ._db import Connection
from ._records import (
    EXECUTION_LEASE,
    Attempt,
    Execution,
    ExecutionDetail,
    LogLine,
    Page,
    TaskRunDetail,
    as_utc,
)

_TERMINAL = sorted(str(s) for s in TERMINAL_STATES)
LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


async def get_execution(conn: Connection, execution_id: str) -> Execution | None:
    """The execution with this id, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM executions WHERE id = $1",
        execution_id,
    )
    return None if row is None else _rows.execution(row)


async def by_dedupe_key(conn: Connection, dedupe_key: str) -> Execution | None:
    """The execution created from this source position, or None."""
    row = await conn.fetchrow(
        "SELECT * FROM executions WHERE dedupe_key = $1",
        dedupe_key,
    )
    return None if row is None else _rows.execution(row)


class _Where:
    """Accumulates SQL conditions with numbered parameters."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def add(self, template: str, *values: Any) -> None:
        numbers = [f"${len(self.args) + i + 1}" for i in range(len(values))]
        self.conditions.append(template.format(*numbers))
        self.args.extend(values)

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "true"


async def search(
    conn: Connection,
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
    """Executions matching every filter given, newest first, with the total count.

    ``namespace`` matches that namespace and the ones below it (``shop`` matches
    ``shop.orders``); ``labels`` must all be present with those values; ``since`` is
    inclusive and ``until`` exclusive, on the creation time.
    """
    if limit < 0 or offset < 0:
        raise ValueError("limit and offset must not be negative")
    where = _Where()
    if namespace is not None:
        where.add("(namespace = {0} OR namespace LIKE {1})", namespace, _like_below(namespace))
    if flow_id is not None:
        where.add("flow_id = {0}", flow_id)
    if states is not None:
        where.add("state = ANY({0}::text[])", [str(State(s)) for s in states])
    if labels:
        where.add("labels @> {0}::jsonb", dict(labels))
    if since is not None:
        where.add("created_at >= {0}", as_utc(since))
    if until is not None:
        where.add("created_at < {0}", as_utc(until))
    page_args = [*where.args, limit, offset]
    n = len(where.args)
    rows = await conn.fetch(
        f"""SELECT *, count(*) OVER () AS total FROM executions WHERE {where.sql()}
            ORDER BY created_at DESC, id DESC LIMIT ${n + 1} OFFSET ${n + 2}""",  # noqa: S608
        *page_args,
    )
    if rows:
        total = int(rows[0]["total"])
    else:
        total = int(
            await conn.fetchval(
                f"SELECT count(*) FROM executions WHERE {where.sql()}",  # noqa: S608
                *where.args,
            )
        )
    return Page(tuple(_rows.execution(r) for r in rows), total, limit, offset)


def _like_below(namespace: str) -> str:
    escaped = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ".%"


async def logs(
    conn: Connection,
    execution_id: str,
    *,
    since: int = 0,
    limit: int | None = 1000,
    min_level: str | None = None,
    task_run_id: str | None = None,
) -> list[LogLine]:
    """Log lines of an execution with ``seq > since``, in order.

    Pass the last line's ``seq`` as the next ``since`` to stream. Lines are visible in
    commit order, which is ``seq`` order for one writer (the batcher writes one batch at a
    time); with several concurrent writers to the same execution, a late commit can carry
    a lower ``seq`` than lines already read.
    """
    levels = list(LOG_LEVELS[LOG_LEVELS.index(min_level.upper()) :]) if min_level else None
    rows = await conn.fetch(
        """SELECT seq, execution_id, task_run_id, attempt, level, at, message FROM logs
           WHERE execution_id = $1 AND seq > $2
             AND ($3::text[] IS NULL OR level = ANY($3::text[]))
             AND ($4::text IS NULL OR task_run_id = $4)
           ORDER BY seq LIMIT $5""",
        execution_id,
        since,
        levels,
        task_run_id,
        limit,
    )
    return [_rows.log_line(row) for row in rows]


async def detail(conn: Connection, execution_id: str) -> ExecutionDetail | None:
    """The execution with all its task runs, attempts, outputs and logs, and its flow."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        execution = await get_execution(conn, execution_id)
        if execution is None:
            return None
        runs = await conn.fetch(
            "SELECT * FROM task_runs WHERE execution_id = $1 ORDER BY seq",
            execution_id,
        )
        attempt_rows = await conn.fetch(
            """SELECT task_run_id, attempt, state, started_at, ended_at, worker, node, error
               FROM task_run_attempts WHERE execution_id = $1
               ORDER BY task_run_id, attempt""",
            execution_id,
        )
        output_rows = await conn.fetch(
            "SELECT task_run_id, outputs FROM outputs WHERE execution_id = $1", execution_id
        )
        lines = await logs(conn, execution_id, limit=None)
        flow = await _flows.get(
            conn, execution.namespace, execution.flow_id, execution.flow_revision
        )
    attempts: dict[str, list[Attempt]] = defaultdict(list)
    for row in attempt_rows:
        attempts[row["task_run_id"]].append(_rows.attempt(row))
    outputs = {row["task_run_id"]: row["outputs"] for row in output_rows}
    task_runs = tuple(
        TaskRunDetail(
            _rows.task_run(row), tuple(attempts.get(row["id"], ())), outputs.get(row["id"])
        )
        for row in runs
    )
    return ExecutionDetail(execution, task_runs, tuple(lines), flow)


async def expired(
    conn: Connection, *, limit: int = 100, unleased_after: dt.timedelta | None = None
) -> list[Execution]:
    """Unfinished executions whose owner's lease expired: candidates for recovery.

    With ``unleased_after``, also unfinished executions nobody ever leased that were
    created at least that long ago. Oldest expiry first.
    """
    rows = await conn.fetch(
        """SELECT e.* FROM executions e
            LEFT JOIN leases l ON l.kind = $1 AND l.key = e.id
            WHERE e.state <> ALL($2::text[])
              AND (l.expires_at <= now()
                   OR (l.key IS NULL AND $3::interval IS NOT NULL
                       AND e.created_at <= now() - $3::interval))
            ORDER BY coalesce(l.expires_at, e.created_at) LIMIT $4""",
        EXECUTION_LEASE,
        _TERMINAL,
        unleased_after,
        limit,
    )
    return [_rows.execution(row) for row in rows]
