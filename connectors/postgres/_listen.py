"""One LISTEN connection per database and user for all the NOTIFY triggers of a process.

A LISTEN lives on a session, so each NOTIFY trigger used to hold a connection of its
own: one Postgres backend process and one ``max_connections`` slot per trigger. The
triggers of a process listening on the same database as the same user instead share
one connection (`join`): each adds its own listener callback for its channel (asyncpg
sends ``LISTEN`` for a channel's first callback and ``UNLISTEN`` after its last), reads
and decodes its own notifications, and leaves without touching the others (`leave`).
The connection is reference counted: the last trigger to leave closes it.

Statements on the connection (LISTEN, UNLISTEN, the health check) are serialised: a
connection runs one at a time. When the connection is lost, every trigger on it hears
so and ends its iterator; the host reconnects each, and the first of them opens the next
connection (the others arriving meanwhile wait for that same attempt).

Backpressure is per trigger, but the socket is one: while any trigger's buffer is full
the socket is not read (`hold`), which holds back the other triggers on the connection
too, until that trigger drains (the server keeps the notifications queued meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from flows import ConnectorError

from ._connect import DB_ERRORS, close_connection, describe, open_connection

HEALTH_TIMEOUT_S = 10.0
APPLICATION_NAME = "kestrel listen"
"""The shared connections' ``application_name`` (what ``pg_stat_activity`` shows)."""
Key = tuple[str, str | None, str | None]
NotifyCallback = Callable[[object, int, str, object], None]


@dataclass(eq=False, slots=True)
class Subscriber:
    """One trigger on a shared LISTEN connection.

    Attributes:
        channel: The channel it listens on.
        notify: asyncpg's listener callback ``(conn, pid, channel, payload)``.
        lost: Called with a reason when the connection is lost.
    """

    channel: str
    notify: NotifyCallback
    lost: Callable[[str], None]


