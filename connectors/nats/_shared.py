"""One NATS connection per server and credentials for all the listeners of a process.

A listener host runs many triggers; each holding its own connection cost one socket,
one reader task, one ping timer and one server-side client per trigger. Listeners of
the same `Endpoint` instead share a connection (`join`), each with its own
subscription, its own acks and its own error handling: a trigger's poison message,
slow-consumer drops or unsubscribe touch only its subscription. The connection is
reference counted: the last listener to `release` it closes it.

Connection events go to every listener on it (`Watcher`). nats-py reconnects by itself
a few times; when it gives up, every listener's iterator ends with the reason, the host
reconnects each, and the first of them opens the next shared connection (the others
that arrive meanwhile wait for that same attempt): one reconnect for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from flows import ConnectorError

from ._connection import Endpoint, NatsClient, describe, open_connection

_log = logging.getLogger(__name__)

CONNECTION_NAME = "kestrel listeners"


@dataclass(eq=False, slots=True)
class Watcher:
    """What one listener wants to hear about its shared connection.

    Attributes:
        error: An asynchronous error (slow consumer, permissions...); the listener
            decides whether it is about its subscription.
        disconnected: The connection dropped; nats-py is reconnecting.
        reconnected: nats-py reconnected (subscriptions are restored by it).
        closed: nats-py gave up: the connection is closed for good, with this reason.
    """

    error: Callable[[Exception], Awaitable[None]]
    disconnected: Callable[[], Awaitable[None]]
    reconnected: Callable[[], Awaitable[None]]
    closed: Callable[[str], None]


class SharedConnection:
    """A connection and the listeners using it."""

    def __init__(self, endpoint: Endpoint, registry: dict[str, SharedConnection]) -> None:
        self._endpoint = endpoint
        self._registry = registry
        self._key = endpoint.cache_key()
        self._watchers: dict[Watcher, None] = {}  # in join order
        self._opening: asyncio.Task[NatsClient] | None = None
        self._client: NatsClient | None = None
        self._closed = False

    @property
    def closed(self) -> bool:
        """Closed for good: a new `join` needs a new connection."""
        return self._closed

    async def _open(self) -> NatsClient:
        return await open_connection(
            self._endpoint,
            name=CONNECTION_NAME,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
        )

    async def join(self, watcher: Watcher) -> NatsClient:
        """The connection, opened by the first caller; ``watcher`` hears its events.

        Raises:
            ConnectorError: The connection cannot be opened (every caller waiting for
                the same attempt gets the same error), or it closed meanwhile.
        """
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._open())
        opening = self._opening
        try:
            client = await asyncio.shield(opening)
        except Exception:  # the next `join` tries again with a new connection
            self._forget()
            raise
        except asyncio.CancelledError:
            if not self._watchers:
                opening.add_done_callback(self._close_if_unused)
            raise
        if self._closed or client.is_closed:
            self._forget()
            raise _Stale
        self._client = client
        self._watchers[watcher] = None
        return client

    async def release(self, watcher: Watcher) -> None:
        """Stop hearing this connection's events; the last listener closes it."""
        self._watchers.pop(watcher, None)
        if self._watchers or self._closed:
            return
        self._closed = True
        self._forget()
        client = self._client
        if client is None:
            return
        try:
            await client.close()  # sends what is still buffered (acks, naks) first
        except Exception as exc:  # closing is best effort
            _log.debug("nats: close: %s", describe(exc))

    def _close_if_unused(self, opening: asyncio.Future[NatsClient]) -> None:
        """An open whose every caller was cancelled must not leave its connection open."""
        if opening.cancelled() or opening.exception() is not None:
            return
        if self._watchers or self._closed:
            return
        self._closed = True
        self._forget()
        self._client = opening.result()
        task = asyncio.ensure_future(self._client.close())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _forget(self) -> None:
        if self._registry.get(self._key) is self:
            del self._registry[self._key]

    # ---- nats-py's callbacks, to every listener on the connection ----

    async def _on_error(self, exc: Exception) -> None:
        for watcher in list(self._watchers):
            await watcher.error(exc)

    async def _on_disconnected(self) -> None:
        for watcher in list(self._watchers):
            await watcher.disconnected()

    async def _on_reconnected(self) -> None:
        for watcher in list(self._watchers):
            await watcher.reconnected()

    async def _on_closed(self) -> None:
        if self._closed:
            return  # closed by the last `release`: nobody is listening
        self._closed = True
        self._forget()  # the next `join` opens a new connection
        client = self._client
        cause = client.last_error if client is not None else None
        reason = f"the connection to NATS {self._endpoint.display} closed" + (
            f": {describe(cause)}" if cause is not None else ""
        )
        for watcher in list(self._watchers):
            watcher.closed(reason)


class _Stale(Exception):
    """The connection closed between its opening and this `join`: take a new one."""


@dataclass(slots=True)
class _Registry:
    loop: asyncio.AbstractEventLoop
    connections: dict[str, SharedConnection]


_REGISTRIES: dict[int, _Registry] = {}


def _registry() -> dict[str, SharedConnection]:
    loop = asyncio.get_running_loop()
    for key in [k for k, v in _REGISTRIES.items() if v.loop.is_closed()]:
        del _REGISTRIES[key]
    registry = _REGISTRIES.get(id(loop))
    if registry is None or registry.loop is not loop:
        registry = _REGISTRIES[id(loop)] = _Registry(loop, {})
    return registry.connections


async def join(endpoint: Endpoint, watcher: Watcher) -> tuple[SharedConnection, NatsClient]:
    """The shared listener connection to ``endpoint`` on this event loop, and its client.

    Raises:
        ConnectorError: The connection cannot be opened.
    """
    registry = _registry()
    key = endpoint.cache_key()
    for _ in range(3):
        shared = registry.get(key)
        if shared is None or shared.closed:
            shared = registry[key] = SharedConnection(endpoint, registry)
        with contextlib.suppress(_Stale):
            return shared, await shared.join(watcher)
    raise ConnectorError(f"the connection to NATS {endpoint.display} keeps closing")
