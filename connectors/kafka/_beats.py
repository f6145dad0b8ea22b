"""Idle consumers of one process heartbeat to their groups over one connection per cluster.

Group membership belongs to each consumer, so each still heartbeats to its own group on
its own schedule (``heartbeat.interval.ms``), and aiokafka still reads every answer
(rebalance in progress, unknown member...) exactly as before. What is shared, for idle
(parked, see `_parking`) consumers, is the way there: a ``Heartbeat`` request waits for
the next tick of a grid (a quarter of its heartbeat interval, at most 1 s), and every
heartbeat due on that tick goes to the coordinator in one socket write over the
cluster's shared client (`IdleWatch.client`; its coordination connection, where no
long-poll fetch can hold it up). 150 idle consumers heartbeating every 2 s otherwise
cost 75 writes and 75 reads a second on 150 connections, each write on loopback a trip
through the kernel for both ends; on the grid it is a few writes a second. A heartbeat
leaves at most a tick late, and aiokafka times the next one from when it was due, so
the cadence is unchanged. A busy consumer heartbeats on its own connection as before
(its rebalances keep their timing).

The heartbeat routines of idle consumers also *wake* on the grid: each routine sleeps one
interval from when it last woke, so 150 of them woke the process 75 times a second at
scattered instants. While a consumer is idle, its routine's wake (the
``ensure_coordinator_known`` that starts each round) waits for the next grid point, unless
it is just past one; the interval being a whole number of ticks, the next round wakes
on a grid point again, and every idle consumer's round of a tick runs in one loop
iteration: a handful of wake-ups a second instead of one per heartbeat. A round thus
starts at most a tick late, once, and then keeps the interval.

If the shared client fails or does not answer within the heartbeat interval, that
heartbeat goes again on the consumer's own connection (a second heartbeat is harmless),
and for `_FAILURE_PAUSE_S` every consumer heartbeats on its own, as without sharing.

This relies on two aiokafka internals, exercised by tests/connectors/test_kafka.py: the
coordinator's ``_send_req`` (only ``HeartbeatRequest`` is rerouted) and a connection's
``_writer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import GroupCoordinatorNotAvailableError, KafkaError
from aiokafka.protocol.group import HeartbeatRequest

_TICKS_PER_INTERVAL = 4
"""A heartbeat waits for the grid at most a quarter of its heartbeat interval..."""
_MAX_TICK_S = 1.0
"""... and at most this long (then the interval is cut in more ticks)."""
_ON_GRID_SHARE = 0.1
"""Up to this share of a tick after a grid point, a heartbeat counts as on it (no wait)."""
_FAILURE_PAUSE_S = 5.0
"""After a failure of the shared way, consumers heartbeat alone for this long."""

_log = logging.getLogger(__name__)

SendReq = Callable[[Any], Awaitable[Any]]


class _Coalescing:
    """Stands in for a connection's stream writer: one loop iteration's writes, one write."""

    def __init__(self, writer: Any, owner: SharedHeartbeats) -> None:
        self._writer = writer
        self._owner = owner
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            asyncio.get_running_loop().call_soon(self._flush)
        self._parts.append(data)

    def _flush(self) -> None:
        parts, self._parts = self._parts, []
        if not self._writer.is_closing():  # a closed connection fails its requests itself
            self._writer.write(b"".join(parts))
            self._owner.writes += 1

    def __getattr__(self, name: str) -> Any:  # drain, close, transport...
        return getattr(self._writer, name)


class SharedHeartbeats:
    """The heartbeats of one cluster's consumers in this process (see the module).

    Args:
        client: The cluster's shared client (connected on first use).
    """

    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._client = client
        self._ticks: dict[tuple[float, int], asyncio.Future[None]] = {}
        self._failed_until = 0.0
        self.sent = 0
        """Heartbeats sent the shared way."""
        self.writes = 0
        """Socket writes they took."""

    def attach(self, consumer: AIOKafkaConsumer, idle: Callable[[], bool]) -> None:
        """Send `consumer`'s heartbeats this way while `idle()` (none without a group).

        A busy consumer heartbeats on its own connection as before: the shared way is for
        idle ones, and leaves a busy group's rebalance timing as it was.
        """
        coordinator = getattr(consumer, "_coordinator", None)
        own: SendReq | None = getattr(coordinator, "_send_req", None)
        interval_ms = getattr(coordinator, "_heartbeat_interval_ms", None)
        if coordinator is None or own is None or not isinstance(interval_ms, int):
            return
        interval = interval_ms / 1000
        tick = grid_tick(interval)
        own_ensure = coordinator.ensure_coordinator_known

        def aligned() -> bool:
            return idle() and time.monotonic() >= self._failed_until

        async def ensure_coordinator_known() -> None:
            if asyncio.current_task() is coordinator._heartbeat_task and aligned():
                due = self._tick(tick)
                if due is not None:
                    await asyncio.shield(due)
            await own_ensure()

        async def send_req(request: Any) -> Any:
            if (
                not isinstance(request, HeartbeatRequest)
                or not idle()
                or time.monotonic() < self._failed_until
            ):
                return await own(request)
            node_id = coordinator.coordinator_id
            if node_id is None:
                return await own(request)  # which raises as it always did
            try:
                return await self._send(node_id, request, interval, tick)
            except (KafkaError, OSError, TimeoutError) as exc:
                _log.debug("kafka shared heartbeats: %r; this one goes alone", exc)
                self._failed_until = time.monotonic() + _FAILURE_PAUSE_S
                return await own(request)

        coordinator._send_req = send_req
        coordinator.ensure_coordinator_known = ensure_coordinator_known

    @staticmethod
    def detach(consumer: AIOKafkaConsumer) -> None:
        """Send `consumer`'s heartbeats on its own connection again."""
        coordinator = getattr(consumer, "_coordinator", None)
        for name in ("_send_req", "ensure_coordinator_known"):
            if coordinator is not None and name in vars(coordinator):
                delattr(coordinator, name)

    async def _send(self, node_id: int, request: Any, interval: float, tick: float) -> Any:
        async with asyncio.timeout(interval):  # late: the consumer's own way still has time
            due = self._tick(tick)
            if due is not None:
                await asyncio.shield(due)
            client = await self._client()
            if not await client.ready(node_id, group=ConnectionGroup.COORDINATION):
                raise GroupCoordinatorNotAvailableError()
            conn = client._conns.get((node_id, ConnectionGroup.COORDINATION))
            writer = getattr(conn, "_writer", None)
            if writer is not None and not isinstance(writer, _Coalescing):
                conn._writer = _Coalescing(writer, self)
            self.sent += 1
            return await client.send(node_id, request, group=ConnectionGroup.COORDINATION)

    def _tick(self, tick: float) -> asyncio.Future[None] | None:
        """The next point of the `tick` grid (on the loop's clock), shared by its waiters.

        None when the loop's clock is just past a grid point (`_ON_GRID_SHARE`): go now.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - math.floor(now / tick) * tick <= _ON_GRID_SHARE * tick:
            return None
        index = math.ceil(now / tick)
        key = (tick, index)
        due = self._ticks.get(key)
        if due is None:
            due = self._ticks[key] = loop.create_future()
            loop.call_at(index * tick, self._fire, key)
        return due

    def _fire(self, key: tuple[float, int]) -> None:
        due = self._ticks.pop(key, None)
        if due is not None and not due.done():
            due.set_result(None)

    def close(self) -> None:
        """Release every heartbeat waiting for a tick (they go on to a closed client)."""
        ticks, self._ticks = self._ticks, {}
        for due in ticks.values():
            with contextlib.suppress(asyncio.InvalidStateError):
                due.set_result(None)


def grid_tick(interval: float) -> float:
    """The grid's tick for a heartbeat interval: a whole fraction of it, ≤ `_MAX_TICK_S`."""
    return interval / max(_TICKS_PER_INTERVAL, math.ceil(interval / _MAX_TICK_S))
