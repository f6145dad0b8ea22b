"""What both NATS listeners share, and the core NATS (at most once) listener."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import SlowConsumerError

from flows import (
    ConnectorError,
    Delivery,
    Event,
    Listener,
    ListenerContext,
    PoisonMessage,
    SerdeError,
)

from ._connection import Endpoint, NatsClient, describe, round_trip
from ._serde import deserialize, sent_at
from ._shared import SharedConnection, Watcher, join

if TYPE_CHECKING:
    from ._types import NatsRealtimeTrigger

PENDING_MSGS = 65_536
"""Messages a core subscription buffers in the client before NATS drops (slow consumer)."""
PENDING_BYTES = 64 * 1024 * 1024
"""Bytes a core subscription buffers in the client before NATS drops (slow consumer)."""
_DROP_LOG_EVERY = 5.0  # seconds between two slow-consumer warnings
_log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Held:
    """A delivery the host has not acked yet: the `Event.token` of a NATS delivery.

    Attributes:
        msg: The NATS message.
        generation: The connection it came on (acks from an older one are ignored).
        progressed: When it arrived or was last reported in progress (monotonic).
    """

    msg: Msg
    generation: int
    progressed: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Stop:
    """Queued after the last message: the subscription ended (`reason`: it broke)."""

    reason: str | None = None


Item = tuple[Held, dt.datetime] | Stop


def stop(queue: asyncio.Queue[Item], reason: str | None) -> None:
    """End `queue` for its reader, making room when it is full (those are lost or redelivered)."""
    while queue.full():
        queue.get_nowait()
    queue.put_nowait(Stop(reason))


def build_delivery(
    held: Held, trigger: NatsRealtimeTrigger, received_at: dt.datetime, *, jetstream: bool
) -> Delivery:
    """The `Event` for a message, or a `PoisonMessage` when its body cannot be read.

    Variables: ``subject``, ``data``, ``headers`` (name → value; a header sent several
    times gives its values joined by ``", "``), ``timestamp`` (ISO-8601: the JetStream
    store time, else the receive time) and, with JetStream, ``sequence`` (stream
    sequence). The dedupe key is ``nats:{stream}:{sequence}`` with JetStream, None with
    core NATS.
    """
    msg = held.msg
    headers = dict(msg.headers or {})
    metadata: dict[str, Any] = {"subject": msg.subject, "headers": headers}
    dedupe_key: str | None = None
    timestamp = received_at
    source = f"nats:{msg.subject}"
    if jetstream:
        try:
            meta = msg.metadata
        except Exception as exc:  # not a JetStream reply subject
            return PoisonMessage(
                reason=f"no JetStream metadata in reply '{msg.reply}': {describe(exc)}",
                raw=msg.data,
                source=source,
                metadata=metadata,
                token=held,
            )
        sequence = meta.sequence.stream
        dedupe_key = source = f"nats:{meta.stream}:{sequence}"
        timestamp = meta.timestamp
        metadata |= {
            "stream": meta.stream,
            "consumer": meta.consumer,
            "sequence": sequence,
            "deliveries": meta.num_delivered,
        }
    try:
        data = deserialize(trigger.deserializer, msg.data)
    except SerdeError as exc:
        return PoisonMessage(
            reason=f"{trigger.deserializer.value} deserializer: {exc}",
            raw=msg.data,
            source=source,
            metadata=metadata,
            token=held,
        )
    variables: dict[str, Any] = {
        "subject": msg.subject,
        "data": data,
        "headers": headers,
        "timestamp": timestamp.isoformat(),
    }
    if jetstream:
        variables["sequence"] = metadata["sequence"]
    return Event(
        dedupe_key=dedupe_key,
        variables=variables,
        raw=msg.data,
        source=source,
        metadata=metadata,
        published_at=sent_at(headers) or (timestamp if jetstream else None),
        received_at=received_at,
        token=held,
    )


class NatsListener(Listener):
    """The connection handling both NATS listeners share.

    The client reconnects by itself a few times; once it gives up, the iterator raises
    `flows.ConnectorError` and the host reconnects. Every `connect` starts a new
    generation: deliveries of an older one are no longer acked (they come again).
    """

    def __init__(self, trigger: NatsRealtimeTrigger, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._endpoint = Endpoint(
            trigger.url, trigger.username, trigger.password, trigger.token, trigger.creds
        )
        self._client: NatsClient | None = None
        self._queue: asyncio.Queue[Item] | None = None
        self._generation = 0
        self._held: dict[Held, None] = {}  # in arrival order
        self._sub: Subscription | None = None
        self._lease: tuple[SharedConnection, Watcher] | None = None
        self._dropped = 0
        self._drop_logged = 0.0

    @property
    def name(self) -> str:
        """The trigger, as logs name it."""
        return f"{self._ctx.namespace}.{self._ctx.flow_id}/{self._ctx.trigger_id}"

    @property
    def in_flight(self) -> int:
        """Deliveries read and not acked yet."""
        return len(self._held)

    def _current(self) -> tuple[asyncio.Queue[Item], int]:
        if self._queue is None or self._client is None:
            raise ConnectorError(f"NATS listener {self.name}: not connected")
        return self._queue, self._generation

    async def _open(
        self,
        generation: int,
        queue: asyncio.Queue[Item],
        reconnected: Callable[[], Awaitable[None]] | None = None,
    ) -> NatsClient:
        """Join the process's shared connection to the endpoint (see `_shared`).

        Raises:
            ConnectorError: The connection cannot be opened.
        """
        endpoint = self._endpoint

        async def on_error(exc: Exception) -> None:
            if generation == self._generation:
                self._on_error(exc)

        async def on_disconnected() -> None:
            if generation == self._generation:
                self._ctx.log("WARN", f"disconnected from NATS {endpoint.display}; reconnecting")

        async def on_reconnected() -> None:
            if generation == self._generation:
                self._ctx.log("INFO", f"reconnected to NATS {endpoint.display}")
                if reconnected is not None:
                    await reconnected()

        def on_closed(reason: str) -> None:
            # close() moves to the next generation first: this is the client giving up.
            if generation == self._generation:
                stop(queue, reason)

        watcher = Watcher(on_error, on_disconnected, on_reconnected, on_closed)
        shared, client = await join(endpoint, watcher)
        self._lease = (shared, watcher)
        return client

    def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            if self._owns(exc.sub):  # another trigger's subscription: its business
                self._count_drop(exc.subject)
        elif self._concerns(exc):
            self._ctx.log("WARN", f"NATS {self._endpoint.display}: {describe(exc)}")

    def _owns(self, sub: Subscription) -> bool:
        """Whether ``sub`` is this listener's subscription."""
        return sub is self._sub

    def _subjects(self) -> tuple[str, ...]:
        """The subjects this listener subscribes or publishes to."""
        return (self._trigger.subject,)

    def _concerns(self, exc: Exception) -> bool:
        """Whether an error of the shared connection is this listener's to log.

        A permissions violation names its subject: only the listener using that
        subject logs it. Anything else is about the connection: every listener logs it.
        """
        text = str(exc)
        if "permissions violation" not in text.lower():
            return True
        return any(subject and subject in text for subject in self._subjects())

    def _count_drop(self, subject: str) -> None:
        self._dropped += 1
        now = time.monotonic()
        if now - self._drop_logged >= _DROP_LOG_EVERY:
            self._drop_logged = now
            self._ctx.log(
                "WARN",
                f"core NATS dropped {self._dropped} message(s) so far on '{subject}': the "
                f"listener is a slow consumer (maxInFlight {self._trigger.max_in_flight} "
                f"reached and {PENDING_MSGS} messages buffered); core NATS is at most once, "
                "use JetStream (stream/durableId) to lose nothing",
            )

    async def _shutdown(self) -> tuple[NatsClient | None, list[Held]]:
        """Move to a new generation and end the reader; returns what to release."""
        self._generation += 1
        client, self._client = self._client, None
        self._sub = None
        queue, self._queue = self._queue, None
        held = list(self._held)
        self._held.clear()
        if queue is not None:
            stop(queue, None)
        return client, held

    async def _release(self) -> None:
        """Leave the shared connection (the last listener on it closes it)."""
        lease, self._lease = self._lease, None
        if lease is not None:
            shared, watcher = lease
            await shared.release(watcher)

    async def _unsubscribe(self, client: NatsClient, sub: Subscription | None) -> None:
        """End this listener's subscription; the shared connection stays for the others."""
        if sub is None or client.is_closed:
            return
        try:
            await sub.unsubscribe()
        except Exception as exc:  # the connection is failing: it goes with it
            _log.debug("nats: unsubscribe: %s", describe(exc))


