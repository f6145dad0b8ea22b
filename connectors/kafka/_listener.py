"""The listener of ``kafka.RealtimeTrigger``: one consumer, commit after persist.

Records are delivered in partition order; the host acks them once their executions are
durable, in any order. Per partition the listener commits the offset after the longest
acked prefix of what it delivered (`PartitionAcks`), in batches (a commit round trip
collects the acks that arrive meanwhile, and commits are at least ``_COMMIT_INTERVAL``
apart), on partition revoke, and on close. With ``maxInFlight`` deliveries unacked it
pauses every assigned partition and keeps polling (so the group keeps the member) until
acks free room.

Idle: once its polls found nothing for `IDLE_AFTER_S`, the listener parks its partitions
with the process's `IdleWatch` for its cluster, which long-polls for all idle listeners
in one fetch and resumes a listener when its partitions get records (see `_watch`). While
parked, its consumer's heartbeats go over that watch's connection, a grid tick's worth
per write (see `_beats`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext, PoisonMessage

from ._beats import SharedHeartbeats
from ._commits import COMMIT_TIMEOUT_S, Commits
from ._offsets import PartitionAcks
from ._parking import IdleParking
from ._serde import SerdeError, deserialize
from ._session import Fetched, Session, Token
from ._watch import DEFAULT_FETCH_WAIT_MS, IDLE_AFTER_S, acquire_watch, release_watch

if TYPE_CHECKING:
    from aiokafka.structs import ConsumerRecord

    from ._types import KafkaRealtimeTrigger

_POLL_MS = 500
"""Longest wait for records in one poll; bounds how late a close or resume is noticed."""
_FETCHER_TIMEOUT_MS = 10_000
"""aiokafka's fetch routine wakes at least this often; a safety net only (see below)."""
_PARKED_POLL_MS = 10_000
"""Longest wait for records in one poll while parked (the watch resumes the partitions).

Parked polls end on a shared grid of this period (`_parked_wait_ms`), so the idle
listeners of a process time out together: one wake-up, not one per listener."""
_ROOM_WAIT_S = 1.0
"""While paused, poll this often (keeps the group membership alive) until acks come."""
SENT_AT_HEADER = "kestrel-sent-at"
"""Header (case-insensitive) with the producer's ISO send time: a precise ``published_at``."""


def _parked_wait_ms() -> int:
    """Milliseconds to the next point of the `_PARKED_POLL_MS` grid on the loop's clock."""
    now_ms = asyncio.get_running_loop().time() * 1000
    return max(1, math.ceil(_PARKED_POLL_MS - now_ms % _PARKED_POLL_MS))


