"""Connections to Postgres: one for a listener, a small pool per process for tasks."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

import asyncpg

from flows import ConnectorError, redact_dsn

from ._serde import install_json_codecs

CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
POOL_MAX_SIZE = 4
_POOL_IDLE_S = 300.0

# Errors that mean "the connection or the server failed", as opposed to a bad statement.
CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
)
# ... or any error the server reports.
DB_ERRORS: tuple[type[Exception], ...] = (*CONNECTION_ERRORS, asyncpg.PostgresError)
_CONNECT_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, ValueError)

PoolKey = tuple[str, str | None, str | None]


redact = redact_dsn
"""The DSN without its password, for messages (`flows.redact_dsn`)."""


def describe(exc: BaseException) -> str:
    """A short readable reason for an error."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def open_connection(
    dsn: str,
    username: str | None,
    password: str | None,
    *,
    json_codecs: bool = True,
    application_name: str | None = None,
) -> asyncpg.Connection[Any]:
    """One connection; ``json``/``jsonb`` decoded to Python data when `json_codecs`.

    Args:
        dsn: The server and database.
        username: User name, if not in the DSN.
        password: Password, if not in the DSN.
        json_codecs: Decode ``json``/``jsonb`` to Python data.
        application_name: What ``pg_stat_activity`` shows for the session.

    Raises:
        ConnectorError: The server cannot be reached or refuses the connection.
    """
    settings = {"application_name": application_name} if application_name else None
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(
            dsn,
            user=username,
            password=password,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=settings,
        )
    except _CONNECT_ERRORS as exc:
        raise ConnectorError(f"cannot connect to {redact(dsn)}: {describe(exc)}") from exc
    if json_codecs:
        try:
            await install_json_codecs(conn)
        except DB_ERRORS as exc:
            await close_connection(conn)
            raise ConnectorError(f"cannot set up {redact(dsn)}: {describe(exc)}") from exc
    return conn


async def close_connection(conn: asyncpg.Connection[Any]) -> None:
    """Close gracefully, or drop the socket when the server does not answer in time."""
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_S)
    except DB_ERRORS:
        conn.terminate()


async def _init_pooled(conn: asyncpg.Connection[Any]) -> None:
    await install_json_codecs(conn)


# Pools belong to the event loop that made them: one cache per loop (a worker process
# has one persistent loop, so tasks in the same worker share its pools).
_POOLS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[PoolKey, asyncio.Task[asyncpg.Pool[Any]]]
] = weakref.WeakKeyDictionary()


async def _create_pool(key: PoolKey) -> asyncpg.Pool[Any]:
    dsn, username, password = key
    pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
        dsn,
        user=username,
        password=password,
        min_size=0,
        max_size=POOL_MAX_SIZE,
        max_inactive_connection_lifetime=_POOL_IDLE_S,
        timeout=CONNECT_TIMEOUT_S,
        init=_init_pooled,
    )
    return pool


async def pool_for(dsn: str, username: str | None, password: str | None) -> asyncpg.Pool[Any]:
    """This process's pool for one server and user, made on first use.

    Connections open lazily (none are kept when idle for five minutes); the pool is
    closed by `close_pools`.
    """
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    key: PoolKey = (dsn, username, password)
    task = pools.get(key)
    if task is None or (task.done() and (task.cancelled() or task.exception() is not None)):
        task = asyncio.ensure_future(_create_pool(key))
        pools[key] = task
    return await asyncio.shield(task)


async def close_pools() -> None:
    """Close every pool this event loop made (idempotent); the next query makes a new one."""
    pools = _POOLS.pop(asyncio.get_running_loop(), {})
    for task in pools.values():
        with contextlib.suppress(Exception):
            pool = await task
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except DB_ERRORS:
                pool.terminate()
