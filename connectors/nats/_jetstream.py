"""The JetStream listener: a durable pull consumer, acked after persist (at least once)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.js.errors import ServiceUnavailableError

from flows import ConnectorError, Delivery, ListenerContext

from .._ticker import Membership, join
from ._connection import describe
from ._consumer import DEFAULT_ACK_WAIT, Consumer, default_durable, find_stream
from ._listener import Held, Item, NatsListener, Stop, build_delivery, stop
from ._pull import EXPIRES, PullWindow

if TYPE_CHECKING:
    from ._types import NatsRealtimeTrigger

_PAUSE_AFTER_REFUSAL = 1.0  # seconds without pulling after a 409 from the server


class JetStreamListener(NatsListener):
    """JetStream: a durable pull consumer; a message is acked once its execution is durable.

    The consumer (``durableId``, or `default_durable`) is made or checked by `Consumer`
    (``_consumer.py``). Messages are pulled in requests of at most ``batchSize``, never
    more than ``maxInFlight`` minus the deliveries still unacked. A delivery held for
    more than half of the ack wait is reported in progress so the server does not
    redeliver it meanwhile; on `close` the unacked ones are nak'ed, so they come again
    at once after the next `connect`. The connection is the process's shared one for
    the server (`_shared`); the pull subscription is this listener's own.

    Attributes:
        stream: The stream consumed (known after `connect`).
        durable: The durable consumer's name.
        pull_requests: Pull requests sent so far (a figure for stats).
    """

    def __init__(self, trigger: NatsRealtimeTrigger, ctx: ListenerContext) -> None:
        super().__init__(trigger, ctx)
        self._window = PullWindow(trigger.batch_size, trigger.max_in_flight)
        self._inbox = ""
        self._pull_subject = ""
        self._ack_wait = DEFAULT_ACK_WAIT
        self._paused_until = 0.0
        self._keeper: Membership | None = None
        self._keeping: asyncio.Task[None] | None = None
        self.stream = ""
        self.durable = trigger.durable_id or default_durable(ctx)
        self._consumer = Consumer(trigger, ctx, self.durable, self.name)
        self.pull_requests = 0

    async def connect(self) -> None:
        """Connect, find the stream, create or reuse the consumer and start pulling.

        Raises:
            ConnectorError: The connection failed, JetStream is off, the stream does not
                exist (or none captures ``subject``), or the consumer cannot be made.
        """
        await self.close()
        generation = self._generation
        queue: asyncio.Queue[Item] = asyncio.Queue()
        client = await self._open(generation, queue, reconnected=self._after_reconnect)
        try:
            js = client.jetstream()
            self.stream = self._trigger.stream or await find_stream(js, self._trigger.subject)
            info = await self._consumer.ensure(js, self.stream)
            self._inbox = client.new_inbox()
            sub = await client.subscribe(
                self._inbox,
                cb=self._receiver(generation, queue),
                pending_msgs_limit=0,
                pending_bytes_limit=0,
            )
        except Exception as exc:
            await self._release()
            if isinstance(exc, ConnectorError):
                raise
            if isinstance(exc, NoRespondersError | ServiceUnavailableError):
                raise ConnectorError(
                    f"JetStream does not answer on {self._endpoint.display}"
                    " (is it enabled, for this account?)"
                ) from exc
            raise ConnectorError(
                f"JetStream consumer '{self.durable}' on {self._endpoint.display}: {describe(exc)}"
            ) from exc
        self._ack_wait = info.config.ack_wait or DEFAULT_ACK_WAIT
        self._pull_subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.durable}"
        self._window.reset()
        self._paused_until = 0.0
        self._client, self._queue, self._sub = client, queue, sub
        tick = max(0.05, min(self._ack_wait / 4, 5.0))
        self._keeper = join(tick, lambda: self._keep(generation))
        await self._pull()

    def _subjects(self) -> tuple[str, ...]:
        return (self._trigger.subject, self._inbox, self._pull_subject)

    # ---- receiving ----

    def _receiver(
        self, generation: int, queue: asyncio.Queue[Item]
    ) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            if generation != self._generation:
                return
            if not msg.reply:  # a status from the server about a pull request
                await self._status(msg, queue)
                return
            self._window.delivered()
            held = Held(msg, generation)
            self._held[held] = None
            queue.put_nowait((held, dt.datetime.now(dt.UTC)))
            await self._pull()  # a filled request may leave room for another

        return receive

    async def _status(self, msg: Msg, queue: asyncio.Queue[Item]) -> None:
        headers = msg.headers or {}
        code = headers.get("Status", "")
        description = headers.get("Description", "")
        if code == "100":  # idle heartbeat
            return
        if code == "409" and "deleted" in description.lower():
            stop(queue, f"JetStream consumer '{self.durable}' was deleted")
            return
        if code == "503":
            stop(queue, f"JetStream did not answer pulls from '{self.durable}' (no responders)")
            return
        self._window.ended()
        if code == "409":
            if "leadership" in description.lower():
                self._window.reset()
            else:
                self._ctx.log(
                    "WARN", f"JetStream refused a pull from '{self.durable}': 409 {description}"
                )
                self._paused_until = time.monotonic() + _PAUSE_AFTER_REFUSAL
        await self._pull()

    def _room(self) -> int:
        """How many messages a pull may ask for now: 0 while unconnected, paused or full."""
        if self._client is None or time.monotonic() < self._paused_until:
            return 0
        return self._window.want(len(self._held))

    async def _pull(self) -> None:
        """Ask for as many messages as there is room for (see `PullWindow`)."""
        client = self._client
        count = self._room()
        if client is None or count <= 0:
            return
        self._window.opened(count, time.monotonic() + EXPIRES)
        self.pull_requests += 1
        request = {"batch": count, "expires": int(EXPIRES * 1e9)}
        try:
            await client.publish(
                self._pull_subject, json.dumps(request).encode(), reply=self._inbox
            )
        except Exception as exc:  # the connection is closing: the iterator will say why
            self._window.reset()
            self._ctx.log("WARN", f"JetStream pull failed: {describe(exc)}")

    async def _after_reconnect(self) -> None:
        # Pull requests may have died with the old connection: ask again.
        self._window.reset()
        await self._pull()

    def _keep(self, generation: int) -> None:
        """Every tick: forget expired pulls; report long-held deliveries, pull again.

        Called by the loop's shared ticker (`connectors._ticker`), so it only decides:
        an idle consumer (nothing held, its pull request open) costs no task.
        """
        if generation != self._generation or self._client is None:
            return
        if self._keeping is not None and not self._keeping.done():
            return  # the previous tick's work is still going
        now = time.monotonic()
        self._window.expire(now)
        late = [h for h in self._held if now - h.progressed >= self._ack_wait / 2]
        if late or self._room() > 0:
            self._keeping = asyncio.create_task(self._progress(late), name=f"nats {self.name}")

    async def _progress(self, late: list[Held]) -> None:
        now = time.monotonic()
        for held in late:
            if held not in self._held:
                continue  # acked meanwhile
            held.progressed = now
            try:
                await held.msg.in_progress()
            except Exception as exc:  # the connection is failing: the iterator will say
                self._ctx.log("WARN", f"JetStream in-progress ack failed: {describe(exc)}")
                break
        await self._pull()

    # ---- the Listener interface ----

    async def events(self) -> AsyncIterator[Delivery]:
        """Yield deliveries in the order the consumer delivers them.

        Raises:
            ConnectorError: Not connected, the connection was lost for good, or the
                consumer disappeared.
        """
        queue, generation = self._current()
        while True:
            item = await queue.get()
            if isinstance(item, Stop):
                if item.reason is not None:
                    raise ConnectorError(item.reason)
                return
            held, received_at = item
            if held.generation != generation or held not in self._held:
                continue  # from before a close: it will come again
            yield build_delivery(held, self._trigger, received_at, jetstream=True)

    async def ack(self, delivery: Delivery) -> None:
        """Acknowledge the message to JetStream (done once; stale deliveries are ignored).

        Raises:
            ConnectorError: The ack could not be sent on the current connection.
        """
        held = delivery.token
        if not isinstance(held, Held) or held not in self._held:
            return  # acked already, or from a closed connection: it comes again
        self._held.pop(held, None)
        try:
            await held.msg.ack()
        except Exception as exc:
            if held.generation == self._generation:
                raise ConnectorError(
                    f"JetStream ack of {delivery.source} failed: {describe(exc)}"
                ) from exc
            return
        await self._pull()

    async def close(self) -> None:
        """Stop pulling, nak the unacked deliveries and leave the connection.

        The naks go out in arrival order, so the next `connect` gets them again at once
        (the server may reorder them; a broken connection sends none: they come back
        after the ack wait). Their dedupe keys are unchanged.
        """
        keeper, self._keeper = self._keeper, None
        keeping, self._keeping = self._keeping, None
        if keeper is not None:
            keeper.leave()
        sub = self._sub
        client, held = await self._shutdown()
        if keeping is not None:
            keeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeping
        self._window.reset()
        if client is None:
            await self._release()
            return
        if client.is_connected:
            with contextlib.suppress(Exception):
                if sub is not None:
                    # Open pull requests lose their interest first (the server reads
                    # in order): the naks below are not redelivered to this listener.
                    await sub.unsubscribe()
                for item in held:
                    await item.msg.nak()
        elif sub is not None:
            await self._unsubscribe(client, sub)
        await self._release()
