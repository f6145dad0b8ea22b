"""Opening NATS connections: options from a model's auth properties, shared publishers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.aio.client import Client, RawCredentials
from nats.errors import AuthorizationError, NoServersError

from flows import ConnectorError

CONNECT_TIMEOUT = 5
"""Seconds to wait for one server to answer a connection attempt."""
RECONNECT_WAIT = 1
"""Seconds between two attempts on the same server."""
ROUND_TRIP_TIMEOUT = 5.0
"""Seconds to wait for the server to answer a `round_trip`."""
RECONNECT_ATTEMPTS = 3
"""Attempts per server before the connection gives up (the owner then reconnects)."""

_log = logging.getLogger(__name__)
_USERINFO = re.compile(r"(?<=://)[^@/]*@")

Callback = Callable[[], Awaitable[None]]
ErrorCallback = Callable[[Exception], Awaitable[None]]


class NatsClient(Client):
    """nats-py's client, reading a header sent several times as its values joined.

    nats-py keeps only the last value of a repeated header; this keeps them all,
    joined by ``", "`` as HTTP combines a repeated field (RFC 9110 §5.3).
    """

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            try:
                key = name.strip().decode("ascii")
            except UnicodeDecodeError:
                continue
            if not key or any(c.isspace() for c in key):
                continue
            text = value.strip().decode("utf-8", "replace")
            out[key] = f"{out[key]}, {text}" if key in out else text
        return out


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to connect: the ``url`` and auth properties of a NATS model.

    Attributes:
        url: Server URL(s), comma separated.
        username: User name (with `password`).
        password: Password.
        token: Authentication token.
        creds: A credentials file's content or path.
    """

    url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None

    @property
    def servers(self) -> list[str]:
        """The URLs, each with a scheme (``nats://`` when none is given)."""
        return [
            u if "://" in u else f"nats://{u}"
            for u in (part.strip() for part in self.url.split(","))
            if u
        ]

    @property
    def display(self) -> str:
        """The URL(s) without credentials, for messages."""
        return ",".join(_USERINFO.sub("***@", u) for u in self.servers)

    def cache_key(self) -> str:
        """A digest of everything that makes two connections different."""
        parts = (self.url, self.username, self.password, self.token, self.creds)
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def options(self) -> dict[str, Any]:
        """The auth keyword arguments of nats-py's ``connect``.

        Raises:
            ConnectorError: ``creds`` is a path that does not exist.
        """
        out: dict[str, Any] = {}
        if self.username is not None:
            out["user"] = self.username
            out["password"] = self.password or ""
        if self.token is not None:
            out["token"] = self.token
        if self.creds is not None:
            out["user_credentials"] = _credentials(self.creds)
        return out


def _credentials(creds: str) -> RawCredentials | str:
    """Credentials content (a JWT and an NKey seed) as is, or a path to a creds file."""
    if "\n" in creds or "-----BEGIN" in creds:
        return RawCredentials(creds)
    path = Path(creds).expanduser()
    if not path.is_file():
        raise ConnectorError(
            f"creds: no credentials file at '{creds}' (give a path or the content of a .creds file)"
        )
    return str(path)


def describe(exc: BaseException) -> str:
    """A short readable reason for a nats-py error (its text, else its class)."""
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and name not in text else (text or name)


async def _quiet_error(exc: Exception) -> None:
    _log.debug("nats: %s", describe(exc))


class _Refused(Exception):
    """Raised from the error callback to end a connect the server refused."""


def _refusal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (
        isinstance(exc, AuthorizationError) or "authorization" in text or ("authentication" in text)
    )


async def open_connection(
    endpoint: Endpoint,
    *,
    name: str,
    error_cb: ErrorCallback | None = None,
    disconnected_cb: Callback | None = None,
    reconnected_cb: Callback | None = None,
    closed_cb: Callback | None = None,
) -> NatsClient:
    """Connect to NATS; the client reconnects by itself a few times, then closes.

    A server that refuses the credentials ends the attempt at once (no retries).

    Raises:
        ConnectorError: No server accepted the connection (the reason names the last
            error: refused, timed out, authorization violation...).
    """
    client = NatsClient()
    options = endpoint.options()
    seen: list[Exception] = []
    connecting = True

    async def on_error(exc: Exception) -> None:
        if connecting:
            seen.append(exc)
            if _refusal(exc):
                raise _Refused from exc
            return
        await (error_cb or _quiet_error)(exc)

    try:
        await client.connect(
            servers=endpoint.servers,
            name=name,
            connect_timeout=CONNECT_TIMEOUT,
            reconnect_time_wait=RECONNECT_WAIT,
            max_reconnect_attempts=RECONNECT_ATTEMPTS,
            error_cb=on_error,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
            closed_cb=closed_cb,
            **options,
        )
    except Exception as exc:
        causes = [e for e in seen if not isinstance(e, NoServersError)]
        cause = causes[-1] if causes else exc
        try:
            await client.close()
        except Exception as close_exc:  # nothing more to release
            _log.debug("nats: close after a failed connect: %s", describe(close_exc))
        raise ConnectorError(
            f"cannot connect to NATS at {endpoint.display}: {describe(cause)}"
        ) from exc
    finally:
        connecting = False
    return client


async def round_trip(client: Client) -> None:
    """Return once the server has processed everything sent so far on `client`.

    A message to a private inbox goes out behind the buffered commands and comes back:
    nats-py's ``flush()`` writes its PING ahead of commands still in its buffer, so a
    PONG does not prove that a SUB or PUB reached the server.

    Raises:
        Exception: nats-py's error when the message does not come back in time.
    """
    inbox = client.new_inbox()
    sub = await client.subscribe(inbox)
    try:
        await client.publish(inbox, b"")
        await sub.next_msg(timeout=ROUND_TRIP_TIMEOUT)
    finally:
        await sub.unsubscribe()


@dataclass(slots=True)
class _Shared:
    loop: asyncio.AbstractEventLoop
    lock: asyncio.Lock
    clients: dict[str, NatsClient]


_SHARED: dict[int, _Shared] = {}


def _shared_for(loop: asyncio.AbstractEventLoop) -> _Shared:
    for key in [k for k, v in _SHARED.items() if v.loop.is_closed()]:
        del _SHARED[key]
    shared = _SHARED.get(id(loop))
    if shared is None or shared.loop is not loop:
        shared = _SHARED[id(loop)] = _Shared(loop, asyncio.Lock(), {})
    return shared


async def shared_connection(endpoint: Endpoint) -> NatsClient:
    """A connection kept for this process (and event loop), one per server and auth.

    Publishing tasks reuse it, so a publish costs no connection handshake; a closed one
    is replaced.

    Raises:
        ConnectorError: The connection cannot be opened.
    """
    shared = _shared_for(asyncio.get_running_loop())
    key = endpoint.cache_key()
    client = shared.clients.get(key)
    if client is not None and not client.is_closed:
        return client
    async with shared.lock:
        client = shared.clients.get(key)
        if client is None or client.is_closed:
            client = await open_connection(endpoint, name="kestrel-publish")
            shared.clients[key] = client
        return client


async def close_shared_connections() -> None:
    """Close the connections `shared_connection` opened on the running event loop."""
    shared = _SHARED.pop(id(asyncio.get_running_loop()), None)
    if shared is None:
        return
    for client in shared.clients.values():
        try:
            await client.close()
        except Exception as exc:  # closing is best effort
            _log.debug("nats: close: %s", describe(exc))
