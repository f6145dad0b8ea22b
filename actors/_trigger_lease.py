"""Trigger leases: each realtime or schedule trigger runs on one host cluster-wide.

Every gateway deploys every flow to its listener hosts; a `LeasedRunner` runs its
trigger's `TriggerRunner` only while it holds the trigger's lease (kind ``trigger``,
key ``namespace.flow/trigger``) and stands by otherwise. One `TriggerLeases` loop per
host does the lease work for all of its triggers in two statements every third of the
TTL, however many triggers it has: it renews the leases held (one batched UPDATE) and
tries to take the ones standing by (one batched INSERT ... ON CONFLICT). A runner stops
when its lease was taken by someone else (`StaleLeaseError`, or missing from the
renewal) or was not renewed for a whole TTL (the store is unreachable: someone else may
hold it by now). Stopping releases the lease, so a gateway that shuts down hands its
triggers over within TTL/3; one that dies hands them over when the lease expires.

Takeover bound after a holder dies: at most one TTL (since its last renewal) plus one
poll (TTL / 3), plus the time the new listener takes to connect. Between the two
holders the source's committed position and the executions' dedupe keys keep "exactly
one execution per event" (see docs/architecture.md, "Several gateways, one Postgres").
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable

from flows import Flow, KestrelError, Service, Trigger

from ._store import Lease, Store
from ._triggers import TriggerInfo, TriggerRunner, TriggerStatus

_log = logging.getLogger(__name__)

TRIGGER_LEASE = "trigger"
"""The lease kind of triggers."""

DEFAULT_TRIGGER_LEASE_S = 10.0
"""How long a trigger's lease lasts without renewal (``KESTREL_TRIGGER_LEASE_S``)."""


def trigger_lease_key(namespace: str, flow_id: str, trigger_id: str) -> str:
    """The lease key of a trigger: ``namespace.flow/trigger``."""
    return f"{namespace}.{flow_id}/{trigger_id}"


