"""The state of one connect → close cycle of a Kafka listener, and its delivery tokens."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition

from ._offsets import PartitionAcks
from ._watch import IdleWatch, Parking

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord


@dataclass(eq=False, slots=True)
class Token:
    """`Delivery.token`: which record, from which assignment of its partition."""

    tp: TopicPartition
    offset: int
    acks: PartitionAcks


@dataclass(slots=True)
class Fetched:
    """A record read but not yet delivered, with the assignment it was read under."""

    tp: TopicPartition
    acks: PartitionAcks | None
    record: ConsumerRecord[bytes, bytes]


@dataclass(slots=True)
class Session:
    """The state of one connect → close cycle."""

    consumer: AIOKafkaConsumer
    parts: dict[TopicPartition, PartitionAcks] = field(default_factory=dict)
    outstanding: set[Token] = field(default_factory=set)
    room: asyncio.Event = field(default_factory=asyncio.Event)
    wake_commit: asyncio.Event = field(default_factory=asyncio.Event)
    commit_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    committer: asyncio.Task[None] | None = None
    paused: bool = False
    backlog: deque[Fetched] = field(default_factory=deque)
    """Read, not yet delivered (kept here so that a new `events` iterator goes on)."""
    watch: IdleWatch | None = None
    parking: Parking | None = None
    """Registered with the watch (idle); its partitions are paused once covered."""
    watch_paused: set[TopicPartition] = field(default_factory=set)
    idle_since: float = field(default_factory=time.monotonic)
