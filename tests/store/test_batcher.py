"""The write batcher on its own: batching, per-item results, backpressure, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from actors._store import Batcher
from flows import StoreError


class Recorder:
    """A flush function that records batches and can be held at a gate."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


async def test_items_queued_during_a_flush_go_out_together_in_order() -> None:
    flush = Recorder()
    async with Batcher(flush, max_batch=100) as batcher:
        flush.gate.clear()
        first = asyncio.create_task(batcher.submit(0))
        await flush.entered.wait()  # batch [0] is being written; the rest queue up
        rest = [asyncio.create_task(batcher.submit(i)) for i in range(1, 6)]
        while batcher._queue.qsize() < 5:
            await asyncio.sleep(0)
        flush.gate.set()
        assert await first == 0
        assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert flush.batches == [[0], [1, 2, 3, 4, 5]]


async def test_an_item_error_fails_only_its_caller() -> None:
    async with Batcher(Recorder()) as batcher:
        results = await asyncio.gather(
            batcher.submit(1), batcher.submit(-1), batcher.submit(2), return_exceptions=True
        )
    assert results[0] == 10 and results[2] == 20
    assert isinstance(results[1], ValueError)


async def test_a_flush_that_raises_fails_the_whole_batch() -> None:
    async def broken(items: Sequence[int]) -> list[int | BaseException]:
        raise StoreError("database gone")

    async with Batcher(broken) as batcher:
        with pytest.raises(StoreError, match="database gone"):
            await batcher.submit(1)


async def test_a_full_queue_makes_submitters_wait() -> None:
    flush = Recorder()
    async with Batcher(flush, max_batch=1, max_queue=2) as batcher:
        flush.gate.clear()
        tasks = [asyncio.create_task(batcher.submit(0))]
        await flush.entered.wait()
        tasks += [asyncio.create_task(batcher.submit(i)) for i in (1, 2, 3)]
        while batcher._queue.qsize() < 2:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert batcher._queue.full()
        assert not tasks[3].done()  # blocked in put(): backpressure
        flush.gate.set()
        assert await asyncio.gather(*tasks) == [0, 10, 20, 30]


async def test_stop_drains_accepted_items_then_refuses_new_ones() -> None:
    flush = Recorder()
    batcher = Batcher(flush)
    await batcher.start()
    pending = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert await asyncio.gather(*pending) == [0, 10, 20]
    with pytest.raises(StoreError, match="not running"):
        await batcher.submit(4)
    await batcher.stop()  # twice is fine


async def test_a_full_queue_keeps_submission_order() -> None:
    """Writers waiting for room are not overtaken by later ones (order per execution)."""
    flush = Recorder()
    async with Batcher(flush, max_batch=2, max_queue=2) as batcher:
        flush.gate.clear()
        tasks = [asyncio.create_task(batcher.submit(0))]
        await flush.entered.wait()
        for i in range(1, 300):
            tasks.append(asyncio.create_task(batcher.submit(i)))
            await asyncio.sleep(0)  # each submitter starts in turn ...
            if i == 20:
                flush.gate.set()  # ... and newcomers keep arriving while room frees up
        await asyncio.gather(*tasks)
    written = [item for batch in flush.batches for item in batch]
    assert written == list(range(300))


async def test_enqueue_returns_at_once_and_keeps_order_through_a_full_queue() -> None:
    """`enqueue` (write-behind callers) never overtakes: fast and slow paths stay FIFO."""
    flush = Recorder()
    async with Batcher(flush, max_batch=3, max_queue=3) as batcher:
        flush.gate.clear()
        first = batcher.enqueue(0)
        await flush.entered.wait()  # item 0 is being flushed, the queue is empty
        pending = [batcher.enqueue(i) for i in range(1, 100)]  # all in one loop turn
        assert isinstance(pending[0], asyncio.Future) and not isinstance(pending[0], asyncio.Task)
        assert isinstance(pending[-1], asyncio.Task)  # the queue filled up: the slow road
        flush.gate.set()
        results = await asyncio.gather(first, *pending)
    assert results == [i * 10 for i in range(100)]
    written = [item for batch in flush.batches for item in batch]
    assert written == list(range(100))


async def test_enqueue_after_stop_fails_through_the_awaitable() -> None:
    flush = Recorder()
    batcher = Batcher(flush)
    await batcher.start()
    await batcher.stop()
    with pytest.raises(StoreError, match="not running"):
        await batcher.enqueue(1)
