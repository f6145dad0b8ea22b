"""The listener of ``mqtt.RealtimeTrigger``: manual PUBACK after persist, persistent session.

Acknowledgement: paho runs with ``manual_ack``; a QoS 1 delivery is PUBACKed only when the
host acks it (its execution is durable), in whatever order the host acks. Until then the
broker keeps it in the session and sends it again, with the same packet id and DUP set,
on the next connection. QoS 2 is subscribed as QoS 1 (see `subscription_qos`).

Dedupe key: MQTT has no stable message id, and packet ids are recycled (every 65,535
deliveries, or sooner), so a key made of packet id and payload would wrongly merge two
identical messages. Each delivery instead gets a fresh key ``mqtt:<epoch>:<seq>`` (a random
epoch per listener, a counter), and the listener remembers, per packet id, the key of every
delivery not yet PUBACKed. A redelivery (DUP set, same packet id, topic and payload
digest) gets the remembered key back. That memory survives reconnects: `close` saves it
in the trigger's cursor and the next `connect` takes it over. A key is forgotten when its
PUBACK is sent, so a redelivery gets a new key only if that PUBACK never reached the
broker (the connection died right after), or if the process crashed after the execution
was durable and before the PUBACK: at worst a duplicate execution, never a lost one
(remembering keys longer would risk merging a new identical message that reuses the
packet id, which loses it). A publisher
that sets the MQTT 5 user property ``Kestrel-Msg-Id`` gets ``mqtt:msg:<topic>:<id>``
instead, which is stable everywhere. QoS 0 deliveries (never redelivered) have no key.

Backpressure: deliveries read but not yet acked by the host are counted; at
``maxInFlight`` the socket is no longer read (the broker stops sending when its TCP window
fills; nothing is dropped). Not while connecting: a resumed session's queued messages
(up to Receive Maximum) come before the SUBACK, so reading goes on until it arrives.

Key recovery after a crash (redeliveries whose keys were lost) reads the trigger's recent
executions once into an index and looks each redelivery up there, reading again only
when a look-up misses and the index is more than a second old.

With MQTT 5 the CONNECT also asks the broker for at most ``maxInFlight`` unacknowledged
QoS>0 deliveries (Receive Maximum). Brokers have their own limit too (mosquitto
``max_inflight_messages``, 20 by default), which can be lower.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext, PoisonMessage

from ._client import AioMqttClient
from ._keys import DeliveryKeys, digest, unknown_redelivery, user_property
from ._options import DEFAULT_CONNECT_TIMEOUT_S, ConnectOptions, split_server
from ._serde import SerdeError, deserialize
from ._session import SessionCursor
from ._types import MqttVersion

if TYPE_CHECKING:
    from ._types import MqttRealtimeTrigger

SENT_AT_PROPERTY = "kestrel-sent-at"
"""MQTT 5 user property (case-insensitive): the publisher's ISO send time (published_at)."""


def default_client_id(namespace: str, flow_id: str, trigger_id: str) -> str:
    """A client id stable across restarts, so the broker resumes the trigger's session.

    ``kestrel`` and 16 hex digits of a hash of namespace, flow and trigger ids: 23
    characters from ``[0-9a-z]``, which every MQTT 3.1.1 broker must accept.
    """
    digest = hashlib.sha256(f"{namespace}\x00{flow_id}\x00{trigger_id}".encode()).hexdigest()
    return f"kestrel{digest[:16]}"


def subscription_qos(qos: int) -> int:
    """The QoS the trigger subscribes with: ``qos``, except 2 becomes 1.

    paho answers a QoS 2 PUBLISH with PUBREC as soon as it reads it (``manual_ack`` only
    holds back the final PUBCOMP), and after PUBREC the broker never sends the message
    again: a crash before the execution is durable would lose it. At QoS 1 the PUBACK
    waits for the execution, and the dedupe key removes redeliveries, which gives what
    QoS 2 promises (one execution per message) without that window.
    """
    return min(qos, 1)


@dataclass(frozen=True, slots=True)
class _Token:
    """`Delivery.token`: a delivery of one connection (``conn``) of this listener."""

    conn: int
    seq: int
    mid: int
    qos: int


