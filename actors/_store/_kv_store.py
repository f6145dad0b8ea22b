"""The store's namespace KV: typed values with an optional expiry, one statement each."""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import _rows
from ._connections import Connections
from ._json import dumps
from ._kv import encode_value
from ._records import KVEntry, KVType


class KeyValues:
    """Set, read, list and expire KV entries (reads ignore expired ones).

    Args:
        connections: The store's pool.
    """

    def __init__(self, connections: Connections) -> None:
        self._conn = connections.conn

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: dt.timedelta | None = None,
        type: KVType | None = None,
    ) -> KVEntry:
        """Set a typed value, optionally expiring ``ttl`` from now.

        Args:
            namespace: The namespace.
            key: The key.
            value: str, int/float, bool, datetime, date, timedelta or JSON data.
            ttl: Time to live; a negative one stores an already expired value.
            type: The KV type; inferred from ``value`` when None.

        Returns:
            The entry as stored.
        """
        kind, stored = encode_value(value, type)
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """INSERT INTO kv AS k (namespace, key, type, value, expires_at)
                    VALUES ($1, $2, $3, $4::text::jsonb, now() + $5::interval)
                    ON CONFLICT (namespace, key) DO UPDATE
                    SET type = excluded.type, value = excluded.value,
                        expires_at = excluded.expires_at, updated_at = now()
                    RETURNING *""",
                namespace,
                key,
                str(kind),
                dumps(stored),  # as text: a JSON null must not become SQL NULL
                ttl,
            )
        assert row is not None
        return _rows.kv_entry(row)

    async def kv_get(self, namespace: str, key: str) -> KVEntry | None:
        """The entry, or None if absent or expired."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """SELECT * FROM kv WHERE namespace = $1 AND key = $2
                    AND (expires_at IS NULL OR expires_at > now())""",
                namespace,
                key,
            )
        return None if row is None else _rows.kv_entry(row)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; False if there was no live value."""
        async with self._conn() as conn:
            deleted = await conn.fetchval(
                """DELETE FROM kv WHERE namespace = $1 AND key = $2
                   RETURNING expires_at IS NULL OR expires_at > now()""",
                namespace,
                key,
            )
        return bool(deleted)

    async def kv_list(self, namespace: str) -> list[KVEntry]:
        """Live entries of a namespace, by key."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM kv WHERE namespace = $1
                    AND (expires_at IS NULL OR expires_at > now()) ORDER BY key""",
                namespace,
            )
        return [_rows.kv_entry(row) for row in rows]

    async def kv_purge_expired(self) -> int:
        """Delete expired entries (reads already ignore them); returns how many."""
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM kv WHERE expires_at <= now()")
        return int(status.split()[-1])
