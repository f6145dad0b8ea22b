"""Keeping executions owned: renew the leases of those running here, resume orphans.

Every TTL/3 the leases of the executions running here are renewed in one statement; a
lease found taken means another owner has the execution, so the local run is cancelled.
Recovery looks for executions whose owner's lease expired and resumes them here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from flows import NotFoundError, StoreError

from ._launch import RunningExecutions

if TYPE_CHECKING:
    from ._service import ExecutionService

_log = logging.getLogger(__name__)


class LeaseKeeper:
    """The lease renewal and recovery loops of one `ExecutionService`.

    Args:
        service: The service whose executions are kept (and which resumes orphans).
        running: Its running executions.
    """

    def __init__(self, service: ExecutionService, running: RunningExecutions) -> None:
        self._service = service
        self._running = running
        self.recovered = 0

    async def renew_loop(self) -> None:
        """Renew our leases every TTL/3; cancel the runs whose lease another owner took."""
        store, ttl = self._service.store, self._service.lease_ttl
        period = max(0.5, ttl.total_seconds() / 3)
        while True:
            await asyncio.sleep(period)
            held = self._running.leases()
            try:
                stale = await store.renew_leases(held, ttl)
            except StoreError as exc:
                _log.warning("could not renew %d lease(s): %s", len(held), exc)
                continue
            for lease in stale:
                entry = self._running.get(lease.key)
                if entry is None or entry.lease is not lease:
                    continue  # released (or retaken) meanwhile
                _log.warning("lost the lease of %s; stopping it here", lease.key)
                entry.task.cancel()

    async def recover_loop(self, every: float) -> None:
        """Run `recover` every `every` seconds, at once again after a full pass."""
        limit = 200
        while True:
            await asyncio.sleep(every)
            try:
                while await self.recover(limit) >= limit:
                    pass  # a full pass: more orphans are waiting, take them now
            except Exception:
                _log.exception("recovery pass failed")

    async def recover(self, limit: int = 50) -> int:
        """Resume here the executions whose owner's lease expired; how many were taken.

        Executions never leased (created but not started, or queued) count once they are
        three lease times old.
        """
        service = self._service
        orphans = await service.store.find_expired_executions(
            limit=limit, unleased_after=3 * service.lease_ttl
        )
        taken = 0
        for execution in orphans:
            if execution.id in self._running:
                continue
            try:
                if await service.run_execution(execution.id):
                    taken += 1
                    _log.warning("resumed execution %s after its owner was lost", execution.id)
            except (StoreError, NotFoundError) as exc:
                _log.warning("could not resume %s: %s", execution.id, exc)
        self.recovered += taken
        return taken