def _user_properties(message: paho.MQTTMessage) -> dict[str, Any]:
    """MQTT 5 user properties: name → value, or → list of values when a name repeats."""
    pairs = getattr(message.properties, "UserProperty", None) or []
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name not in out:
            out[name] = value
        elif isinstance(out[name], list):
            out[name].append(value)
        else:
            out[name] = [out[name], value]
    return out


def _sent_at(properties: dict[str, Any]) -> dt.datetime | None:
    text = user_property(properties, SENT_AT_PROPERTY)
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


class MqttListener(Listener):
    """Listens to an MQTT topic (or several) for one ``mqtt.RealtimeTrigger``.

    The dedupe keys live in `DeliveryKeys` (``_keys.py``), the cursor (subscriptions and
    keys for the next listener) in `SessionCursor` (``_session.py``); this class holds
    the connection, the deliveries waiting for the host, their acks and backpressure.

    Args:
        trigger: The trigger (rendered).
        ctx: The host's context (ids, cursor, logs).
    """

    def __init__(self, trigger: MqttRealtimeTrigger, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._options = self._connect_options()
        self._keys = DeliveryKeys(ctx, trigger.max_in_flight)
        self._session = SessionCursor(ctx, self._keys)
        self._seq = 0
        self._conn = 0
        self._client: AioMqttClient | None = None
        self._ready: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._error: ConnectorError | None = None
        self._unacked: set[int] = set()
        self._connecting = False

    @property
    def client_id(self) -> str:
        """The MQTT client id: ``clientId``, else `default_client_id`."""
        return self._options.client_id

    def _connect_options(self) -> ConnectOptions:
        trigger, ctx = self._trigger, self._ctx
        host, port, tls = split_server(trigger.server)
        timeout = trigger.connection_timeout
        v5 = trigger.mqtt_version is MqttVersion.V5
        return ConnectOptions(
            host=host,
            port=port,
            tls=tls,
            crt=trigger.crt,
            verify_hostname=trigger.https_hostname_verification_enabled is not False,
            v5=v5,
            client_id=trigger.client_id
            or default_client_id(ctx.namespace, ctx.flow_id, ctx.trigger_id),
            clean=trigger.clean_session,
            session_expiry_s=trigger.session_expiry_seconds() if v5 else 0,
            receive_maximum=trigger.max_in_flight,
            username=trigger.username,
            password=trigger.password,
            timeout_s=timeout.total_seconds() if timeout else DEFAULT_CONNECT_TIMEOUT_S,
        )

    # ---- connect ----

    async def connect(self) -> None:
        """Connect, resume or start the session, and subscribe.

        Raises:
            ConnectorError: The broker is unreachable or refused the connection or a
                subscription.
        """
        if self._client is not None:
            await self.close()
        await self._session.load()
        self._conn += 1
        self._error = None
        self._ready.clear()
        self._unacked.clear()
        client = AioMqttClient(
            self._options, on_message=self._on_message, on_lost=self._on_lost, manual_ack=True
        )
        self._client = client
        self._keys.new_connection()
        self._connecting = True  # read on at maxInFlight: the SUBACK is behind the backlog
        try:
            session_present = await client.connect()
            if not session_present:
                self._keys.clear()  # no session: nothing will be redelivered
            qos = subscription_qos(self._trigger.qos)
            await self._session.subscribe(
                client, self._trigger.topics, qos, session_present=session_present
            )
            # The keys taken over are in memory now; a crash must not leave them behind
            # for a later listener (their packet ids may be reused by then).
            await self._session.save(with_open=False)
        except BaseException:
            self._connecting = False
            await self._discard()
            # Keys given to deliveries read while connecting must reach the next listener.
            with contextlib.suppress(ConnectorError):
                if self._session.loaded:
                    await self._session.save(with_open=True)
            raise
        self._connecting = False
        if len(self._unacked) >= self._trigger.max_in_flight:
            client.pause_reading()

    # ---- deliveries (run on the loop's thread, from the socket reader) ----

    def _on_message(self, message: paho.MQTTMessage) -> None:
        self._seq += 1
        token = _Token(conn=self._conn, seq=self._seq, mid=message.mid, qos=message.qos)
        try:
            delivery = self._delivery(message, token)
        except Exception as exc:  # e.g. a topic that is not UTF-8: never stop reading
            delivery = PoisonMessage(
                reason=f"unreadable MQTT message: {exc!r}",
                raw=bytes(message.payload),
                source=self._options.server,
                metadata={"mid": message.mid, "qos": message.qos},
                token=token,
            )
        self._ready.append(delivery)
        self._unacked.add(token.seq)
        client = self._client
        full = len(self._unacked) >= self._trigger.max_in_flight
        if client is not None and full and not self._connecting:
            client.pause_reading()
        self._wakeup.set()

    def _on_lost(self, reason: str) -> None:
        self._error = ConnectorError(f"MQTT connection to {self._options.server} lost: {reason}")
        self._wakeup.set()

    def _delivery(self, message: paho.MQTTMessage, token: _Token) -> Delivery:
        raw = bytes(message.payload)
        topic = message.topic
        properties = _user_properties(message)
        key = self._keys.key_for(message, topic, properties, digest(raw), token.seq)
        source = f"{self._options.server} topic '{topic}' mid {message.mid}"
        metadata: dict[str, Any] = {
            "topic": topic,
            "mid": message.mid,
            "qos": message.qos,
            "retain": bool(message.retain),
            "dup": bool(message.dup),
            "properties": properties,
            "dedupeKey": key,
        }
        try:
            payload = deserialize(raw, self._trigger.serde_type)
        except SerdeError as exc:
            return PoisonMessage(
                reason=str(exc), raw=raw, source=source, metadata=metadata, token=token
            )
        return Event(
            dedupe_key=key,
            variables={
                "id": message.mid,
                "topic": topic,
                "qos": message.qos,
                "retain": bool(message.retain),
                "properties": properties,
                "payload": payload,
            },
            raw=raw,
            source=source,
            metadata=metadata,
            published_at=_sent_at(properties),
            token=token,
        )

    # ---- the host's side ----

    async def events(self) -> AsyncIterator[Delivery]:
        """Yield deliveries in arrival order until the connection fails or closes.

        Raises:
            ConnectorError: Not connected, or the connection was lost.
        """
        if self._client is None:
            raise ConnectorError("the MQTT listener is not connected")
        conn = self._conn
        while True:
            while not self._ready:
                if self._error is not None:
                    raise self._error
                if self._client is None or self._conn != conn:
                    return  # closed
                self._wakeup.clear()
                await self._wakeup.wait()
            delivery = self._ready.popleft()
            if unknown_redelivery(delivery):
                assert isinstance(delivery, Event)
                token = delivery.token
                mid = token.mid if isinstance(token, _Token) else None
                seq = token.seq if isinstance(token, _Token) else self._seq
                delivery = await self._keys.recover(delivery, mid, seq)
            yield delivery

    async def ack(self, delivery: Delivery) -> None:
        """PUBACK the delivery (QoS 1); forget its dedupe key; read again if paused.

        An ack for a delivery of an earlier connection sends nothing: the broker has
        redelivered it (same key) on the current one, and that copy is acked instead.
        """
        token = delivery.token
        client = self._client
        if not isinstance(token, _Token) or client is None or token.conn != self._conn:
            return
        if token.seq not in self._unacked:
            return  # acked already
        self._unacked.discard(token.seq)
        if token.qos > 0:
            client.ack(token.mid, token.qos)
            self._keys.forget(token.mid)
        if client.paused and len(self._unacked) < self._trigger.max_in_flight:
            client.resume_reading()

    async def close(self) -> None:
        """Disconnect (the broker keeps the session and what was not PUBACKed); idempotent.

        Also saves the keys of the deliveries not PUBACKed in the cursor, for the next
        listener of this trigger.
        """
        if self._client is None:
            return
        await self._discard()
        if not self._session.loaded:
            return
        try:
            await self._session.save(with_open=True)
        except ConnectorError as exc:
            self._ctx.log("WARN", f"{exc}: redeliveries may start duplicate executions")

    async def _discard(self) -> None:
        client, self._client = self._client, None
        self._conn += 1  # acks from now on are stale
        self._ready.clear()
        self._unacked.clear()
        self._wakeup.set()  # ends `events`
        if client is not None:
            await client.close()
