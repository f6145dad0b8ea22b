"""Idle Kafka listeners of one process share a single long-poll fetch per cluster.

Every consumer fetches on its own: an idle one sends a Fetch every ``fetch.max.wait.ms``
(500 ms by default) per partition leader, and each round trip costs Python time on both
ends. A thousand idle triggers would spend most of their CPU on empty fetches. So a
listener whose polls found nothing for `IDLE_AFTER_S` *parks*: it registers its assigned
partitions and positions with the `IdleWatch` of its cluster, which sends one Fetch (per
leader) covering the partitions of every parked listener, at the lowest of their
positions, with the smallest of their ``fetch.max.wait.ms``. Only once that fetch is on
its way does the watch pause the listener's partitions (`Parking.cover`), so a record is
always being waited for by someone. When the answer shows data past a parked listener's
position (the high watermark moved), or an error, the watch resumes that listener's
partitions (`Parking.wake`) and its own consumer fetches the records as before.

Nothing else changes: group membership, commits and rebalances stay each listener's own,
and records are only ever read by the listener's consumer. Heartbeats stay each
consumer's own too, but travel over the watch's client (`_beats.SharedHeartbeats`). The cost is
one extra round trip for the first record after a quiet spell; a broker that answers a
long-poll fetch as soon as data arrives (Apache Kafka) wakes the listener at once, one
that waits out ``fetch.max.wait.ms`` does so no later than the listener's own fetch would
have.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.fetch import FetchRequest

from ._beats import SharedHeartbeats

IDLE_AFTER_S = 2.0
"""A listener whose polls returned nothing for this long parks with the watch."""
DEFAULT_FETCH_WAIT_MS = 500
"""Kafka's default ``fetch.max.wait.ms``, for listeners that do not set it."""
_FAILURE_PAUSE_S = 5.0
"""After a failed watch fetch, listeners are not parked for this long (they fetch alone)."""
_CLIENT_KEYS = (
    "bootstrap_servers",
    "client_id",
    "metadata_max_age_ms",
    "request_timeout_ms",
    "retry_backoff_ms",
    "api_version",
    "connections_max_idle_ms",
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
)

_log = logging.getLogger(__name__)


@dataclass(eq=False)
class Parking:
    """One listener's parked partitions.

    Attributes:
        positions: The next offset the listener's consumer would read, per partition.
        wait_ms: The listener's ``fetch.max.wait.ms``.
        cover: Called (once) when a watch fetch covering these positions has been sent:
            the listener pauses its partitions.
        wake: Called (once) when data or an error showed up, or the watch stops: the
            listener resumes its partitions.
    """

    positions: dict[TopicPartition, int]
    wait_ms: int
    cover: Callable[[], None]
    wake: Callable[[], None]
    covered: bool = field(default=False)
    woken: bool = field(default=False)

    def do_cover(self) -> None:
        if not self.covered and not self.woken:
            self.covered = True
            self.cover()

    def do_wake(self) -> None:
        if not self.woken:
            self.woken = True
            self.wake()


def client_options(options: dict[str, Any]) -> dict[str, Any]:
    """The connection part of a consumer's aiokafka keyword arguments."""
    return {k: options[k] for k in _CLIENT_KEYS if k in options}


def watch_key(options: dict[str, Any]) -> Hashable:
    """What makes two consumers' clusters and credentials the same (ssl: the same context)."""
    own = client_options(options)
    context = own.pop("ssl_context", None)
    return (repr(sorted(own.items(), key=lambda kv: kv[0])), id(context) if context else None)


