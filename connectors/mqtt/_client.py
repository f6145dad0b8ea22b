"""A paho-mqtt client driven by the running asyncio loop (no network thread).

paho's own loop thread (``loop_start``) would cost one thread per trigger and a thread hop
per message. Instead, as in paho's documented asyncio example, the socket is registered
with the event loop (``add_reader``/``add_writer``) and paho's ``loop_read``,
``loop_write`` and ``loop_misc`` run on the loop's thread, so every paho callback runs
there too. Only the blocking part of connecting (DNS, TCP, TLS handshake, then sending
CONNECT) runs in the default executor, before the socket is handed to the loop.

Reading can be paused (`AioMqttClient.pause_reading`): the socket is then not read at all,
so the broker's TCP window fills and it stops sending; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from flows import ConnectorError

KEEPALIVE_S = 60
"""MQTT keep alive: a PINGREQ goes out when nothing was sent or received for this long."""
_MISC_INTERVAL_S = 5.0
"""How often paho's ``loop_misc`` (keep alive, ping timeout) runs; well under the keep alive."""
_CLOSE_TIMEOUT_S = 2.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything needed to open one MQTT connection.

    Attributes:
        host: Broker host.
        port: Broker port.
        tls: True for ``ssl://``.
        crt: CA certificate, PEM text or a file path (ssl:// only; default: system CAs).
        verify_hostname: Check the broker's certificate names its host.
        v5: MQTT 5 (else 3.1.1).
        client_id: The client identifier.
        clean: Start a new session (3.1.1: clean session; 5: clean start).
        session_expiry_s: MQTT 5 Session Expiry Interval (0: ends with the connection).
        receive_maximum: MQTT 5 Receive Maximum: unacknowledged QoS>0 deliveries at most.
        username: User name, if any.
        password: Password, if any.
        timeout_s: Deadline of the TCP/TLS connection and of the CONNACK.
    """

    host: str
    port: int
    tls: bool
    crt: str | None
    verify_hostname: bool
    v5: bool
    client_id: str
    clean: bool
    session_expiry_s: int
    receive_maximum: int | None
    username: str | None
    password: str | None
    timeout_s: float

    @property
    def server(self) -> str:
        """``tcp://host:port`` or ``ssl://host:port``, for messages."""
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def split_server(server: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of a ``tcp://host:port`` or ``ssl://host:port`` URI."""
    parts = urlsplit(server)
    if parts.scheme not in ("tcp", "ssl") or not parts.hostname or parts.port is None:
        raise ConnectorError(f"'{server}' is not an MQTT server URI (tcp://host:port)")
    return parts.hostname, parts.port, parts.scheme == "ssl"


def _ssl_context(crt: str | None, verify_hostname: bool) -> ssl.SSLContext:
    try:
        if crt is None:
            context = ssl.create_default_context()
        elif "-----BEGIN" in crt:
            context = ssl.create_default_context(cadata=crt)
        else:
            context = ssl.create_default_context(cafile=str(Path(crt).expanduser()))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConnectorError(f"cannot use the CA certificate 'crt': {exc}") from exc
    context.check_hostname = verify_hostname
    return context


def _failed(code: ReasonCode | int) -> bool:
    value = code.value if isinstance(code, ReasonCode) else code
    return value >= 0x80


class AioMqttClient:
    """One MQTT connection whose network I/O runs on the current asyncio loop.

    Args:
        options: Where and how to connect.
        on_message: Called (on the loop's thread) for every PUBLISH received.
        on_lost: Called once if the connection ends without `close`, with the reason.
        manual_ack: Leave PUBACK to `ack` (QoS 1 deliveries).
    """

    def __init__(
        self,
        options: ConnectOptions,
        *,
        on_message: Callable[[paho.MQTTMessage], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        manual_ack: bool = False,
    ) -> None:
        self.options = options
        self._on_message = on_message
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self._client = self._new_paho(manual_ack)
        self._sock: Any = None
        self._reading = False
        self._paused = False
        self._misc: asyncio.TimerHandle | None = None
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] | None = None
        self._waiters: dict[tuple[str, int], asyncio.Future[list[ReasonCode]]] = {}
        self._closing = False
        self._closed = self._loop.create_future()
        self._acked_since_barrier = False
        self.lost_reason: str | None = None

    # ---- connection ----

    def _new_paho(self, manual_ack: bool) -> paho.Client:
        opts = self.options
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=opts.client_id,
            clean_session=None if opts.v5 else opts.clean,
            protocol=MQTTProtocolVersion.MQTTv5 if opts.v5 else MQTTProtocolVersion.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=manual_ack,
        )
        client.connect_timeout = opts.timeout_s
        client.suppress_exceptions = False
        if opts.username is not None:
            client.username_pw_set(opts.username, opts.password)
        if opts.tls:
            client.tls_set_context(_ssl_context(opts.crt, opts.verify_hostname))
            client.tls_insecure_set(not opts.verify_hostname)
        # on_disconnect is set in `_attach`: until then paho runs in an executor thread.
        client.on_connect = self._connected
        client.on_subscribe = self._subscribed
        client.on_unsubscribe = self._unsubscribed
        client.on_publish = self._published
        client.on_message = self._message
        return client

    def _connect_properties(self) -> Properties | None:
        if not self.options.v5:
            return None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.options.session_expiry_s
        if self.options.receive_maximum is not None:
            properties.ReceiveMaximum = max(1, min(self.options.receive_maximum, 65535))
        return properties

    def _blocking_connect(self) -> None:
        """TCP connect, TLS handshake and CONNECT, in an executor thread."""
        opts = self.options
        if opts.v5:
            self._client.connect(
                opts.host,
                opts.port,
                KEEPALIVE_S,
                clean_start=opts.clean,
                properties=self._connect_properties(),
            )
        else:
            self._client.connect(opts.host, opts.port, KEEPALIVE_S)

    async def connect(self) -> bool:
        """Connect and wait for the CONNACK.

        Returns:
            Whether the broker resumed an existing session (``session present``).

        Raises:
            ConnectorError: The broker is unreachable, refused the connection or did not
                answer in time.
        """
        opts = self.options
        self._connack = self._loop.create_future()
        opening = self._loop.run_in_executor(None, self._blocking_connect)
        try:
            async with asyncio.timeout(opts.timeout_s + 1):
                await asyncio.shield(opening)
        except BaseException as exc:
            # The thread may still finish later: its socket must not leak then.
            opening.add_done_callback(self._abandoned)
            if isinstance(exc, TimeoutError):
                raise ConnectorError(f"cannot connect to MQTT {opts.server}: timed out") from exc
            if isinstance(exc, OSError | ValueError):  # ssl.SSLError is an OSError
                raise ConnectorError(f"cannot connect to MQTT {opts.server}: {exc}") from exc
            raise
        self._attach()
        try:
            async with asyncio.timeout(opts.timeout_s):
                reason, session_present = await self._connack
        except TimeoutError as exc:
            self._drop_socket()
            raise ConnectorError(f"no CONNACK from MQTT {opts.server} in time") from exc
        except BaseException:
            self._drop_socket()
            raise
        if _failed(reason):
            self._drop_socket()
            raise ConnectorError(f"MQTT {opts.server} refused the connection: {reason}")
        return session_present

    def _abandoned(self, opening: asyncio.Future[None]) -> None:
        if not opening.cancelled():
            opening.exception()  # retrieved: it was reported already
        self._drop_socket()

    def _attach(self) -> None:
        """Hand the connected socket to the event loop (on the loop's thread)."""
        client = self._client
        self._sock = client.socket()
        client.on_disconnect = self._disconnected
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._no_write
        if self._sock is None:  # closed already (e.g. refused while sending CONNECT)
            self._lose("the connection closed while connecting")
            return
        self._resume()
        if client.want_write():
            self._loop.add_writer(self._sock, self._writable)
        self._misc = self._loop.call_later(_MISC_INTERVAL_S, self._tick)

    @property
    def connected(self) -> bool:
        """True between the CONNACK and the end of the connection."""
        return self._client.is_connected() and self.lost_reason is None and not self._closing

    # ---- socket events (loop thread) ----

    def _readable(self) -> None:
        if not self._reading:  # paused (or closed) since this call was scheduled
            return
        try:
            self._client.loop_read()
            # TLS may hold decrypted bytes the selector cannot see: read them now.
            sock = self._sock
            pending = getattr(sock, "pending", None)
            if self._reading and sock is not None and pending is not None and pending() > 0:
                self._loop.call_soon(self._readable)
        except Exception as exc:  # a bug must not spin the selector
            self._lose(f"error while reading: {exc!r}")

    def _writable(self) -> None:
        try:
            self._client.loop_write()
        except Exception as exc:
            self._lose(f"error while writing: {exc!r}")

    def _tick(self) -> None:
        self._misc = None
        if self._sock is None:
            return
        if not self._paused:
            # While paused nothing is read, so a PINGRESP would look missing: skip the
            # keep alive; the broker's own timeout ends a connection stalled that long.
            self._client.loop_misc()
        if self._sock is not None:
            self._misc = self._loop.call_later(_MISC_INTERVAL_S, self._tick)

    def _want_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.add_writer(sock, self._writable)

    def _no_write(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.remove_writer(sock)

    def _socket_closed(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._sock = None
        self._reading = False
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    # ---- flow control ----

    @property
    def paused(self) -> bool:
        """True while reading is paused."""
        return self._paused

    def pause_reading(self) -> None:
        """Stop reading from the socket (the broker stops sending when its window fills)."""
        self._paused = True
        if self._reading and self._sock is not None:
            self._loop.remove_reader(self._sock)
            self._reading = False

    def resume_reading(self) -> None:
        """Read from the socket again."""
        self._paused = False
        self._resume()

    def _resume(self) -> None:
        if not self._reading and not self._paused and self._sock is not None:
            self._loop.add_reader(self._sock, self._readable)
            self._reading = True
            # Bytes may already wait in a TLS buffer the selector cannot see.
            self._loop.call_soon(self._readable)

    # ---- paho callbacks (loop thread) ----

    def _connected(
        self,
        _c: paho.Client,
        _u: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if isinstance(receive_maximum, int) and receive_maximum > 0:
            # MQTT 5: the broker's limit on our unacknowledged QoS>0 publishes. paho does
            # not apply it and its setter refuses a connected client; the attribute is
            # only read when a publish is queued, which is after this.
            limit = min(self._client.max_inflight_messages, receive_maximum)
            self._client._max_inflight_messages = limit
        if self._connack is not None and not self._connack.done():
            self._connack.set_result((reason, flags.session_present))

    def _disconnected(
        self,
        _c: paho.Client,
        _u: Any,
        _flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._lose(str(reason))

    def _lose(self, reason: str) -> None:
        if self._closing:
            if not self._closed.done():
                self._closed.set_result(None)
            return
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        self._drop_socket()
        error = ConnectorError(f"MQTT connection to {self.options.server} lost: {reason}")
        for future in (self._connack, *self._waiters.values()):
            if future is not None and not future.done():
                future.set_exception(error)
        self._waiters.clear()
        if self._on_lost is not None:
            self._on_lost(reason)

    def _resolve(self, kind: str, mid: int, codes: list[ReasonCode]) -> None:
        future = self._waiters.pop((kind, mid), None)
        if future is not None and not future.done():
            future.set_result(codes)

    def _subscribed(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._resolve("sub", mid, codes)

    def _unsubscribed(
        self, _c: paho.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        self._resolve("unsub", mid, codes)

    def _published(
        self, _c: paho.Client, _u: Any, mid: int, code: ReasonCode, _p: Properties
    ) -> None:
        self._resolve("pub", mid, [code])

    def _message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message)

    # ---- requests ----

    def _check(self, rc: MQTTErrorCode, what: str) -> None:
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectorError(
                f"MQTT {self.options.server}: {what} failed: {paho.error_string(rc)}"
            )

    def _waiter(self, kind: str, mid: int) -> asyncio.Future[list[ReasonCode]]:
        if self.lost_reason is not None:
            raise ConnectorError(
                f"MQTT connection to {self.options.server} lost: {self.lost_reason}"
            )
        future: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._waiters[(kind, mid)] = future
        return future

    async def _wait(
        self, future: asyncio.Future[list[ReasonCode]], what: str, timeout_s: float
    ) -> list[ReasonCode]:
        try:
            async with asyncio.timeout(timeout_s):
                return await future
        except TimeoutError as exc:
            raise ConnectorError(
                f"MQTT {self.options.server}: no answer to {what} in {timeout_s:g}s"
            ) from exc

    async def subscribe(self, filters: list[tuple[str, int]], *, retain_if_new: bool) -> None:
        """Subscribe to topic filters with their maximum QoS, and wait for the SUBACK.

        Args:
            filters: ``(topic filter, qos)`` pairs.
            retain_if_new: MQTT 5: retained messages only for a new subscription (not
                again when a resumed session already has it).

        Raises:
            ConnectorError: The broker refused a filter, or the connection failed.
        """
        request: list[tuple[str, Any]]
        if self.options.v5:
            handling = (
                SubscribeOptions.RETAIN_SEND_IF_NEW_SUB
                if retain_if_new
                else SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
            )
            request = [(t, SubscribeOptions(qos=q, retainHandling=handling)) for t, q in filters]
        else:
            request = list(filters)
        rc, mid = self._client.subscribe(request)
        self._check(rc, "SUBSCRIBE")
        assert mid is not None
        codes = await self._wait(self._waiter("sub", mid), "SUBSCRIBE", self.options.timeout_s)
        refused = [f"'{t}': {c}" for (t, _), c in zip(filters, codes, strict=False) if _failed(c)]
        if refused:
            raise ConnectorError(
                f"MQTT {self.options.server} refused the subscription: {', '.join(refused)}"
            )

    async def unsubscribe(self, topics: list[str]) -> None:
        """Remove subscriptions from the session and wait for the UNSUBACK."""
        rc, mid = self._client.unsubscribe(topics)
        self._check(rc, "UNSUBSCRIBE")
        assert mid is not None
        await self._wait(self._waiter("unsub", mid), "UNSUBSCRIBE", self.options.timeout_s)

    async def publish(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, timeout_s: float
    ) -> None:
        """Publish and wait until it is complete (PUBACK, PUBCOMP, or written for QoS 0).

        Raises:
            ConnectorError: The broker refused it, the connection failed, or no
                acknowledgement came within `timeout_s`.
        """
        if not self.connected:
            raise ConnectorError(f"MQTT {self.options.server}: not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        self._check(info.rc, "PUBLISH")
        future = self._waiter("pub", info.mid)
        try:
            codes = await self._wait(future, "PUBLISH", timeout_s)
        finally:
            self._waiters.pop(("pub", info.mid), None)
        if codes and _failed(codes[0]):
            raise ConnectorError(f"MQTT {self.options.server} refused the message: {codes[0]}")

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a delivery (PUBACK for QoS 1, PUBCOMP for QoS 2); no-op for QoS 0."""
        if qos > 0 and self._sock is not None:
            self._client.ack(mid, qos)
            self._acked_since_barrier = True

    # ---- closing ----

    def _drop_socket(self) -> None:
        """Close the socket now, without DISCONNECT (the session stays on the broker)."""
        if self._client.socket() is not None:
            # paho has no public "close now"; this is what its own loop calls on errors.
            # It runs `_socket_closed` (when attached), then closes the socket.
            self._client._sock_close()
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    async def _acks_handled(self) -> None:
        """Wait until the broker has handled every ack sent so far (one round trip).

        A broker handles one connection's packets in order, so its answer to an
        UNSUBSCRIBE sent after the acks proves they were handled. Without it, the next
        connection with the same client id (the next listener) can take the session over
        while this socket still holds unread PUBACKs, and the broker redelivers messages
        that were acked. The topic is one no filter of ours is: nothing is unsubscribed.
        """
        if not self._acked_since_barrier:
            return
        self._acked_since_barrier = False
        barrier = f"kestrel/ack-barrier/{self.options.client_id or 'anonymous'}"
        with contextlib.suppress(ConnectorError, TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await self.unsubscribe([barrier])

    async def close(self) -> None:
        """Send DISCONNECT (after any queued acks), then close the socket; idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._sock is not None and self.lost_reason is None:
            await self._acks_handled()
        for future in self._waiters.values():
            if not future.done():
                future.set_exception(ConnectorError("the MQTT client is closing"))
        self._waiters.clear()
        if self._sock is not None and self.lost_reason is None:
            self._client.disconnect()  # the socket closes once DISCONNECT is written
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await asyncio.shield(self._closed)
        self._drop_socket()
        self._client.on_socket_close = None
        self._client.on_socket_register_write = None
        self._client.on_socket_unregister_write = None
