"""What the store's modules share about asyncpg: the connection type and error groups."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.exceptions._base import InternalClientError
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A plain connection or one borrowed from a pool; the store's SQL runs on either."""

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A pooled connection the server cut, used before the driver noticed: "cannot switch
    # to state ...; another operation is in progress".
    InternalClientError,
    OSError,
    TimeoutError,
)
"""The connection (not the statement) failed: the outcome of an in-flight COMMIT is unknown."""

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    InternalClientError,
)
"""Anything the database or the driver raises."""


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database cannot be reached, not that a statement is bad.

    The connection failed or was refused, or the server is shutting down, starting up or
    out of connection slots (SQLSTATE classes 08 and 57P, and 53300).
    """
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        code = str(getattr(exc, "sqlstate", "") or "")
        return code.startswith(("08", "57P")) or code == "53300"
    return False