def _nudge_fetcher(consumer: AIOKafkaConsumer) -> None:
    """Wake the consumer's fetch routine now, on the parked polls' grid point.

    The routine otherwise wakes on its own timer (`_FETCHER_TIMEOUT_MS`, a safety net)
    from wherever it last woke: each parked consumer at its own instant. Woken here, it
    looks at its (paused) partitions, finds nothing to do and waits again, its timer
    now ending with the next parked poll. This wakes it the way a poll that consumed
    records does (aiokafka's ``Fetcher._notify`` of ``_wait_consume_future``).
    """
    fetcher = getattr(consumer, "_fetcher", None)
    future = getattr(fetcher, "_wait_consume_future", None)
    if future is not None and not future.done():
        future.set_result(None)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, commits: Commits, session: Session) -> None:
        self._commits = commits
        self._session = session

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._commits.revoked(self._session, set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self._commits.assigned(self._session, set(assigned))


class KafkaListener(Listener):
    """Consume a ``kafka.RealtimeTrigger``'s topics; commit each offset once it is durable.

    Commits and the partition assignment are followed by `Commits` (``_commits.py``),
    parking while idle by `IdleParking` (``_parking.py``); this class polls, delivers,
    takes acks and applies backpressure.

    Dedupe key: ``kafka:{topic}:{partition}:{offset}``. Trigger variables: ``key``,
    ``value``, ``topic``, ``partition``, ``offset``, ``timestamp`` (ISO-8601, UTC) and
    ``headers`` (name → UTF-8 text, or base64 when the value is not UTF-8).
    """

    def __init__(
        self,
        trigger: KafkaRealtimeTrigger,
        ctx: ListenerContext,
        options: dict[str, Any],
        *,
        share_idle: bool = True,
    ) -> None:
        """Prepare a listener; nothing connects before `connect`.

        Args:
            trigger: The trigger's model.
            ctx: The host's services (logging).
            options: aiokafka consumer keyword arguments from the trigger's ``properties``
                (see `client_options`); group, offsets and commit settings are added here.
            share_idle: Park with the process's `IdleWatch` while idle (one fetch for
                all idle listeners of a cluster instead of one each).
        """
        self._trigger = trigger
        self._ctx = ctx
        self._options = {
            **options,
            "group_id": trigger.group_id,
            "auto_offset_reset": trigger.auto_offset_reset.value.lower(),
            "enable_auto_commit": False,
        }
        # aiokafka's fetch routine otherwise wakes every 200 ms even with a fetch in flight
        # or its partitions paused; every event it waits for has its own future (a fetch
        # or offset reset done, a poll, a resume, a revoke, a metadata update), so a
        # parked consumer need not wake on a timer: at 1 s, 150 of them woke 150 times/s.
        self._options.setdefault("consumer_timeout_ms", _FETCHER_TIMEOUT_MS)
        self._batch: int | None = options.get("max_poll_records")
        self._wait_ms = int(options.get("fetch_max_wait_ms", DEFAULT_FETCH_WAIT_MS))
        self._share_idle = share_idle
        self._session: Session | None = None
        self._parking = IdleParking(lambda: self._session, self._wait_ms)
        self._commits = Commits(trigger, ctx, lambda: self._session, self._parking.unpark)

    async def connect(self) -> None:
        """Start the consumer and subscribe (or assign ``partitions``).

        Raises:
            ConnectorError: The brokers cannot be reached or refused the configuration.
        """
        await self.close()
        try:
            consumer = AIOKafkaConsumer(**self._options)
        except (ValueError, TypeError, KafkaError) as exc:
            raise ConnectorError(f"bad Kafka consumer configuration: {exc}") from exc
        session = Session(consumer)
        try:
            await consumer.start()
            await self._subscribe(session)
        except (KafkaError, OSError, ValueError) as exc:
            await _stop_quietly(consumer)
            servers = self._options.get("bootstrap_servers")
            raise ConnectorError(f"cannot consume from Kafka at {servers}: {exc!r}") from exc
        session.committer = asyncio.create_task(self._commits.loop(session))
        if self._share_idle:
            session.watch = acquire_watch(self._options)
            session.watch.heartbeats.attach(consumer, lambda: session.parking is not None)
        self._session = session

    async def _subscribe(self, session: Session) -> None:
        trigger, consumer = self._trigger, session.consumer
        rebalance = _Rebalance(self._commits, session)
        if trigger.partitions is not None:
            tps = [TopicPartition(t, p) for t in trigger.topics for p in trigger.partitions]
            consumer.assign(tps)
            session.parts.update((tp, PartitionAcks()) for tp in tps)
            await self._commits.seek_since(session, set(tps))
        elif trigger.topic_pattern is not None:
            # Kafka matches the whole name (Java's Matcher.matches); aiokafka uses re.match.
            consumer.subscribe(pattern=rf"(?:{trigger.topic_pattern})\Z", listener=rebalance)
        else:
            consumer.subscribe(topics=trigger.topics, listener=rebalance)

    async def events(self) -> AsyncIterator[Delivery]:
        """Yield records in partition order, at most ``maxInFlight`` unacked.

        Ends when the listener is closed.

        Raises:
            ConnectorError: The consumer failed (group coordination, authorization...).
        """
        session = self._session
        if session is None:
            return
        backlog = session.backlog
        limit = self._trigger.max_in_flight
        while self._session is session:
            room = limit - len(session.outstanding)
            if room <= 0:
                backlog.extend(await self._wait_for_room(session))
                continue
            if backlog:
                fetched = backlog.popleft()
                if session.parts.get(fetched.tp) is fetched.acks and fetched.acks is not None:
                    yield self._deliver(session, fetched.tp, fetched.acks, fetched.record)
                continue  # a record of a partition since revoked: its next owner reads it
            if session.paused:
                session.consumer.resume(*session.consumer.paused())
                session.paused = False
            backlog.extend(await self._poll_or_park(session, min(room, self._batch or room)))

    async def _poll_or_park(self, session: Session, limit: int) -> list[Fetched]:
        """Poll; park with the watch after `IDLE_AFTER_S` without records."""
        wait = _POLL_MS if session.parking is None else _parked_wait_ms()
        fetched = await self._poll(session, wait, limit)
        if not fetched and session.parking is not None:
            _nudge_fetcher(session.consumer)
        if fetched:
            self._parking.unpark(session)
            session.idle_since = time.monotonic()
        elif session.parking is None and time.monotonic() - session.idle_since >= IDLE_AFTER_S:
            await self._parking.park(session)
        return fetched

    async def _poll(self, session: Session, timeout_ms: int, limit: int) -> list[Fetched]:
        try:
            batch = await session.consumer.getmany(timeout_ms=timeout_ms, max_records=limit)
        except ConsumerStoppedError:
            return []
        except KafkaError as exc:
            if self._session is not session:
                return []
            raise ConnectorError(f"Kafka consumer failed: {exc!r}") from exc
        return [
            Fetched(tp, session.parts.get(tp), record)
            for tp, records in batch.items()
            for record in records
        ]

    async def _wait_for_room(self, session: Session) -> list[Fetched]:
        """Pause every partition, keep the membership alive, wait for an ack."""
        self._parking.unpark(session)
        session.room.clear()
        session.consumer.pause(*session.consumer.assignment())
        session.paused = True
        # Nothing comes back from paused partitions; polling only tells the group we live.
        fetched = await self._poll(session, 0, 1)
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
        # that comes as the wait ends (an ack and a stop together), and `events` never ends.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_ROOM_WAIT_S):
                await session.room.wait()
        return fetched

    def _deliver(
        self,
        session: Session,
        tp: TopicPartition,
        acks: PartitionAcks,
        record: ConsumerRecord[bytes, bytes],
    ) -> Delivery:
        token = Token(tp, record.offset, acks)
        acks.delivered(record.offset)
        session.outstanding.add(token)
        return to_delivery(record, self._trigger, token)

    async def ack(self, delivery: Delivery) -> None:
        """Mark the delivery durable; its offset is committed once all before it are.

        Acks of deliveries from before a close or a revoke of their partition are ignored:
        those records come again (with the same dedupe key).
        """
        session, token = self._session, delivery.token
        if session is None or not isinstance(token, Token) or token not in session.outstanding:
            return
        session.outstanding.discard(token)
        session.room.set()
        if session.parts.get(token.tp) is token.acks and token.acks.acked(token.offset):
            session.wake_commit.set()

    async def close(self) -> None:
        """Commit what is contiguous, leave the group and stop the consumer (idempotent)."""
        session, self._session = self._session, None
        if session is None:
            return
        session.room.set()  # wakes `events` so that it ends
        self._parking.unpark(session)
        if session.watch is not None:
            SharedHeartbeats.detach(session.consumer)
            await release_watch(session.watch)
            session.watch = None
        if session.committer is not None:
            session.committer.cancel()
            await asyncio.gather(session.committer, return_exceptions=True)
        try:
            await asyncio.wait_for(self._commits.commit(session), COMMIT_TIMEOUT_S)
        except TimeoutError:
            self._ctx.log("WARN", "Kafka: the last offset commit timed out (records come again)")
        session.parts.clear()
        session.outstanding.clear()
        await _stop_quietly(session.consumer)


async def _stop_quietly(consumer: AIOKafkaConsumer) -> None:
    with contextlib.suppress(KafkaError, OSError):
        await consumer.stop()


# ---- records → deliveries ------------------------------------------------------------------


def to_delivery(
    record: ConsumerRecord[bytes, bytes], trigger: KafkaRealtimeTrigger, token: Any = None
) -> Delivery:
    """The `Event` for a record, or a `PoisonMessage` when its key or value cannot be read.

    Args:
        record: The record as consumed (raw bytes).
        trigger: Gives the key and value deserializers.
        token: The listener's ack handle.

    Returns:
        An event with Kestra's Kafka trigger variables (key, value, topic, partition, offset,
            timestamp, headers), or a poison message.
    """
    headers = _headers(record.headers)
    stamp = _record_time(record.timestamp)
    timestamp = _iso(stamp) if stamp is not None else None
    where = f"kafka {record.topic}/{record.partition}@{record.offset}"
    metadata: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": timestamp,
        "key": _text_or_base64(record.key),
        "headers": headers,
    }
    raw = record.value or b""
    parts: dict[str, Any] = {}
    for name, data, serde in (
        ("key", record.key, trigger.key_deserializer),
        ("value", record.value, trigger.value_deserializer),
    ):
        try:
            parts[name] = deserialize(data, serde)
        except SerdeError as exc:
            reason = f"cannot read the record {name} as {serde.value}: {exc}"
            return PoisonMessage(
                reason=reason, raw=raw, source=where, metadata=metadata, token=token
            )
    return Event(
        dedupe_key=f"kafka:{record.topic}:{record.partition}:{record.offset}",
        variables={
            "key": parts["key"],
            "value": parts["value"],
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": timestamp,
            "headers": headers,
        },
        raw=raw,
        source=where,
        metadata=metadata,
        published_at=_sent_at(headers) or stamp,
        token=token,
    )


def _record_time(millis: int | None) -> datetime | None:
    if millis is None or millis < 0:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text_or_base64(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")


def _headers(raw: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str | None]:
    """Header name → UTF-8 text (base64 when not UTF-8); the last of repeated names wins."""
    return {name: _text_or_base64(value) for name, value in raw or ()}


def _sent_at(headers: dict[str, str | None]) -> datetime | None:
    for name, value in headers.items():
        if name.lower() == SENT_AT_HEADER and value:
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None