class IdleWatch:
    """One process's (event loop's) watcher of idle listeners' partitions on one cluster.

    Args:
        options: aiokafka client keyword arguments (see `client_options`).
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._client: Any = None
        self._parked: dict[int, Parking] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed_until = 0.0
        self._connecting = asyncio.Lock()
        self._closed = False
        self.users = 0
        self.fetches = 0
        self.heartbeats = SharedHeartbeats(self.client)
        """The heartbeats of the cluster's consumers, sent over this watch's client."""

    @property
    def parked(self) -> int:
        """Listeners parked now."""
        return len(self._parked)

    def park(self, parking: Parking) -> bool:
        """Register a listener's partitions; False when the watch cannot take it now."""
        if time.monotonic() < self._failed_until or not parking.positions:
            return False
        self._parked[id(parking)] = parking
        self._changed.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kafka idle watch")
        return True

    def unpark(self, parking: Parking) -> None:
        """Forget a parking (the listener resumes its partitions itself)."""
        if self._parked.pop(id(parking), None) is not None:
            parking.woken = True

    async def close(self) -> None:
        """Wake every parked listener and close the connection."""
        self._closed = True
        self._wake_all()
        self.heartbeats.close()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(KafkaError, OSError):
                await client.close()

    # ---- the fetch loop ----

    async def _run(self) -> None:
        try:
            while self._parked:
                self._changed.clear()
                try:
                    await self._round()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the connection failed: everyone fetches alone
                    _log.debug("kafka idle watch: %r", exc)
                    self._failed_until = time.monotonic() + _FAILURE_PAUSE_S
                    self._wake_all()
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _wake_all(self) -> None:
        parked, self._parked = list(self._parked.values()), {}
        for parking in parked:
            parking.do_wake()

    async def client(self) -> Any:
        """The watch's client of the cluster, connected on first use.

        Raises:
            KafkaConnectionError: The watch is closed.
        """
        async with self._connecting:  # fetches and heartbeats: one client, not one each
            if self._closed:
                raise KafkaConnectionError("the kafka idle watch is closed")
            if self._client is None:
                client = AIOKafkaClient(**self._options)
                await client.bootstrap()
                if self._closed:  # closed while connecting
                    await client.close()
                    raise KafkaConnectionError("the kafka idle watch is closed")
                self._client = client
            return self._client

    async def _round(self) -> None:
        """One fetch (per leader) for every parked partition; wake those with news."""
        client = await self.client()
        parked = list(self._parked.values())
        offsets: dict[TopicPartition, int] = {}
        for parking in parked:
            for tp, position in parking.positions.items():
                offsets[tp] = min(position, offsets.get(tp, position))
        by_node, unknown = _by_leader(client, offsets)
        if unknown:
            client.force_metadata_update()
        wait_ms = min(p.wait_ms for p in parked)
        sends = {
            node: asyncio.ensure_future(client.send(node, _request(tps, offsets, wait_ms)))
            for node, tps in by_node.items()
        }
        for parking in parked:  # a fetch covering its positions is on its way
            if not unknown.intersection(parking.positions):
                parking.do_cover()
        self.fetches += len(sends)
        moved: dict[TopicPartition, int | None] = dict.fromkeys(unknown)
        results = await asyncio.gather(*sends.values(), return_exceptions=True)
        for (node, tps), result in zip(by_node.items(), results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                _log.debug("kafka idle watch: fetch from node %s failed: %r", node, result)
                moved.update(dict.fromkeys(tps))
                self._failed_until = time.monotonic() + _FAILURE_PAUSE_S
            else:
                moved.update(_moved(result, offsets))
        for parking in parked:
            if _has_news(parking, moved) and self._parked.pop(id(parking), None) is not None:
                parking.do_wake()
        if unknown and self._parked and not self._changed.is_set():
            await asyncio.sleep(client._retry_backoff)  # leaders still unknown: not a spin


def _by_leader(
    client: Any, offsets: dict[TopicPartition, int]
) -> tuple[dict[int, list[TopicPartition]], set[TopicPartition]]:
    """Partitions by leader node, and those whose leader is unknown."""
    by_node: dict[int, list[TopicPartition]] = {}
    unknown: set[TopicPartition] = set()
    for tp in offsets:
        leader = client.cluster.leader_for_partition(tp)
        if leader is None or leader == -1:
            unknown.add(tp)
        else:
            by_node.setdefault(leader, []).append(tp)
    return by_node, unknown


def _request(tps: list[TopicPartition], offsets: dict[TopicPartition, int], wait_ms: int) -> Any:
    topics: dict[str, list[tuple[int, int, int]]] = {}
    for tp in tps:
        topics.setdefault(tp.topic, []).append((tp.partition, offsets[tp], 1))
    # min_bytes 1: answer as soon as any partition has a record; 1 byte per partition is
    # enough (the broker sends at least one batch), the records are not read here.
    return FetchRequest(wait_ms, 1, 1, 0, list(topics.items()))


def _moved(response: Any, offsets: dict[TopicPartition, int]) -> dict[TopicPartition, int | None]:
    """Partitions with records at or past the fetched offset, with their high watermark.

    None instead of a high watermark: an error, the listener must look itself.
    """
    out: dict[TopicPartition, int | None] = {}
    for topic, partitions in response.topics:
        for partition, error_code, highwater, *_rest in partitions:
            tp = TopicPartition(topic, partition)
            fetched = offsets.get(tp)
            if error_code != 0 or fetched is None:
                out[tp] = None
            elif highwater > fetched:
                out[tp] = int(highwater)
    return out


def _has_news(parking: Parking, moved: dict[TopicPartition, int | None]) -> bool:
    for tp, position in parking.positions.items():
        if tp in moved:
            highwater = moved[tp]
            if highwater is None or highwater > position:
                return True
    return False


_WATCHES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, IdleWatch]] = (
    weakref.WeakKeyDictionary()
)


def acquire_watch(options: dict[str, Any]) -> IdleWatch:
    """The running loop's watch for the cluster of a consumer's `options` (counted)."""
    watches = _WATCHES.setdefault(asyncio.get_running_loop(), {})
    key = watch_key(options)
    watch = watches.get(key)
    if watch is None:
        watch = watches[key] = IdleWatch(client_options(options))
    watch.users += 1
    return watch


async def release_watch(watch: IdleWatch) -> None:
    """Give a watch back; the last user closes it."""
    watch.users -= 1
    if watch.users > 0:
        return
    watches = _WATCHES.get(asyncio.get_running_loop(), {})
    for key, value in list(watches.items()):
        if value is watch:
            del watches[key]
    await watch.close()
