"""Trigger leases: each realtime or schedule trigger runs on one host cluster-wide.

Every gateway deploys every flow to its listener hosts; a `LeasedRunner` runs its
trigger's `TriggerRunner` only while it holds the trigger's lease (kind ``trigger``,
key ``namespace.flow/trigger``) and stands by otherwise, trying to take it again every
third of the TTL. The holder renews every third of the TTL; it stops its runner when the
lease is taken by someone else (`StaleLeaseError`) or when it could not renew for a whole
TTL (the store is unreachable: someone else may hold it by now). Stopping releases the
lease, so a gateway that shuts down hands its triggers over at once; one that dies hands
them over when the lease expires.

Takeover bound after a holder dies: at most one TTL (since its last renewal) plus one
standby poll (TTL / 3), plus the time the new listener takes to connect. Between the two
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

from flows import Flow, KestrelError, Service, StaleLeaseError, Trigger

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
    """Runs a trigger's runner while this owner holds the trigger's lease.

    Args:
        flow: The flow revision.
        trigger: The trigger.
        make: Makes the trigger's runner (a new one each time the lease is taken).
        store: Where the lease lives.
        owner: This host's lease owner name.
        ttl_s: The lease's time to live; None runs the trigger without a lease (one
            host only: tests and ``kestrel run``).
        slot: Which of the trigger's ``parallelism`` listeners this is (its own lease).
    """

    def __init__(
        self,
        flow: Flow,
        trigger: Trigger,
        make: Callable[[], TriggerRunner],
        store: Store,
        owner: str,
        ttl_s: float | None,
        *,
        slot: int = 0,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.trigger = trigger
        self.runner: TriggerRunner | None = None
        """The running runner while the lease is held (always, without a lease)."""
        self._make = make
        self._store = store
        self._owner = owner
        self._ttl = None if ttl_s is None else dt.timedelta(seconds=ttl_s)
        self._lease: Lease | None = None
        self._task: asyncio.Task[None] | None = None
        self.slot = slot
        self.takeovers = 0
        """How many times this owner took the lease."""

    @property
    def key(self) -> str:
        """The lease key of this listener of the trigger (``#slot`` after the first)."""
        key = trigger_lease_key(self.flow.namespace, self.flow.id, self.trigger.id)
        return key if self.slot == 0 else f"{key}#{self.slot}"

    async def _start(self) -> None:
        if self._ttl is None:
            self.runner = self._make()
            await self.runner.start()
            return
        # One try now, so a lone gateway's trigger runs as soon as `deploy` returns.
        lease = await self._take()
        if lease is not None:
            await self._run_with(lease)
        self._task = asyncio.create_task(self._loop(), name=f"lease {self.key}")

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._stop_runner()
        lease, self._lease = self._lease, None
        if lease is not None:  # hand over now rather than at expiry
            with contextlib.suppress(KestrelError):
                await self._store.release_lease(lease)

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

    # ---- the lease loop ----

    async def _take(self) -> Lease | None:
        assert self._ttl is not None
        try:
            return await self._store.take_lease(TRIGGER_LEASE, self.key, self._owner, self._ttl)
        except KestrelError as exc:
            _log.warning("trigger %s: cannot take its lease: %s", self.key, exc)
            return None

    async def _run_with(self, lease: Lease) -> None:
        runner = self._make()
        try:
            await runner.start()
        except KestrelError as exc:  # the store failed: let the lease go, try again later
            _log.warning("trigger %s: cannot start: %s", self.key, exc)
            with contextlib.suppress(KestrelError):
                await self._store.release_lease(lease)
            return
        self._lease, self.runner = lease, runner
        self.takeovers += 1
        _log.info("trigger %s: lease taken by %s (epoch %d)", self.key, self._owner, lease.epoch)

    async def _stop_runner(self) -> None:
        runner, self.runner = self.runner, None
        if runner is not None:
            await runner.stop()

    async def _loop(self) -> None:
        assert self._ttl is not None
        period = self._ttl.total_seconds() / 3
        while True:
            if self._lease is None:
                await asyncio.sleep(period)
                lease = await self._take()
                if lease is not None:
                    await self._run_with(lease)
                continue
            await self._hold(period)
            await self._stop_runner()
            self._lease = None

    async def _hold(self, period: float) -> None:
        """Renew the lease every `period` seconds; return once it is lost."""
        assert self._ttl is not None and self._lease is not None
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(period)
            try:
                self._lease = await self._store.renew_lease(self._lease, self._ttl)
                renewed = time.monotonic()
            except StaleLeaseError:
                _log.warning("trigger %s: lease taken by another host, stopping here", self.key)
                return
            except KestrelError as exc:
                if time.monotonic() - renewed >= self._ttl.total_seconds():
                    _log.warning("trigger %s: lease not renewed for a TTL: %s", self.key, exc)
                    return
