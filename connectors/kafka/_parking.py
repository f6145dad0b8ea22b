"""Parking an idle Kafka listener with its cluster's `IdleWatch` (see `_watch`).

A parked listener's partitions are paused once the watch's shared fetch covers them, and
resumed when the watch sees records for them or the listener polls records itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ._session import Session
from ._watch import Parking

_POSITION_TIMEOUT_S = 1.0


class IdleParking:
    """Parks and unparks the sessions of one listener.

    Args:
        current: The listener's current session (a parked callback for an older one
            does nothing).
        wait_ms: The fetch wait the watch uses for this listener's partitions.
    """

    def __init__(self, current: Callable[[], Session | None], wait_ms: int) -> None:
        self._current = current
        self._wait_ms = wait_ms

    async def park(self, session: Session) -> None:
        """Hand the partitions to the watch (they are paused once its fetch covers them)."""
        consumer, watch = session.consumer, session.watch
        tps = set(consumer.assignment())
        if watch is None or not tps or consumer.paused() or self._current() is not session:
            return
        positions: dict[TopicPartition, int] = {}
        try:
            async with asyncio.timeout(_POSITION_TIMEOUT_S):
                for tp in sorted(tps):
                    positions[tp] = int(await consumer.position(tp))
        except (TimeoutError, KafkaError):
            return  # no position yet (a reset, a rebalance): try again after the next poll
        if self._current() is not session or set(consumer.assignment()) != tps:
            return
        parking = Parking(
            positions,
            self._wait_ms,
            cover=lambda: self._cover(session, parking),
            wake=lambda: self._wake(session, parking),
        )
        if watch.park(parking):
            session.parking = parking

    def unpark(self, session: Session) -> None:
        """Take the partitions back from the watch and resume those it paused."""
        parking, session.parking = session.parking, None
        if parking is not None and session.watch is not None:
            session.watch.unpark(parking)
        self._resume_parked(session)

    def _cover(self, session: Session, parking: Parking) -> None:
        if session.parking is not parking or self._current() is not session:
            return
        consumer = session.consumer
        tps = set(parking.positions).intersection(consumer.assignment())
        consumer.pause(*tps)
        session.watch_paused = tps

    def _wake(self, session: Session, parking: Parking) -> None:
        if session.parking is parking:
            session.parking = None
            self._resume_parked(session)

    @staticmethod
    def _resume_parked(session: Session) -> None:
        paused, session.watch_paused = session.watch_paused, set()
        consumer = session.consumer
        tps = paused.intersection(consumer.assignment())
        if tps:
            consumer.resume(*tps)
