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
import json
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext, PoisonMessage

from ._client import DEFAULT_CONNECT_TIMEOUT_S, AioMqttClient, ConnectOptions, split_server
from ._serde import SerdeError, deserialize
from ._types import MqttVersion

if TYPE_CHECKING:
    from ._types import MqttRealtimeTrigger

MSG_ID_PROPERTY = "kestrel-msg-id"
"""MQTT 5 user property (name matched case-insensitively): a publisher's stable message id."""
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


_RECOVERY_MARGIN = 100
_RECOVERY_REFRESH_S = 1.0
"""A look-up that misses reads the recent executions again if the index is older."""


def _recovery_key(variables: dict[str, Any]) -> str:
    """What identifies a message among recent executions: packet id, topic, payload."""
    wanted = [variables.get("id"), variables.get("topic"), variables.get("payload")]
    return json.dumps(wanted, sort_keys=True, default=str)


def _unknown_redelivery(delivery: Delivery) -> bool:
    """A QoS ≥ 1 redelivery (DUP) whose first delivery this listener did not see."""
    return (
        isinstance(delivery, Event)
        and delivery.dedupe_key is None
        and bool(delivery.metadata.get("dup"))
        and int(delivery.variables.get("qos", 0)) > 0
    )


@dataclass(frozen=True, slots=True)
class _Token:
    """`Delivery.token`: a delivery of one connection (``conn``) of this listener."""

    conn: int
    seq: int
    mid: int
    qos: int


@dataclass(frozen=True, slots=True)
class _Open:
    """A delivery not PUBACKed yet: the key its redelivery must get back."""

    key: str
    topic: str
    digest: str

    def dump(self) -> list[str]:
        return [self.key, self.topic, self.digest]


def _open_entries(saved: Any) -> dict[int, _Open]:
    """The ``open`` part of a saved cursor; anything malformed is ignored."""
    if not isinstance(saved, dict):
        return {}
    out: dict[int, _Open] = {}
    for mid, entry in saved.items():
        valid = isinstance(entry, list) and len(entry) == 3
        if valid and str(mid).isdigit() and all(isinstance(e, str) for e in entry):
            out[int(mid)] = _Open(*entry)
    return out


def _subscriptions(saved: Any) -> list[list[Any]] | None:
    """The ``subscriptions`` part of a saved cursor (``[[filter, qos], ...]``), or None."""
    if not isinstance(saved, list):
        return None
    pairs = [
        p
        for p in saved
        if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[1] in (0, 1, 2)
    ]
    return pairs if len(pairs) == len(saved) else None


def _digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:16]


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


def _property(properties: dict[str, Any], name: str) -> str | None:
    for key, value in properties.items():
        if key.lower() == name:
            chosen = value[-1] if isinstance(value, list) else value
            return str(chosen)
    return None


def _sent_at(properties: dict[str, Any]) -> dt.datetime | None:
    text = _property(properties, SENT_AT_PROPERTY)
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


