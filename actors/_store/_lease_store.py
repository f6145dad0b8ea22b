"""The store's ownership statements: leases, concurrency admission and notifications.

See "Leases and fencing" in docs/architecture.md. Releasing a lease is a batched write
(`Writer.release_lease`), so it is ordered after the owner's last history write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from flows import State

from . import _concurrency, _leases
from ._connections import Connections
from ._records import EXECUTION_LEASE, Lease


class Leases:
    """Take, renew and read leases; admit executions under a flow's concurrency limit.

    Args:
        connections: The store's pool.
    """

    def __init__(self, connections: Connections) -> None:
        self._conn = connections.conn

    async def take_lease(self, kind: str, key: str, owner: str, ttl: dt.timedelta) -> Lease | None:
        """Take a lease that is free, expired or already ours; the epoch goes up.

        Returns:
            The lease, or None while another owner holds it unexpired.
        """
        async with self._conn() as conn:
            return await _leases.take(conn, kind, key, owner, ttl)

    async def take_leases(
        self, kind: str, keys: Sequence[str], owner: str, ttl: dt.timedelta
    ) -> list[Lease]:
        """`take_lease` for many keys in one round trip: the leases taken."""
        async with self._conn() as conn:
            return await _leases.take_many(conn, kind, list(keys), owner, ttl)

    async def take_execution_lease(
        self, execution_id: str, owner: str, ttl: dt.timedelta
    ) -> Lease | None:
        """`take_lease` for an execution."""
        return await self.take_lease(EXECUTION_LEASE, execution_id, owner, ttl)

    async def renew_lease(self, lease: Lease, ttl: dt.timedelta) -> Lease:
        """Extend a lease we still hold.

        Raises:
            StaleLeaseError: Another owner took it.
        """
        async with self._conn() as conn:
            return await _leases.renew(conn, lease, ttl)

    async def renew_leases(self, leases: Sequence[Lease], ttl: dt.timedelta) -> list[Lease]:
        """Renew many leases in one round trip: those that went stale (the others renewed).

        Only the stale ones come back (the same objects), so renewing many current leases
        costs no per-lease work here; a renewed lease keeps its owner and epoch, which is
        all its writes are fenced with.
        """
        async with self._conn() as conn:
            return await _leases.renew_many(conn, list(leases), ttl)

    async def get_lease(self, kind: str, key: str) -> Lease | None:
        """The lease row (possibly expired), or None if never taken."""
        async with self._conn() as conn:
            return await _leases.get(conn, kind, key)

    async def admit(
        self, execution_id: str, namespace: str, flow_id: str, limit: int, otherwise: State
    ) -> State:
        """Admit an execution under its flow's concurrency limit (see `_concurrency.admit`)."""
        async with self._conn() as conn:
            return await _concurrency.admit(
                conn, execution_id, namespace, flow_id, limit, otherwise
            )

    async def oldest_queued(self, namespace: str, flow_id: str) -> str | None:
        """The flow's oldest QUEUED execution, if any."""
        async with self._conn() as conn:
            return await _concurrency.oldest_queued(conn, namespace, flow_id)

    async def notify(self, channel: str, payload: str) -> None:
        """Send a Postgres notification (``pg_notify``): every listener hears it."""
        async with self._conn() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