class LeasedRunner(Service):
    """Runs a trigger's runner while this host holds the trigger's lease.

    Args:
        flow: The flow revision.
        trigger: The trigger.
        make: Makes the trigger's runner (a new one each time the lease is taken).
        leases: The host's lease loop; None runs the trigger without a lease (one host
            only: tests and ``kestrel run``).
        slot: Which of the trigger's ``parallelism`` listeners this is (its own lease).
    """

    def __init__(
        self,
        flow: Flow,
        trigger: Trigger,
        make: Callable[[], TriggerRunner],
        leases: TriggerLeases | None,
        *,
        slot: int = 0,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.trigger = trigger
        self.slot = slot
        self.runner: TriggerRunner | None = None
        """The running runner while the lease is held (always, without a lease)."""
        self.lease: Lease | None = None
        self.renewed_at = 0.0
        """`time.monotonic()` of the last successful take or renewal."""
        self.takeovers = 0
        """How many times this host took the lease."""
        self._make = make
        self._leases = leases
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def key(self) -> str:
        """The lease key of this listener of the trigger (``#slot`` after the first)."""
        key = trigger_lease_key(self.flow.namespace, self.flow.id, self.trigger.id)
        return key if self.slot == 0 else f"{key}#{self.slot}"

    async def _start(self) -> None:
        if self._leases is None:
            self.runner = self._make()
            await self.runner.start()
            return
        await self._leases.join(self)  # one try now: a lone gateway's trigger runs at once

    async def _stop(self) -> None:
        self._closed = True
        if self._leases is not None:
            self._leases.leave(self)
        async with self._lock:
            await self._stop_runner()
            lease, self.lease = self.lease, None
        if lease is not None and self._leases is not None:  # hand over now, not at expiry
            with contextlib.suppress(KestrelError):
                await self._leases.store.release_lease(lease)

    def info(self) -> TriggerInfo:
        """The runner's status, or STANDBY while another host holds the trigger."""
        if self.runner is not None:
            return self.runner.info()
        return TriggerInfo(
            namespace=self.flow.namespace,
            flow_id=self.flow.id,
            trigger_id=self.trigger.id,
            type=self.trigger.type,
            revision=self.flow.revision or 0,
            status=TriggerStatus.STANDBY,
            last_error=None,
            last_event_at=None,
            events=0,
            created=0,
            duplicates=0,
            dead_letters=0,
            reconnects=0,
        )

    async def won(self, lease: Lease) -> None:
        """The lease was taken for this trigger: start its runner."""
        async with self._lock:
            if self.lease is not None or self._closed:
                return
            runner = self._make()
            try:
                await runner.start()
            except KestrelError as exc:  # the store failed: let the lease go, try later
                _log.warning("trigger %s: cannot start: %s", self.key, exc)
                assert self._leases is not None
                with contextlib.suppress(KestrelError):
                    await self._leases.store.release_lease(lease)
                return
            self.lease, self.runner = lease, runner
            self.renewed_at = time.monotonic()
            self.takeovers += 1
        _log.info("trigger %s: lease taken (epoch %d)", self.key, lease.epoch)

    async def lost(self, why: str) -> None:
        """The lease is no longer ours: stop the runner."""
        async with self._lock:
            if self.lease is None:
                return
            _log.warning("trigger %s: %s, stopping here", self.key, why)
            self.lease = None
            await self._stop_runner()

    async def _stop_runner(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.stop()


class TriggerLeases(Service):
    """The lease work of one host's triggers: two batched statements every TTL/3.

    Args:
        store: Where the leases live.
        owner: This host's lease owner name.
        ttl_s: The leases' time to live.
    """

    def __init__(self, store: Store, owner: str, ttl_s: float) -> None:
        super().__init__()
        self.store = store
        self.owner = owner
        self.ttl = dt.timedelta(seconds=ttl_s)
        self._runners: dict[str, LeasedRunner] = {}
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"trigger leases {self.owner}")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def join(self, runner: LeasedRunner) -> None:
        """Manage `runner`'s lease from now on; try to take it at once."""
        self._runners[runner.key] = runner
        await self._take([runner])

    def leave(self, runner: LeasedRunner) -> None:
        """Stop managing `runner`'s lease (it is stopping)."""
        if self._runners.get(runner.key) is runner:
            del self._runners[runner.key]

    async def _loop(self) -> None:
        period = self.ttl.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            runners = list(self._runners.values())
            await self._renew([r for r in runners if r.lease is not None])
            await self._take([r for r in runners if r.lease is None])

    async def _renew(self, held: list[LeasedRunner]) -> None:
        if not held:
            return
        leases = [r.lease for r in held if r.lease is not None]
        try:
            stale = await self.store.renew_leases(leases, self.ttl)
        except KestrelError as exc:
            limit = self.ttl.total_seconds()
            now = time.monotonic()
            for runner in held:
                if now - runner.renewed_at >= limit:
                    await runner.lost(f"lease not renewed for a TTL ({exc})")
            return
        # Only the stale ones come back: the others are renewed, their epoch unchanged.
        now, lost = time.monotonic(), {id(lease) for lease in stale}
        for runner in held:
            if runner.lease is None:
                continue  # lost meanwhile
            if id(runner.lease) in lost:
                await runner.lost("lease taken by another host")
            else:
                runner.renewed_at = now

    async def _take(self, standing_by: list[LeasedRunner]) -> None:
        if not standing_by:
            return
        keys = [r.key for r in standing_by]
        try:
            taken = await self.store.take_leases(TRIGGER_LEASE, keys, self.owner, self.ttl)
        except KestrelError as exc:
            _log.warning("cannot take trigger leases: %s", exc)
            return
        for lease in taken:
            runner = self._runners.get(lease.key)
            if runner is not None:
                await runner.won(lease)