class MqttListener(Listener):
    """Listens to an MQTT topic (or several) for one ``mqtt.RealtimeTrigger``.

    Args:
        trigger: The trigger (rendered).
        ctx: The host's context (ids, cursor, logs).
    """

    def __init__(self, trigger: MqttRealtimeTrigger, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._options = self._connect_options()
        self._epoch = secrets.token_hex(8)
        self._seq = 0
        self._conn = 0
        self._client: AioMqttClient | None = None
        self._ready: deque[Delivery] = deque()
        self._wakeup = asyncio.Event()
        self._error: ConnectorError | None = None
        self._unacked: set[int] = set()
        self._open: dict[int, _Open] = {}
        self._cursor: dict[str, Any] | None = None
        self._saved: dict[str, Any] = {}
        self._connecting = False
        self._recent: dict[str, str] | None = None  # recovery index: message → key
        self._recent_at = 0.0

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
        await self._load_cursor()
        self._conn += 1
        self._error = None
        self._ready.clear()
        self._unacked.clear()
        client = AioMqttClient(
            self._options, on_message=self._on_message, on_lost=self._on_lost, manual_ack=True
        )
        self._client = client
        self._recent = None
        self._connecting = True  # read on at maxInFlight: the SUBACK is behind the backlog
        try:
            session_present = await client.connect()
            if not session_present:
                self._open.clear()  # no session: nothing will be redelivered
            await self._subscribe(client, session_present)
            # The keys taken over are in memory now; a crash must not leave them behind
            # for a later listener (their packet ids may be reused by then).
            await self._save_cursor(with_open=False)
        except BaseException:
            self._connecting = False
            await self._discard()
            # Keys given to deliveries read while connecting must reach the next listener.
            with contextlib.suppress(ConnectorError):
                if self._cursor is not None:
                    await self._save_cursor(with_open=True)
            raise
        self._connecting = False
        if len(self._unacked) >= self._trigger.max_in_flight:
            client.pause_reading()

    async def _subscribe(self, client: AioMqttClient, session_present: bool) -> None:
        """Subscribe what the session lacks; drop subscriptions the flow no longer has."""
        qos = subscription_qos(self._trigger.qos)
        wanted = {topic: qos for topic in self._trigger.topics}
        saved = (self._cursor or {}).get("subscriptions")
        before: dict[str, int] = {t: q for t, q in saved} if session_present and saved else {}
        gone = [topic for topic in before if topic not in wanted]
        if gone:
            await client.unsubscribe(gone)
        # MQTT 3.1.1 sends retained messages again on every SUBSCRIBE: skip the filters the
        # resumed session has. MQTT 5 asks for retained messages only for new ones.
        v5 = self._options.v5
        todo = [(t, q) for t, q in wanted.items() if v5 or saved is None or before.get(t) != q]
        if todo:
            await client.subscribe(todo, retain_if_new=True)
        self._cursor = {
            **(self._cursor or {}),
            "subscriptions": [[t, q] for t, q in sorted(wanted.items())],
        }

    # ---- cursor: subscriptions and the keys of deliveries not PUBACKed ----

    async def _load_cursor(self) -> None:
        if self._cursor is not None:
            return
        try:
            cursor = await self._ctx.load_cursor()
        except Exception as exc:
            raise ConnectorError(f"cannot load the trigger's cursor: {exc}") from exc
        self._cursor = dict(cursor) if isinstance(cursor, dict) else {}
        self._saved = dict(self._cursor)
        self._open.update(_open_entries(self._cursor.get("open")))
        subscriptions = _subscriptions(self._cursor.get("subscriptions"))
        self._cursor.pop("subscriptions", None)
        if subscriptions is not None:
            self._cursor["subscriptions"] = subscriptions

    async def _save_cursor(self, *, with_open: bool) -> None:
        """Save the cursor if it changed (on connect without, on close with the keys)."""
        cursor = {k: v for k, v in (self._cursor or {}).items() if k != "open"}
        if with_open and self._open:
            cursor["open"] = {str(mid): entry.dump() for mid, entry in self._open.items()}
        if cursor == self._saved:
            return
        try:
            await self._ctx.save_cursor(cursor)
        except Exception as exc:
            raise ConnectorError(f"cannot save the trigger's cursor: {exc}") from exc
        self._saved = cursor

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

    def _dedupe_key(
        self, message: paho.MQTTMessage, topic: str, properties: dict[str, Any], digest: str
    ) -> str | None:
        msg_id = _property(properties, MSG_ID_PROPERTY)
        if msg_id is not None:
            return f"mqtt:msg:{topic}:{msg_id}"
        if message.qos == 0:
            return None
        known = self._open.get(message.mid)
        if message.dup and known is not None and (known.topic, known.digest) == (topic, digest):
            return known.key  # a redelivery: same packet id, same message
        if message.dup:
            return None  # a redelivery we know nothing of (after a crash): `events` looks it up
        key = f"mqtt:{self._epoch}:{self._seq}"
        self._open[message.mid] = _Open(key, topic, digest)
        return key

    def _delivery(self, message: paho.MQTTMessage, token: _Token) -> Delivery:
        raw = bytes(message.payload)
        topic = message.topic
        properties = _user_properties(message)
        digest = _digest(raw)
        key = self._dedupe_key(message, topic, properties, digest)
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
            if _unknown_redelivery(delivery):
                assert isinstance(delivery, Event)
                delivery = await self._recover_key(delivery)
            yield delivery

    async def _recover_key(self, event: Event) -> Event:
        """Give a redelivery after a crash the key its first delivery got, if it had one.

        The first delivery, if its execution was recorded, is among the trigger's latest
        executions (at most ``maxInFlight`` were unacknowledged): same packet id, topic and
        payload. Packet ids are reused only after 65,535 others, so a match there is the
        same message. No match: the first delivery was never recorded, so a fresh key.
        """
        wanted = {k: event.variables[k] for k in ("id", "topic", "payload")}
        lookup = _recovery_key(wanted)
        found = (await self._recovery_index(refresh=False)).get(lookup)
        if found is None and time.monotonic() - self._recent_at > _RECOVERY_REFRESH_S:
            found = (await self._recovery_index(refresh=True)).get(lookup)
        token = event.token
        seq = token.seq if isinstance(token, _Token) else self._seq
        key = found or f"mqtt:{self._epoch}:{seq}"
        if isinstance(token, _Token):
            self._open[token.mid] = _Open(key, wanted["topic"], _digest(event.raw))
        return replace(event, dedupe_key=key, metadata={**event.metadata, "dedupeKey": key})

    async def _recovery_index(self, *, refresh: bool) -> dict[str, str]:
        """Recent executions' keys by message (newest wins), read once per connection."""
        if self._recent is None or refresh:
            window = self._trigger.max_in_flight + _RECOVERY_MARGIN
            index: dict[str, str] = {}
            for key, variables in await self._ctx.recent_events(window):
                if key is not None:
                    index.setdefault(_recovery_key(variables), key)
            self._recent = index
            self._recent_at = time.monotonic()
        return self._recent

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
            self._open.pop(token.mid, None)
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
        if self._cursor is None:
            return
        try:
            await self._save_cursor(with_open=True)
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
