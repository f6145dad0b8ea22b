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
