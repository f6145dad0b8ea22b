"""LISTEN/NOTIFY: one event per notification, at most once.

Postgres keeps no notification for a session that is not listening, and forgets one
once it is sent: a notification sent while Kestrel is disconnected, or received but not
yet made an execution when the connection drops, is lost. Acks only free in-flight slots.

The connection is the process's shared LISTEN connection to the database (`_listen`):
the NOTIFY triggers of a listener host on one database and user hold one connection,
each with its own channel callback.

Backpressure: notifications wait in a buffer; at ``maxInFlight`` unacknowledged events
nothing more is yielded, and when the buffer also holds ``maxInFlight`` notifications
the connection's socket is no longer read (for every trigger on it, see `_listen`), so
the server holds the rest in its own notification queue (the buffer can exceed its
bound by what one socket read carried).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext, PoisonMessage

from ._listen import SharedListen, Subscriber, join
from ._serde import decode_payload

if TYPE_CHECKING:
    from ._types import PostgresRealtimeTrigger

# A connection that has said nothing for this long is asked ``SELECT 1``, so a peer
# that vanished without closing the socket is noticed.
HEALTH_CHECK_S = 30.0


class NotifyListener(Listener):
    """``postgres.RealtimeTrigger`` with a ``channel`` and no ``table``.

    Events carry ``trigger.channel`` and ``trigger.payload`` (the text, or the decoded
    JSON with ``deserializer: JSON``) and no dedupe key. A payload that is not JSON when
    JSON is asked for becomes a `PoisonMessage`.
    """

    def __init__(self, trigger: PostgresRealtimeTrigger, ctx: ListenerContext) -> None:
        if trigger.channel is None:
            raise ConnectorError("LISTEN/NOTIFY needs a 'channel'")
        self._trigger = trigger
        self._ctx = ctx
        self._channel = trigger.channel
        self._limit = trigger.max_in_flight
        self._conn: asyncpg.Connection[Any] | None = None
        self._shared: SharedListen | None = None
        self._subscriber: Subscriber | None = None
        self._generation = 0
        self._seq = 0
        self._pending: deque[tuple[int, str]] = deque()
        self._unacked: set[int] = set()
        self._wakeup = asyncio.Event()
        self._lost: str | None = None
        self._paused = False

    async def connect(self) -> None:
        """LISTEN on the channel, on the process's shared connection to the database.

        Raises:
            ConnectorError: The server cannot be reached or refuses the LISTEN.
        """
        await self.close()
        self._generation += 1
        self._lost = None
        subscriber = Subscriber(self._channel, self._on_notify, self._on_lost)
        shared = await join(
            self._trigger.dsn(),
            self._trigger.username,
            self._trigger.password,
            subscriber,
            health_every_s=HEALTH_CHECK_S,
        )
        self._shared, self._subscriber, self._conn = shared, subscriber, shared.conn

    async def events(self) -> AsyncIterator[Delivery]:
        """Notifications in the order the server sent them.

        Raises:
            ConnectorError: Not connected, or the connection was lost.
        """
        generation = self._generation
        if self._conn is None:
            raise ConnectorError("the listener is not connected")
        while self._conn is not None and self._generation == generation:
            if self._lost is not None:
                raise ConnectorError(self._lost)
            if self._pending and len(self._unacked) < self._limit:
                pid, payload = self._pending.popleft()
                self._resume_if_drained()
                yield self._delivery(pid, payload)
                continue
            self._wakeup.clear()
            try:
                async with asyncio.timeout(HEALTH_CHECK_S):
                    await self._wakeup.wait()
            except TimeoutError:
                await self._check_health()

    async def ack(self, delivery: Delivery) -> None:
        """Free the delivery's in-flight slot (NOTIFY has nothing to acknowledge)."""
        token = delivery.token
        if not isinstance(token, tuple) or token[0] != self._generation:
            return
        self._unacked.discard(token[1])
        self._wakeup.set()

    async def close(self) -> None:
        """UNLISTEN and leave the connection; buffered notifications are dropped."""
        self._conn = None
        shared, self._shared = self._shared, None
        subscriber, self._subscriber = self._subscriber, None
        self._pending.clear()
        self._unacked.clear()
        self._wakeup.set()
        self._paused = False
        if shared is not None and subscriber is not None:
            await shared.leave(subscriber)  # the last trigger on it closes it

    def _delivery(self, pid: int, payload: str) -> Delivery:
        self._seq += 1
        token = (self._generation, self._seq)
        self._unacked.add(self._seq)
        source = f"pg:{self._channel}"
        metadata = {"channel": self._channel, "pid": pid}
        raw = payload.encode()
        try:
            value = decode_payload(payload, self._trigger.deserializer)
        except ValueError as exc:
            return PoisonMessage(
                reason=str(exc), raw=raw, source=source, metadata=metadata, token=token
            )
        return Event(
            dedupe_key=None,
            variables={"channel": self._channel, "payload": value},
            raw=raw,
            source=source,
            metadata=metadata,
            token=token,
        )

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object, /) -> None:
        if self._conn is None or conn is not self._conn:
            return
        self._pending.append((pid, str(payload)))
        self._wakeup.set()
        if not self._paused and len(self._pending) >= self._limit:
            self._set_reading(reading=False)

    def _resume_if_drained(self) -> None:
        if self._paused and len(self._pending) <= self._limit // 2:
            self._set_reading(reading=True)

    def _set_reading(self, *, reading: bool) -> None:
        """Hold or release the shared socket for this trigger (see `SharedListen.hold`)."""
        shared, subscriber = self._shared, self._subscriber
        if shared is None or subscriber is None:
            return
        if reading:
            shared.release_hold(subscriber)
        else:
            shared.hold(subscriber)
        self._paused = not reading

    def _on_lost(self, reason: str) -> None:
        self._lost = reason
        self._wakeup.set()

    async def _check_health(self) -> None:
        shared = self._shared
        if shared is not None and not self._paused:
            await shared.check_health()