class SharedListen:
    """A LISTEN connection and the triggers on it."""

    def __init__(
        self, key: Key, registry: dict[Key, SharedListen], *, health_every_s: float
    ) -> None:
        self._key = key
        self._registry = registry
        self._health_every_s = health_every_s
        self._subscribers: dict[Subscriber, None] = {}
        self._opening: asyncio.Task[asyncpg.Connection[Any]] | None = None
        self.conn: asyncpg.Connection[Any] | None = None
        self._lock = asyncio.Lock()
        self._held: set[Subscriber] = set()
        self._checked = time.monotonic()
        self.closed = False

    async def _open(self) -> asyncpg.Connection[Any]:
        dsn, username, password = self._key
        conn = await open_connection(
            dsn, username, password, json_codecs=False, application_name=APPLICATION_NAME
        )
        conn.add_termination_listener(self._terminated)
        return conn

    async def join(self, subscriber: Subscriber) -> asyncpg.Connection[Any]:
        """LISTEN on the subscriber's channel on the shared connection (opened once).

        Raises:
            ConnectorError: The connection cannot be opened, or the LISTEN failed.
        """
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            conn = await asyncio.shield(opening)
        except Exception:  # the next `join` tries again with a new connection
            self._forget()
            raise
        except asyncio.CancelledError:
            if not self._subscribers:
                opening.add_done_callback(self._close_if_unused)
            raise
        self.conn = conn
        if self.closed or conn.is_closed():
            raise ConnectorError("the connection to Postgres was lost")
        self._subscribers[subscriber] = None
        try:
            async with self._lock:
                await conn.add_listener(subscriber.channel, subscriber.notify)
        except DB_ERRORS as exc:
            await self.leave(subscriber)
            raise ConnectorError(
                f"cannot LISTEN on '{subscriber.channel}': {describe(exc)}"
            ) from exc
        except BaseException:  # cancelled: the caller never learns of its subscription
            self._abandon(subscriber)
            raise
        return conn

    def _abandon(self, subscriber: Subscriber) -> None:
        """Drop a subscriber without waiting (its callback ignores what still comes)."""
        self._subscribers.pop(subscriber, None)
        self._held.discard(subscriber)
        if self._subscribers or self.closed or self.conn is None:
            return
        self.closed = True
        self._forget()
        task = asyncio.ensure_future(close_connection(self.conn))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def leave(self, subscriber: Subscriber) -> None:
        """UNLISTEN the subscriber's callback; the last subscriber closes the connection."""
        if subscriber not in self._subscribers:
            return
        del self._subscribers[subscriber]
        self.release_hold(subscriber)
        conn = self.conn
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(*DB_ERRORS):
                async with self._lock:
                    await conn.remove_listener(subscriber.channel, subscriber.notify)
        if self._subscribers or self.closed:
            return
        self.closed = True
        self._forget()
        if conn is not None:
            await close_connection(conn)

    # ---- flow control: one socket for every trigger on it ----

    def hold(self, subscriber: Subscriber) -> None:
        """Stop reading the socket while this subscriber's buffer is full."""
        self._held.add(subscriber)
        self._set_reading(reading=False)

    def release_hold(self, subscriber: Subscriber) -> None:
        """This subscriber drained: read again once no subscriber is full."""
        self._held.discard(subscriber)
        if not self._held:
            self._set_reading(reading=True)

    def _set_reading(self, *, reading: bool) -> None:
        """Pause or resume reading the socket (asyncpg offers no public way to)."""
        transport = getattr(self.conn, "_transport", None)
        switch = getattr(transport, "resume_reading" if reading else "pause_reading", None)
        if callable(switch):
            with contextlib.suppress(RuntimeError):
                switch()

    # ---- health ----

    async def check_health(self) -> None:
        """``SELECT 1`` when nobody checked lately, so a vanished peer is noticed.

        Skipped while the socket is held (the answer could not be read).

        Raises:
            ConnectorError: The connection failed.
        """
        conn = self.conn
        now = time.monotonic()
        if conn is None or self._held or now - self._checked < self._health_every_s / 2:
            return
        self._checked = now
        try:
            async with self._lock:
                await conn.fetchval("SELECT 1", timeout=HEALTH_TIMEOUT_S)
        except DB_ERRORS as exc:
            raise ConnectorError(f"the connection to Postgres failed: {describe(exc)}") from exc

    # ---- the end ----

    def _terminated(self, conn: object, /) -> None:
        if self.closed:
            return
        self.closed = True
        self._forget()  # the next `join` opens a new connection
        for subscriber in list(self._subscribers):
            subscriber.lost("the connection to Postgres was lost")

    def _close_if_unused(self, opening: asyncio.Future[asyncpg.Connection[Any]]) -> None:
        """An open whose every caller was cancelled must not leave its connection open."""
        if opening.cancelled() or opening.exception() is not None:
            return
        if self._subscribers or self.closed:
            return
        self.closed = True
        self._forget()
        task = asyncio.ensure_future(close_connection(opening.result()))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _forget(self) -> None:
        if self._registry.get(self._key) is self:
            del self._registry[self._key]


# One registry per event loop: a connection belongs to the loop that opened it.
_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Key, SharedListen]] = (
    weakref.WeakKeyDictionary()
)


async def join(
    dsn: str,
    username: str | None,
    password: str | None,
    subscriber: Subscriber,
    *,
    health_every_s: float,
) -> SharedListen:
    """LISTEN for ``subscriber`` on this process's shared connection to the database.

    Raises:
        ConnectorError: The connection cannot be opened, or the LISTEN failed.
    """
    registry = _REGISTRIES.setdefault(asyncio.get_running_loop(), {})
    key: Key = (dsn, username, password)
    shared = registry.get(key)
    if shared is None or shared.closed:
        shared = registry[key] = SharedListen(key, registry, health_every_s=health_every_s)
    await shared.join(subscriber)
    return shared
