"""Leases with fencing epochs: take, renew, release, read.

Expiry is judged by the database clock (``now()``), so holders on different machines agree.
Lease rows are never deleted: releasing expires the row, so epochs only ever grow and a
write fenced with an old epoch can never become valid again.
"""

from __future__ import annotations

import datetime as dt

from flows import StaleLeaseError

from . import _rows
from ._db import Connection
from ._records import Lease


async def take(
    conn: Connection, kind: str, key: str, owner: str, ttl: dt.timedelta
) -> Lease | None:
    """Take the lease if it is free, expired, or already ``owner``'s; the epoch goes up.

    Taking an expired lease that its owner did not release counts one takeover.

    Returns:
        The new lease, or None while another owner holds an unexpired one.
    """
    row = await conn.fetchrow(
        """INSERT INTO leases AS l (kind, key, owner, epoch, expires_at, acquired_at)
            VALUES ($1, $2, $3, 1, now() + $4::interval, now())
            ON CONFLICT (kind, key) DO UPDATE
            SET owner = excluded.owner, epoch = l.epoch + 1,
                expires_at = excluded.expires_at, acquired_at = now(), released = false,
                takeovers = l.takeovers
                    + CASE WHEN l.owner <> excluded.owner AND NOT l.released THEN 1 ELSE 0 END
            WHERE l.expires_at <= now() OR l.owner = excluded.owner
            RETURNING *""",
        kind,
        key,
        owner,
        ttl,
    )
    return None if row is None else _rows.lease(row)


async def renew(conn: Connection, lease: Lease, ttl: dt.timedelta) -> Lease:
    """Extend ``lease`` to ``now() + ttl`` if it is still current (same owner and epoch).

    A lease that expired but was not taken by anyone else is still current and renews.

    Raises:
        StaleLeaseError: Someone else took it since.
    """
    row = await conn.fetchrow(
        """UPDATE leases SET expires_at = now() + $5::interval
            WHERE kind = $1 AND key = $2 AND owner = $3 AND epoch = $4
            RETURNING *""",
        lease.kind,
        lease.key,
        lease.owner,
        lease.epoch,
        ttl,
    )
    if row is None:
        raise StaleLeaseError(lease, action="cannot renew")
    return _rows.lease(row)


async def renew_many(conn: Connection, leases: list[Lease], ttl: dt.timedelta) -> list[Lease]:
    """Renew many leases in one statement, each if it is still current (same owner, epoch).

    The database compares, and answers with the positions of the leases it could not
    renew only, so a keeper renewing a thousand leases that are all still ours reads no
    rows back (a renewal's new expiry is not kept here: fencing compares owner and epoch,
    which a renewal does not change).

    Returns:
        The leases of `leases` that went stale (taken by another owner), the same objects.
    """
    if not leases:
        return []
    stale = await conn.fetch(
        """WITH u AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
                    WITH ORDINALITY AS u(kind, key, owner, epoch, i)),
            renewed AS (
                UPDATE leases AS l SET expires_at = now() + $5::interval FROM u
                 WHERE l.kind = u.kind AND l.key = u.key AND l.owner = u.owner
                   AND l.epoch = u.epoch
                RETURNING l.kind, l.key)
            SELECT u.i FROM u
             WHERE NOT EXISTS (SELECT 1 FROM renewed r WHERE r.kind = u.kind AND r.key = u.key)""",
        [lease.kind for lease in leases],
        [lease.key for lease in leases],
        [lease.owner for lease in leases],
        [lease.epoch for lease in leases],
        ttl,
    )
    return [leases[row[0] - 1] for row in stale]


async def get(conn: Connection, kind: str, key: str) -> Lease | None:
    """The current lease row, expired or not; None if never taken."""
    row = await conn.fetchrow(
        "SELECT * FROM leases WHERE kind = $1 AND key = $2",
        kind,
        key,
    )
    return None if row is None else _rows.lease(row)


async def take_many(
    conn: Connection, kind: str, keys: list[str], owner: str, ttl: dt.timedelta
) -> list[Lease]:
    """`take` for many keys in one statement; the leases taken (free, expired or ours)."""
    if not keys:
        return []
    rows = await conn.fetch(
        """INSERT INTO leases AS l (kind, key, owner, epoch, expires_at, acquired_at)
            SELECT $1, k, $3, 1, now() + $4::interval, now() FROM unnest($2::text[]) AS k
            ON CONFLICT (kind, key) DO UPDATE
            SET owner = excluded.owner, epoch = l.epoch + 1,
                expires_at = excluded.expires_at, acquired_at = now()
            WHERE l.expires_at <= now() OR l.owner = excluded.owner
            RETURNING *""",
        kind,
        keys,
        owner,
        ttl,
    )
    return [_rows.lease(row) for row in rows]