class CoreListener(NatsListener):
    """Core NATS: a plain subscription, at most once.

    Messages published while no listener is subscribed are never seen, and a delivery
    is not acknowledged to anyone (`ack` only frees a ``maxInFlight`` slot): there is no
    dedupe key and no redelivery after `close`. Backpressure: once ``maxInFlight``
    deliveries are unacked the listener stops reading; the client then buffers up to
    `PENDING_MSGS` messages (`PENDING_BYTES`) and beyond that NATS drops messages for
    this slow consumer (counted and logged). ``queueGroup`` shares the messages between
    the listeners of the group.
    """

    def __init__(self, trigger: NatsRealtimeTrigger, ctx: ListenerContext) -> None:
        super().__init__(trigger, ctx)
        self._room = asyncio.Event()

    async def connect(self) -> None:
        """Connect and subscribe to ``subject`` (in ``queueGroup`` if given).

        Raises:
            ConnectorError: The connection or the subscription failed.
        """
        await self.close()
        generation = self._generation
        queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=self._trigger.max_in_flight)
        client = await self._open(generation, queue)

        async def on_message(msg: Msg) -> None:
            await queue.put((Held(msg, generation), dt.datetime.now(dt.UTC)))

        sub: Subscription | None = None
        try:
            sub = self._sub = await client.subscribe(
                self._trigger.subject,
                queue=self._trigger.queue_group or "",
                cb=on_message,
                pending_msgs_limit=PENDING_MSGS,
                pending_bytes_limit=PENDING_BYTES,
            )
            await round_trip(client)  # the server has the subscription on return
        except Exception as exc:
            self._sub = None
            await self._unsubscribe(client, sub)
            await self._release()
            raise ConnectorError(
                f"cannot subscribe to '{self._trigger.subject}' on NATS "
                f"{self._endpoint.display}: {describe(exc)}"
            ) from exc
        self._client, self._queue = client, queue
        self._room.set()

    async def events(self) -> AsyncIterator[Delivery]:
        """Yield deliveries in arrival order, at most ``maxInFlight`` unacked.

        Raises:
            ConnectorError: Not connected, or the connection was lost for good.
        """
        queue, generation = self._current()
        limit = self._trigger.max_in_flight
        while True:
            while len(self._held) >= limit and generation == self._generation:
                self._room.clear()
                await self._room.wait()
            if generation != self._generation:
                return
            item = await queue.get()
            if isinstance(item, Stop):
                if item.reason is not None:
                    raise ConnectorError(item.reason)
                return
            held, received_at = item
            self._held[held] = None
            yield build_delivery(held, self._trigger, received_at, jetstream=False)

    async def ack(self, delivery: Delivery) -> None:
        """Free the delivery's ``maxInFlight`` slot (core NATS has no acknowledgement)."""
        self._held.pop(delivery.token, None)
        if len(self._held) < self._trigger.max_in_flight:
            self._room.set()

    async def close(self) -> None:
        """Unsubscribe and leave the connection; messages not yet read are lost (at most once)."""
        sub = self._sub
        client, _ = await self._shutdown()
        self._room.set()
        if client is not None:
            await self._unsubscribe(client, sub)
        await self._release()
