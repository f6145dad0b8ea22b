"""paho's socket driven by the running asyncio loop: readiness, keep alive, pausing.

As in paho's documented asyncio example, the socket is registered with the event loop
(``add_reader``/``add_writer``) and paho's ``loop_read``, ``loop_write`` and
``loop_misc`` run on the loop's thread, so every paho callback runs there too.

Reading can be paused: the socket is then not read at all, so the broker's TCP window
fills and it stops sending; nothing is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from .._ticker import Membership, join

_MISC_INTERVAL_S = 5.0
"""How often paho's ``loop_misc`` (keep alive, ping timeout) runs; well under the keep alive.

Every socket of the loop runs it on one shared timer (`connectors._ticker`): an idle host
with hundreds of MQTT triggers wakes once per interval, not once per trigger.
"""


class LoopSocket:
    """The I/O of one paho client's connected socket, on the loop's thread.

    Args:
        client: The paho client (connected, or about to be handed its socket).
        loop: The running loop.
        on_error: Called with a reason when reading or writing raised.
    """

    def __init__(
        self,
        client: paho.Client,
        loop: asyncio.AbstractEventLoop,
        on_error: Callable[[str], None],
    ) -> None:
        self._client = client
        self._loop = loop
        self._on_error = on_error
        self.sock: Any = None
        self._reading = False
        self._paused = False
        self._misc: Membership | None = None

    def attach(self) -> bool:
        """Hand the connected socket to the loop; False when it closed already."""
        client = self._client
        self.sock = client.socket()
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write
        if self.sock is None:  # closed already (e.g. refused while sending CONNECT)
            return False
        self._resume()
        if client.want_write():
            self._loop.add_writer(self.sock, self._writable)
        self._misc = join(_MISC_INTERVAL_S, self._tick)
        return True

    def detach(self) -> None:
        """Forget paho's socket callbacks (after the socket is closed for good)."""
        self._client.on_socket_close = None
        self._client.on_socket_register_write = None
        self._client.on_socket_unregister_write = None

    def drop(self) -> None:
        """Close the socket now, without DISCONNECT (the session stays on the broker)."""
        if self._client.socket() is not None:
            # paho has no public "close now"; this is what its own loop calls on errors.
            # It runs `_socket_closed` (when attached), then closes the socket.
            self._client._sock_close()
        self._stop_ticking()

    # ---- socket events (loop thread) ----

    def _readable(self) -> None:
        if not self._reading:  # paused (or closed) since this call was scheduled
            return
        try:
            self._client.loop_read()
            # TLS may hold decrypted bytes the selector cannot see: read them now.
            sock = self.sock
            pending = getattr(sock, "pending", None)
            if self._reading and sock is not None and pending is not None and pending() > 0:
                self._loop.call_soon(self._readable)
        except Exception as exc:  # a bug must not spin the selector
            self._on_error(f"error while reading: {exc!r}")

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            self._on_error(f"error while writing: {exc!r}")

    def _tick(self) -> None:
        if self.sock is None:
            self._stop_ticking()
            return
        if not self._paused:
            # While paused nothing is read, so a PINGRESP would look missing: skip the
            # keep alive; the broker's own timeout ends a connection stalled that long.
            try:
                self._client.loop_misc()
            except Exception as exc:
                self._on_error(f"error in keep alive: {exc!r}")

    def _stop_ticking(self) -> None:
        misc, self._misc = self._misc, None
        if misc is not None:
            misc.leave()

    def _want_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._writable)

    def _no_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _socket_closed(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self.sock = None
        self._reading = False
        self._stop_ticking()

    # ---- flow control ----

    @property
    def paused(self) -> bool:
        """True while reading is paused."""
        return self._paused

    def pause_reading(self) -> None:
        """Stop reading from the socket (the broker stops sending when its window fills)."""
        self._paused = True
        if self._reading and self.sock is not None:
            self._loop.remove_reader(self.sock)
            self._reading = False

    def resume_reading(self) -> None:
        """Read from the socket again."""
        self._paused = False
        self._resume()

    def _resume(self) -> None:
        if not self._reading and not self._paused and self.sock is not None:
            self._loop.add_reader(self.sock, self._readable)
            self._reading = True
            # Bytes may already wait in a TLS buffer the selector cannot see.
            self._loop.call_soon(self._readable)
