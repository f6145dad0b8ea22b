"""The contract between realtime triggers and the listener hosts that run them.

A connector implements a `Listener` for its trigger type (its model's `create_listener`
returns one). The host (in ``actors``) connects it, pulls events, makes each one a
durable execution and only then calls `Listener.ack`: commit after persist. Connectors
depend on this module only, never on the runtime.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One message from a source, ready to become an execution.

    Attributes:
        dedupe_key: Unique, stable position of the message in its source (for example
            ``kafka:orders:3:1234`` or ``nats:ORDERS:987``); a redelivery carries the same
            key, so it never creates a second execution. None for sources without one
            (core NATS: at most once).
        variables: The ``trigger.*`` variables, with Kestra's names (README, "A flow").
        raw: The payload as received, kept for dead letters.
        source: A readable position for logs and dead letters.
        metadata: Anything else worth keeping with a dead letter (headers, key...).
        published_at: When the producer sent it, if the source tells (latency figures).
        received_at: When the listener got it.
        token: The listener's own handle for `Listener.ack` (offset, message...).
    """

    dedupe_key: str | None
    variables: dict[str, Any]
    raw: bytes = b""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    published_at: dt.datetime | None = None
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    token: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PoisonMessage:
    """A message the listener could not turn into an `Event` (e.g. bad JSON).

    The host writes it to the dead letters with its reason, then acks it, so it never
    blocks the messages behind it.
    """

    reason: str
    raw: bytes = b""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    token: Any = None


Delivery = Event | PoisonMessage


@runtime_checkable
class ListenerContext(Protocol):
    """What the host offers a listener."""

    @property
    def namespace(self) -> str:
        """The flow's namespace."""

    @property
    def flow_id(self) -> str:
        """The flow's id."""

    @property
    def trigger_id(self) -> str:
        """The trigger's id."""

    async def load_cursor(self) -> Any:
        """The position last saved with `save_cursor` (None the first time)."""

    async def save_cursor(self, cursor: Any) -> None:
        """Save the source position durably (for sources without server-side offsets)."""

    def log(self, level: str, message: str) -> None:
        """Log about this trigger (INFO, WARN, ERROR, ...)."""

    async def recent_events(self, limit: int) -> list[tuple[str | None, dict[str, Any]]]:
        """``(dedupe_key, trigger variables)`` of the trigger's latest executions, newest first.

        For sources whose redeliveries carry no stable id (MQTT): after a crash, a
        listener can find the key the first delivery of a message got.
        """


class Listener(abc.ABC):
    """An always-on source of events for one trigger.

    The host calls `connect`, then iterates `events` and calls `ack` for each delivery
    once it is durable (possibly out of order and concurrently, up to the trigger's
    ``maxInFlight``). Connection problems raise `flows.ConnectorError` from `connect` or
    from the iterator; the host then calls `close`, waits (capped exponential backoff)
    and starts over with `connect`: unacknowledged messages must then come again.
    `close` must be safe to call twice and before `connect`.
    """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection and subscribe, resuming from the committed position."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[Delivery]:
        """Yield deliveries in source order; stop fetching while the host applies backpressure."""

    @abc.abstractmethod
    async def ack(self, delivery: Delivery) -> None:
        """Tell the source the delivery is durably recorded (commit, ack, PUBACK, cursor)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the connection; unacknowledged deliveries will be redelivered."""
