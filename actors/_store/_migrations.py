"""Versioned SQL migrations: found in ``migrations/NNNN_name.sql``, applied once, in order.

Applying is idempotent and safe when several processes start at once: everything runs in
one transaction that first takes a transaction-scoped advisory lock, so a second process
waits, then finds every migration recorded and does nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from flows import StoreError

from ._db import Connection

MIGRATIONS_PACKAGE = "actors._store.migrations"
# pg_advisory_xact_lock key: the first 8 bytes of sha256("kestrel.migrations"), signed.
ADVISORY_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"kestrel.migrations").digest()[:8], "big", signed=True
)
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One SQL migration file.

    Attributes:
        version: The number in the file name; applied in increasing order.
        name: The rest of the file name, without ``.sql``.
        sql: The file's text.
    """

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """Sha256 of the SQL; an applied migration must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """Read every migration shipped with the package, sorted by version."""
    found: list[Migration] = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"two migrations share a version number: {versions}")
    return found


async def apply_migrations(
    conn: Connection, migrations: list[Migration] | None = None
) -> list[int]:
    """Apply the migrations not yet recorded in the database.

    Args:
        conn: An open connection, not inside a transaction.
        migrations: What to apply; defaults to `load_migrations()`.

    Returns:
        The versions applied by this call (empty when the schema was up to date).

    Raises:
        StoreError: An applied migration's file changed since, or a migration failed.
    """
    wanted = load_migrations() if migrations is None else migrations
    applied_now: list[int] = []
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ADVISORY_LOCK_KEY)
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS kestrel_migrations (
                    version    integer     PRIMARY KEY,
                    name       text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            rows = await conn.fetch("SELECT version, checksum FROM kestrel_migrations")
            done = {row["version"]: row["checksum"] for row in rows}
            for migration in wanted:
                recorded = done.get(migration.version)
                if recorded is not None:
                    if recorded != migration.checksum:
                        raise StoreError(
                            f"migration {migration.version}_{migration.name} changed after "
                            "it was applied; add a new migration instead"
                        )
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO kestrel_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
                applied_now.append(migration.version)
    except asyncpg.PostgresError as exc:
        raise StoreError(f"applying migrations failed: {exc}") from exc
    return applied_now
