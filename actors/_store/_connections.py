"""The store's access to its pool: one connection at a time, database errors mapped.

Shared by the parts of `Store` (`_writer`, `_queries`, `_lease_store`, `_kv_store`,
`_catalog`), so each maps asyncpg's errors to the `KestrelError` tree the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from flows import StoreError, StoreUnavailable

from ._db import DATABASE_ERRORS, Connection, unavailable


class Connections:
    """The pool of a running store (None before `Store.start` and after `Store.stop`)."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    def require_pool(self) -> asyncpg.Pool:
        """The pool.

        Raises:
            StoreError: The store is not started.
        """
        if self.pool is None:
            raise StoreError("the store is not started")
        return self.pool

    @asynccontextmanager
    async def conn(self) -> AsyncIterator[Connection]:
        """A connection from the pool, its database errors raised as store errors.

        Raises:
            StoreUnavailable: The database is unreachable.
            StoreError: The store is not started, or the statement failed.
        """
        pool = self.require_pool()
        try:
            async with pool.acquire() as conn:
                yield conn
        except DATABASE_ERRORS as exc:
            if unavailable(exc):
                raise StoreUnavailable(f"the database is unreachable: {exc!r}") from exc
            raise StoreError(f"store operation failed: {exc}") from exc
