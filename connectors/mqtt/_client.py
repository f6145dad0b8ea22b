"""A paho-mqtt client driven by the running asyncio loop (no network thread).

paho's own loop thread (``loop_start``) would cost one thread per trigger and a thread hop
per message. Instead the socket is handed to the event loop (`LoopSocket`, ``_socket.py``)
so every paho callback runs on the loop's thread. Only the blocking part of connecting
(DNS, TCP, TLS handshake, then sending CONNECT) runs in the default executor, before the
socket is handed to the loop.

`AioMqttClient` is the session: connecting, the CONNACK, losing the connection, acks
and an orderly close. Requests that wait for an answer (SUBSCRIBE, UNSUBSCRIBE,
PUBLISH) are kept by `Requests` (``_requests.py``); the options by ``_options.py``.

Reading can be paused (`AioMqttClient.pause_reading`): the socket is then not read at all,
so the broker's TCP window fills and it stops sending; nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from flows import ConnectorError

from ._options import KEEPALIVE_S, ConnectOptions, failed, ssl_context
from ._requests import Requests
from ._socket import LoopSocket

_CLOSE_TIMEOUT_S = 2.0


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
        self._socket = LoopSocket(self._client, self._loop, self._lose)
        self._requests = Requests(
            self._client,
            options,
            self._loop,
            lost=lambda: self.lost_reason,
            connected=lambda: self.connected,
        )
        self._connack: asyncio.Future[tuple[ReasonCode, bool]] | None = None
        self._closing = False
        self._closed = self._loop.create_future()
        self._acked_since_barrier = False
        self.lost_reason: str | None = None
        self.subscribe = self._requests.subscribe
        self.unsubscribe = self._requests.unsubscribe
        self.publish = self._requests.publish
        self.pause_reading = self._socket.pause_reading
        self.resume_reading = self._socket.resume_reading

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
            client.tls_set_context(ssl_context(opts.crt, opts.verify_hostname))
            client.tls_insecure_set(not opts.verify_hostname)
        # on_disconnect is set in `_attach`: until then paho runs in an executor thread.
        client.on_connect = self._connected
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
            self._socket.drop()
            raise ConnectorError(f"no CONNACK from MQTT {opts.server} in time") from exc
        except BaseException:
            self._socket.drop()
            raise
        if failed(reason):
            self._socket.drop()
            raise ConnectorError(f"MQTT {opts.server} refused the connection: {reason}")
        return session_present

    def _abandoned(self, opening: asyncio.Future[None]) -> None:
        if not opening.cancelled():
            opening.exception()  # retrieved: it was reported already
        self._socket.drop()

    def _attach(self) -> None:
        """Hand the connected socket to the event loop (on the loop's thread)."""
        self._client.on_disconnect = self._disconnected
        if not self._socket.attach():
            self._lose("the connection closed while connecting")

    @property
    def connected(self) -> bool:
        """True between the CONNACK and the end of the connection."""
        return self._client.is_connected() and self.lost_reason is None and not self._closing

    @property
    def paused(self) -> bool:
        """True while reading is paused (`pause_reading`, `resume_reading`)."""
        return self._socket.paused

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
        self._socket.drop()
        error = ConnectorError(f"MQTT connection to {self.options.server} lost: {reason}")
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        self._requests.fail(error)
        if self._on_lost is not None:
            self._on_lost(reason)

    def _message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if self._on_message is not None:
            self._on_message(message)

    # ---- acks and closing ----

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a delivery (PUBACK for QoS 1, PUBCOMP for QoS 2); no-op for QoS 0."""
        if qos > 0 and self._socket.sock is not None:
            self._client.ack(mid, qos)
            self._acked_since_barrier = True

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
        if self._socket.sock is not None and self.lost_reason is None:
            await self._acks_handled()
        self._requests.fail(ConnectorError("the MQTT client is closing"))
        if self._socket.sock is not None and self.lost_reason is None:
            self._client.disconnect()  # the socket closes once DISCONNECT is written
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                    await asyncio.shield(self._closed)
        self._socket.drop()
        self._socket.detach()
