"""Flow sources and their revisions: a new revision only when the source changed."""

from __future__ import annotations

import hashlib

from . import _rows
from ._db import Connection
from ._records import FlowRevision, FlowSaveResult


def checksum(source: str) -> str:
    """Sha256 (hex) of a flow's source text."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


async def save(conn: Connection, namespace: str, flow_id: str, source: str) -> FlowSaveResult:
    """Save ``source`` as the flow's current revision, unless it is already that.

    Saving a deleted flow (any source) brings it back as a new revision.
    """
    digest = checksum(source)
    async with conn.transaction():
        row = await conn.fetchrow(
            """INSERT INTO flows AS f (namespace, flow_id, revision, checksum, source)
               VALUES ($1, $2, 1, $3, $4)
               ON CONFLICT (namespace, flow_id) DO UPDATE
               SET revision = f.revision + 1, checksum = excluded.checksum,
                   source = excluded.source, deleted = false, updated_at = now()
               WHERE f.checksum <> excluded.checksum OR f.deleted
               RETURNING revision""",
            namespace,
            flow_id,
            digest,
            source,
        )
        if row is None:
            current = await _latest(conn, namespace, flow_id)
            assert current is not None  # the conflicting row exists and we did not touch it
            return FlowSaveResult(current, changed=False)
        saved = await conn.fetchrow(
            """INSERT INTO flow_revisions (namespace, flow_id, revision, checksum, source)
               VALUES ($1, $2, $3, $4, $5) RETURNING *""",
            namespace,
            flow_id,
            row["revision"],
            digest,
            source,
        )
    assert saved is not None
    return FlowSaveResult(_rows.flow_revision(saved), changed=True)


async def delete(conn: Connection, namespace: str, flow_id: str) -> bool:
    """Soft-delete the flow: a new revision marked deleted. False if absent or deleted."""
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE flows SET revision = revision + 1, deleted = true, updated_at = now()
               WHERE namespace = $1 AND flow_id = $2 AND NOT deleted
               RETURNING revision, checksum, source""",
            namespace,
            flow_id,
        )
        if row is None:
            return False
        await conn.execute(
            """INSERT INTO flow_revisions (namespace, flow_id, revision, checksum, source,
                   deleted) VALUES ($1, $2, $3, $4, $5, true)""",
            namespace,
            flow_id,
            row["revision"],
            row["checksum"],
            row["source"],
        )
    return True


async def _latest(conn: Connection, namespace: str, flow_id: str) -> FlowRevision | None:
    row = await conn.fetchrow(
        """SELECT * FROM flow_revisions WHERE namespace = $1 AND flow_id = $2
           ORDER BY revision DESC LIMIT 1""",
        namespace,
        flow_id,
    )
    return None if row is None else _rows.flow_revision(row)


async def get(
    conn: Connection,
    namespace: str,
    flow_id: str,
    revision: int | None = None,
    *,
    include_deleted: bool = False,
) -> FlowRevision | None:
    """One revision (the latest when ``revision`` is None).

    The latest revision of a deleted flow is returned only with ``include_deleted``; an
    explicit revision number is always returned when it exists.
    """
    if revision is not None:
        row = await conn.fetchrow(
            """SELECT * FROM flow_revisions
               WHERE namespace = $1 AND flow_id = $2 AND revision = $3""",
            namespace,
            flow_id,
            revision,
        )
        return None if row is None else _rows.flow_revision(row)
    latest = await _latest(conn, namespace, flow_id)
    if latest is None or (latest.deleted and not include_deleted):
        return None
    return latest


async def revisions(conn: Connection, namespace: str, flow_id: str) -> list[FlowRevision]:
    """Every revision of the flow, oldest first."""
    rows = await conn.fetch(
        """SELECT * FROM flow_revisions WHERE namespace = $1 AND flow_id = $2
           ORDER BY revision""",
        namespace,
        flow_id,
    )
    return [_rows.flow_revision(row) for row in rows]


async def latest_all(conn: Connection, namespace: str | None) -> list[FlowRevision]:
    """The current revision of every live flow, optionally under a namespace (and below)."""
    rows = await conn.fetch(
        """SELECT r.* FROM flows f JOIN flow_revisions r USING (namespace, flow_id, revision)
           WHERE NOT f.deleted
             AND ($1::text IS NULL OR f.namespace = $1 OR f.namespace LIKE $2)
           ORDER BY f.namespace, f.flow_id""",
        namespace,
        None if namespace is None else like_prefix(namespace),
    )
    return [_rows.flow_revision(row) for row in rows]


def like_prefix(namespace: str) -> str:
    """A LIKE pattern matching the namespaces below `namespace`."""
    escaped = namespace.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + ".%"
