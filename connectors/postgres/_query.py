"""The runtime of ``postgres.Query``: one statement on this process's pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from flows import ConnectorError, RunContext, TaskError

from ._connect import CONNECTION_ERRORS, describe, pool_for, redact
from ._serde import row_to_dict
from ._sql import bind, execute, fetch_of, positional_count

if TYPE_CHECKING:
    from ._sql import AnyConnection
    from ._types import PostgresQuery

# SQLSTATE classes worth another attempt: connection exception, transaction rollback
# (serialization failure, deadlock), insufficient resources, operator intervention
# (admin shutdown, cancel), system error.
_RETRIABLE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_FAILURES: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, ConnectorError)


async def run_query(task: PostgresQuery, ctx: RunContext) -> dict[str, Any]:
    """Run the task's statement (and ``afterSQL``, same transaction) and shape its outputs.

    Returns:
        ``{"row": {...} | None, "size": 0|1}`` for FETCH_ONE, ``{"rows": [...], "size": n}``
        for FETCH, ``{"size": rows affected}`` for NONE.

    Raises:
        TaskError: The statement failed (retriable when the connection or the server
            failed, or the transaction was rolled back by a conflict).
    """
    fetch = fetch_of(task.fetch_type.value)
    try:
        sql, args = bind(task.sql, task.parameters)
    except ValueError as exc:
        raise TaskError(str(exc), retriable=False) from None
    dsn = task.dsn()
    try:
        pool = await pool_for(dsn, task.username, task.password)
        async with pool.acquire() as conn:
            if task.after_sql:
                async with conn.transaction():
                    rows, size = await execute(conn, sql, args, fetch)
                    await _after(conn, task.after_sql, task.parameters)
            else:
                rows, size = await execute(conn, sql, args, fetch)
    except ValueError as exc:
        raise TaskError(str(exc), retriable=False) from None
    except asyncpg.PostgresError as exc:
        raise TaskError(f"query failed: {_postgres_error(exc)}", retriable=_retriable(exc)) from exc
    except _FAILURES as exc:
        retriable = not isinstance(exc, asyncpg.InterfaceError) or isinstance(
            exc, asyncpg.ConnectionDoesNotExistError
        )
        raise TaskError(
            f"query on {redact(dsn)} failed: {describe(exc)}", retriable=retriable
        ) from exc
    ctx.log("DEBUG", f"postgres.Query: {size} row(s)")
    if fetch == "FETCH_ONE":
        return {"row": row_to_dict(rows[0]) if rows else None, "size": size}
    if fetch == "FETCH":
        return {"rows": [row_to_dict(row) for row in rows], "size": size}
    return {"size": size}


async def _after(
    conn: AnyConnection, sql: str, parameters: dict[str, Any] | list[Any] | None
) -> None:
    """``afterSQL``: with the task's parameters when it uses any placeholder."""
    if isinstance(parameters, list):
        await execute(conn, sql, parameters[: positional_count(sql)], "NONE")
        return
    after, args = bind(sql, parameters)
    await execute(conn, after, args, "NONE")


def _postgres_error(exc: asyncpg.PostgresError) -> str:
    text = f"{exc.sqlstate} {exc}" if exc.sqlstate else str(exc)
    detail = getattr(exc, "detail", None)
    return f"{text} ({detail})" if detail else text


def _retriable(exc: asyncpg.PostgresError) -> bool:
    state = exc.sqlstate or ""
    return state[:2] in _RETRIABLE_CLASSES or isinstance(exc, asyncpg.PostgresConnectionError)
