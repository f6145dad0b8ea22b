"""The runtime of ``kafka.Produce``: serialize the records and send them, reusing producers.

A producer connects once per worker process and configuration: producers are cached by
their (frozen) properties and event loop, and closed by `close_producers` or, at the
latest, at process exit. A transactional producer runs one transaction at a time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import uuid
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
    UnsupportedVersionError,
)
from pydantic import ValidationError

from flows import ConnectorError, RunContext, TaskError

from ._config import client_options
from ._serde import SerdeError, serialize

if TYPE_CHECKING:
    from ._types import KafkaProduce, KafkaRecord

_PERMANENT: tuple[type[Exception], ...] = (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
    UnsupportedVersionError,
)
"""Errors another attempt cannot fix."""
_BROKEN: tuple[type[Exception], ...] = (ProducerFenced,)
"""Errors after which a cached producer is useless."""


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int | None
    timestamp_ms: int | None


@dataclass(slots=True)
class _Cached:
    loop: asyncio.AbstractEventLoop
    producer: AIOKafkaProducer
    lock: asyncio.Lock


_CacheKey = tuple[tuple[tuple[str, str], ...], bool]
_cache: dict[_CacheKey, _Cached] = {}
_creating: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def produce(task: KafkaProduce, ctx: RunContext) -> dict[str, Any]:
    """Send the task's records; the body of `KafkaProduce.run`.

    Returns:
        ``{"messagesCount": n}``.

    Raises:
        TaskError: Bad records or properties (not retriable), or Kafka failed (retriable
            unless the error is one another attempt cannot fix: authorization, size...).
    """
    outgoing = [_prepare(task, index, record) for index, record in enumerate(_records(task))]
    if not outgoing:
        return {"messagesCount": 0}
    key: _CacheKey = (tuple(sorted(task.properties.items())), task.transactional)
    cached = await _producer(key)
    try:
        if task.transactional:
            async with cached.lock, cached.producer.transaction():
                futures = [await _send(cached.producer, record) for record in outgoing]
        else:
            futures = [await _send(cached.producer, record) for record in outgoing]
        await asyncio.gather(*futures)
    except KafkaError as exc:
        if isinstance(exc, _BROKEN):
            await _evict(key, cached)
        raise TaskError(
            f"Kafka produce to {_topics(outgoing)} failed: {exc!r}",
            retriable=not isinstance(exc, _PERMANENT),
        ) from exc
    ctx.log("DEBUG", f"sent {len(outgoing)} record(s) to {_topics(outgoing)}")
    return {"messagesCount": len(outgoing)}


async def _send(producer: AIOKafkaProducer, record: _Outgoing) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = await producer.send(
        record.topic,
        value=record.value,
        key=record.key,
        partition=record.partition,
        timestamp_ms=record.timestamp_ms,
        headers=record.headers or None,
    )
    return future


def _topics(outgoing: list[_Outgoing]) -> str:
    return ", ".join(sorted({f"'{r.topic}'" for r in outgoing}))


# ---- records ---------------------------------------------------------------------------


def _records(task: KafkaProduce) -> list[KafkaRecord]:
    if not isinstance(task.from_, str):
        return task.records()
    from ._types import KafkaRecord

    text = task.from_.strip()
    if text.startswith("kestra://"):
        raise TaskError(
            "'from' as an internal-storage URI is not supported: give a record or a list "
            "of records (or their JSON)",
            retriable=False,
        )
    try:
        parsed = json.loads(text)
        items = parsed if isinstance(parsed, list) else [parsed]
        return [KafkaRecord.model_validate(item) for item in items]
    except (json.JSONDecodeError, ValidationError) as exc:
        raise TaskError(
            f"'from' must render to a JSON record or list of records: {exc}", retriable=False
        ) from None


def _prepare(task: KafkaProduce, index: int, record: KafkaRecord) -> _Outgoing:
    topic = record.topic or task.topic
    if not topic:
        raise TaskError(f"record {index} has no 'topic' and the task sets none", retriable=False)
    try:
        key = serialize(record.key, task.key_serializer)
        value = serialize(record.value, task.value_serializer)
    except SerdeError as exc:
        raise TaskError(f"record {index}: {exc}", retriable=False) from None
    if key is None and value is None:
        raise TaskError(
            f"record {index} has neither a key nor a value (the client cannot send that)",
            retriable=False,
        )
    headers = [(name, text.encode()) for name, text in (record.headers or {}).items()]
    return _Outgoing(topic, key, value, headers, record.partition, _millis(index, record.timestamp))


def _millis(index: int, stamp: datetime | int | str | None) -> int | None:
    if stamp is None or isinstance(stamp, int):
        return stamp
    if isinstance(stamp, str):
        text = stamp.strip()
        if text.lstrip("-").isdigit():
            return int(text)
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise TaskError(
                f"record {index}: timestamp '{text}' is neither ISO-8601 nor epoch millis",
                retriable=False,
            ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1000)


# ---- the producer cache ----------------------------------------------------------------


async def _producer(key: _CacheKey) -> _Cached:
    loop = asyncio.get_running_loop()
    cached = _cache.get(key)
    if cached is not None and cached.loop is loop:
        return cached
    async with _creating.setdefault(loop, asyncio.Lock()):
        cached = _cache.get(key)
        if cached is not None and cached.loop is loop:
            return cached
        properties, transactional = dict(key[0]), key[1]
        try:
            options = client_options(properties, "producer")
        except ConnectorError as exc:
            raise TaskError(str(exc), retriable=False) from None
        if transactional:
            options.setdefault("transactional_id", f"kestrel-{uuid.uuid4().hex}")
        try:
            producer = AIOKafkaProducer(**options)
        except (ValueError, TypeError, KafkaError) as exc:
            raise TaskError(f"bad Kafka producer configuration: {exc}", retriable=False) from None
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            servers = properties.get("bootstrap.servers")
            hint = ""
            if transactional and not isinstance(exc, KafkaConnectionError | OSError):
                hint = (
                    " while starting a transactional producer (transactional: true is the "
                    "default); if the broker has no transactions, set transactional: false"
                )
            raise TaskError(
                f"cannot produce to Kafka at {servers}: {exc!r}{hint}",
                retriable=not isinstance(exc, _PERMANENT),
            ) from exc
        cached = _Cached(loop, producer, asyncio.Lock())
        _cache[key] = cached
        return cached


async def _evict(key: _CacheKey, cached: _Cached) -> None:
    if _cache.get(key) is cached:
        del _cache[key]
    with contextlib.suppress(KafkaError, OSError):
        await cached.producer.stop()


async def close_producers() -> None:
    """Stop every cached producer of the running event loop (e.g. before it closes)."""
    loop = asyncio.get_running_loop()
    mine = [(key, cached) for key, cached in _cache.items() if cached.loop is loop]
    for key, cached in mine:
        await _evict(key, cached)
    _creating.pop(loop, None)


def _close_at_exit() -> None:
    """Best effort: flush and stop producers whose loop still runs in another thread."""
    for key, cached in list(_cache.items()):
        loop = cached.loop
        if loop.is_closed() or not loop.is_running():
            continue
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_evict(key, cached), loop).result(5.0)


atexit.register(_close_at_exit)
