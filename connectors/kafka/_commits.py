"""Offset commits of a Kafka listener: batched, on revoke, on close; seeks on assignment.

Per partition the offset committed is the one after the longest acked prefix of what
was delivered (`PartitionAcks`). A commit round trip collects the acks that arrive
meanwhile, and commits are at least ``_COMMIT_INTERVAL_S`` apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from flows import ListenerContext

from ._offsets import PartitionAcks
from ._session import Session

if TYPE_CHECKING:
    from ._types import KafkaRealtimeTrigger

_COMMIT_INTERVAL_S = 0.05
_COMMIT_RETRY_S = 1.0
COMMIT_TIMEOUT_S = 5.0


class Commits:
    """Commits a listener's acked offsets and follows its partition assignment.

    Args:
        trigger: The trigger (its ``since``).
        ctx: The host's context (for logs).
        current: The listener's current session (a failed commit of an older one is
            not retried).
        unpark: Takes a session's partitions back from the idle watch (before a revoke).
    """

    def __init__(
        self,
        trigger: KafkaRealtimeTrigger,
        ctx: ListenerContext,
        current: Callable[[], Session | None],
        unpark: Callable[[Session], None],
    ) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._current = current
        self._unpark = unpark

    async def loop(self, session: Session) -> None:
        """Commit whenever an ack made an offset committable (the session's task)."""
        while True:
            await session.wake_commit.wait()
            session.wake_commit.clear()
            if await self.commit(session):
                await asyncio.sleep(_COMMIT_INTERVAL_S)
            else:
                await asyncio.sleep(_COMMIT_RETRY_S)
                session.wake_commit.set()

    async def commit(self, session: Session, only: set[TopicPartition] | None = None) -> bool:
        """Commit every committable offset (of `only` when given); False to retry later."""
        async with session.commit_lock:
            due = {
                tp: (acks, acks.committable)
                for tp, acks in session.parts.items()
                if acks.dirty and (only is None or tp in only)
            }
            if not due:
                return True
            try:
                await session.consumer.commit({tp: offset for tp, (_, offset) in due.items()})
            except KafkaError as exc:
                # A rebalance (CommitFailedError) or an unassigned partition: those records
                # are someone else's now. Anything else: try again later.
                retry = getattr(exc, "retriable", False) and self._current() is session
                self._ctx.log("WARN", f"Kafka offset commit failed: {exc!r}")
                return not retry
            for acks, offset in due.values():
                acks.committed = offset
            return True

    # ---- rebalance ----------------------------------------------------------------------

    async def revoked(self, session: Session, revoked: set[TopicPartition]) -> None:
        """Commit what the revoked partitions acked, then forget them."""
        self._unpark(session)
        try:
            await asyncio.wait_for(self.commit(session, revoked), COMMIT_TIMEOUT_S)
        except TimeoutError:
            self._ctx.log("WARN", "Kafka: offset commit on revoke timed out")
        for tp in revoked:
            session.parts.pop(tp, None)

    async def assigned(self, session: Session, assigned: set[TopicPartition]) -> None:
        """Track the new partitions' acks; seek fresh ones to ``since``."""
        for tp in assigned:
            session.parts[tp] = PartitionAcks()
        await self.seek_since(session, assigned)

    async def seek_since(self, session: Session, tps: set[TopicPartition]) -> None:
        """Start partitions the group never committed at the trigger's ``since`` time."""
        since = self._trigger.since
        if since is None or not tps:
            return
        consumer = session.consumer
        try:
            ordered = sorted(tps)
            committed = await asyncio.gather(*(consumer.committed(tp) for tp in ordered))
            fresh = [tp for tp, offset in zip(ordered, committed, strict=True) if offset is None]
            if not fresh:
                return
            millis = int(since.timestamp() * 1000)
            found = await consumer.offsets_for_times(dict.fromkeys(fresh, millis))
            for tp in fresh:
                position = found.get(tp)
                if position is None:
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, position.offset)
        except KafkaError as exc:
            self._ctx.log("WARN", f"Kafka: cannot seek to since={since.isoformat()}: {exc!r}")
