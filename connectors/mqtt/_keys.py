"""Dedupe keys of MQTT deliveries: given, remembered until PUBACK, recovered after a crash.

MQTT has no stable message id, and packet ids are recycled, so each QoS ≥ 1 delivery gets
a fresh key ``mqtt:<epoch>:<seq>`` and `DeliveryKeys` remembers, per packet id, the key of
every delivery not yet PUBACKed; a redelivery (DUP, same packet id, topic and payload
digest) gets it back. A redelivery nobody remembers (after a crash) is looked up among
the trigger's recent executions (see the listener's module docstring).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as paho

from flows import Delivery, Event, ListenerContext

MSG_ID_PROPERTY = "kestrel-msg-id"
"""MQTT 5 user property (name matched case-insensitively): a publisher's stable message id."""

_RECOVERY_MARGIN = 100
_RECOVERY_REFRESH_S = 1.0
"""A look-up that misses reads the recent executions again if the index is older."""


def digest(payload: bytes) -> str:
    """A short digest of a payload (what tells a redelivery from a new message)."""
    return hashlib.sha256(payload).hexdigest()[:16]


def user_property(properties: dict[str, Any], name: str) -> str | None:
    """The (last) value of a user property, its name matched case-insensitively."""
    for key, value in properties.items():
        if key.lower() == name:
            chosen = value[-1] if isinstance(value, list) else value
            return str(chosen)
    return None


def _recovery_key(variables: dict[str, Any]) -> str:
    """What identifies a message among recent executions: packet id, topic, payload."""
    wanted = [variables.get("id"), variables.get("topic"), variables.get("payload")]
    return json.dumps(wanted, sort_keys=True, default=str)


def unknown_redelivery(delivery: Delivery) -> bool:
    """A QoS ≥ 1 redelivery (DUP) whose first delivery this listener did not see."""
    return (
        isinstance(delivery, Event)
        and delivery.dedupe_key is None
        and bool(delivery.metadata.get("dup"))
        and int(delivery.variables.get("qos", 0)) > 0
    )


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


class DeliveryKeys:
    """The dedupe keys of one trigger's deliveries not PUBACKed yet, by packet id.

    Args:
        ctx: The host's context (recent executions, for recovery).
        max_in_flight: The trigger's ``maxInFlight`` (how far back recovery looks).
    """

    def __init__(self, ctx: ListenerContext, max_in_flight: int) -> None:
        self._ctx = ctx
        self._max_in_flight = max_in_flight
        self.epoch = secrets.token_hex(8)
        self._open: dict[int, _Open] = {}
        self._recent: dict[str, str] | None = None  # recovery index: message → key
        self._recent_at = 0.0

    def take_over(self, saved: Any) -> None:
        """Remember the keys a previous listener saved (the cursor's ``open`` part)."""
        self._open.update(_open_entries(saved))

    def dump(self) -> dict[str, list[str]]:
        """The keys to save for the next listener (empty when none)."""
        return {str(mid): entry.dump() for mid, entry in self._open.items()}

    def clear(self) -> None:
        """Forget every key (no session: nothing will be redelivered)."""
        self._open.clear()

    def new_connection(self) -> None:
        """Read the recent executions again when the next unknown redelivery needs them."""
        self._recent = None

    def forget(self, mid: int) -> None:
        """The delivery with this packet id was PUBACKed."""
        self._open.pop(mid, None)

    def key_for(
        self,
        message: paho.MQTTMessage,
        topic: str,
        properties: dict[str, Any],
        payload_digest: str,
        seq: int,
    ) -> str | None:
        """The dedupe key of a delivery (None: QoS 0, or a redelivery to recover)."""
        msg_id = user_property(properties, MSG_ID_PROPERTY)
        if msg_id is not None:
            return f"mqtt:msg:{topic}:{msg_id}"
        if message.qos == 0:
            return None
        known = self._open.get(message.mid)
        same = known is not None and (known.topic, known.digest) == (topic, payload_digest)
        if message.dup and known is not None and same:
            return known.key  # a redelivery: same packet id, same message
        if message.dup:
            return None  # a redelivery we know nothing of (after a crash): see `recover`
        key = f"mqtt:{self.epoch}:{seq}"
        self._open[message.mid] = _Open(key, topic, payload_digest)
        return key

    async def recover(self, event: Event, mid: int | None, seq: int) -> Event:
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
        key = found or f"mqtt:{self.epoch}:{seq}"
        if mid is not None:
            self._open[mid] = _Open(key, wanted["topic"], digest(event.raw))
        return replace(event, dedupe_key=key, metadata={**event.metadata, "dedupeKey": key})

    async def _recovery_index(self, *, refresh: bool) -> dict[str, str]:
        """Recent executions' keys by message (newest wins), read once per connection."""
        if self._recent is None or refresh:
            window = self._max_in_flight + _RECOVERY_MARGIN
            index: dict[str, str] = {}
            for key, variables in await self._ctx.recent_events(window):
                if key is not None:
                    index.setdefault(_recovery_key(variables), key)
            self._recent = index
            self._recent_at = time.monotonic()
        return self._recent
