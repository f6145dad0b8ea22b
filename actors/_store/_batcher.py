"""Group concurrent writes into batches; each caller learns when *its* write is durable.

Callers `submit` an item and await its result. One flusher task takes everything queued
(up to ``max_batch``) and hands it to the flush function in one call; while that runs, the
next batch fills up, so batches grow with load and a lone item is written at once (no
timer, no added latency). Items are flushed in submission order, one batch at a time, so
writes about the same execution never overtake each other. The queue is bounded:
`submit` waits when it is full (backpressure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from flows import Service, StoreError

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

FlushFn = Callable[[Sequence[ItemT]], Awaitable[Sequence[ResultT | BaseException]]]
"""Writes a batch; returns one result or exception per item, in order."""


class Batcher(Service, Generic[ItemT, ResultT]):
    """Batches items for one flush function.

    Args:
        flush: Writes a batch and returns one result (or exception) per item, in order.
            It is called only after the batch is durable; an exception it raises fails
            the whole batch.
        max_batch: At most this many items per flush.
        max_queue: At most this many items waiting; `submit` blocks beyond that.
        drain_timeout: How long `stop()` waits for queued items to be written.
    """

    def __init__(
        self,
        flush: FlushFn[ItemT, ResultT],
        *,
        max_batch: int = 1000,
        max_queue: int = 10_000,
        drain_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self._flush = flush
        self._max_batch = max_batch
        self._drain_timeout = drain_timeout
        self._queue: asyncio.Queue[tuple[ItemT, asyncio.Future[ResultT]]] = asyncio.Queue(max_queue)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._put_lock = asyncio.Lock()
        self._slow = 0  # enqueue() calls whose item still waits for room
        self.batches = 0
        """How many flushes ran (for benchmarks and tests)."""
        self.items = 0
        """How many items were flushed."""

    async def submit(self, item: ItemT) -> ResultT:
        """Queue ``item`` and wait until it is written.

        Returns:
            The flush function's result for the item.

        Raises:
            StoreError: The batcher is not running.
            BaseException: Whatever the flush reported for this item.
        """
        return await (await self._put(item))

    def enqueue(self, item: ItemT) -> Awaitable[ResultT]:
        """Queue ``item`` now and return what to await for its result (see `submit`).

        When the queue has room and nobody waits for room, the item goes in at once and
        a plain future comes back: no task, no lock. Otherwise a task queues it, and
        later items take that same road until it has, so the order is kept.
        """
        loop = asyncio.get_running_loop()
        if self._slow or self._put_lock.locked() or self._queue.full():
            self._slow += 1
            return loop.create_task(self._submit_slowly(item))
        future: asyncio.Future[ResultT] = loop.create_future()
        if self._closing or not self.running:
            future.set_exception(StoreError("the store's writer is not running"))
        else:
            self._queue.put_nowait((item, future))
        return future

    async def _submit_slowly(self, item: ItemT) -> ResultT:
        try:
            written = await self._put(item)
        finally:
            self._slow -= 1
        return await written

    async def _put(self, item: ItemT) -> asyncio.Future[ResultT]:
        if self._closing or not self.running:
            raise StoreError("the store's writer is not running")
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        # A full queue must not let a newcomer overtake the callers already waiting for
        # room: writes about one execution are applied in the order they were submitted.
        # asyncio.Lock hands itself over first come, first served; asyncio.Queue does not.
        async with self._put_lock:
            await self._queue.put((item, future))
        return future

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kestrel-store-batcher")

    async def _stop(self) -> None:
        self._closing = True
        task = self._task
        if task is None:
            return
        # Drain: let the flusher write what was accepted, up to the deadline.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), self._drain_timeout)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(StoreError("the store stopped before this write"))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        outcomes: Sequence[ResultT | BaseException]
        try:
            outcomes = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(StoreError("the store stopped during this write"))
            raise
        except Exception as exc:
            outcomes = [exc] * len(batch)
        if len(outcomes) != len(batch):
            error = StoreError(f"flush returned {len(outcomes)} results for {len(batch)} items")
            outcomes = [error] * len(batch)
        self.batches += 1
        self.items += len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # the caller gave up waiting; the write still happened
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
