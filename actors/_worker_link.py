"""The caller's side of a warm `TaskWorker`: attempts batched both ways.

One actor call per attempt costs both processes a full Ray call (submit, task spec,
serialization, the worker's execution wrapper) — about 0.3 ms of CPU on each side on
the 2-core machine, which caps throughput. A `WorkerLink` instead:

- sends an attempt at once when no ``start`` call is on its way; while one is, holds
  the attempts submitted meanwhile and sends them all in ONE ``start(link, items)`` call
  as soon as it is answered (one ``start`` on its way at a time, as Nagle's algorithm
  does for small packets: under load each call carries every attempt of a round trip,
  not of one loop turn; a lone attempt for an idle worker does not come here: the
  dispatcher sends it as one plain ``run`` call, whose reply carries its outcome); the
  attempts of a call cross as one C pickle (`pack_batch`), which shares what they share;
- keeps one ``collect(link, incarnation)`` call outstanding while attempts are running,
  which returns every outcome finished since the last one, in one reply.

Under load both calls carry many attempts; when idle no call is outstanding at all.

A worker that dies or restarts loses the attempts it was running: the outstanding
`collect` fails (or answers from a new incarnation), and each lost attempt ends FAILED
with a retriable ``WorkerLost`` error, so the task's retry policy decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from typing import Any

from ._invocation import Packed, TaskInvocation, TaskOutcome, failed_outcome, pack, pack_batch

WORKER_LOST = "WorkerLost"
"""`TaskFailure.type` of an attempt lost with its worker."""

_COLLECT_RETRY_S = 0.05
"""Pause before asking again after a failed collect (the worker is being restarted)."""


def lost_outcome(reason: str) -> TaskOutcome:
    """A FAILED, retriable outcome for an attempt whose worker went away."""
    return failed_outcome(f"the worker was lost: {reason}", WORKER_LOST)


def not_sent_outcome(exc: BaseException) -> TaskOutcome:
    """A FAILED outcome for an attempt Ray refused to take (bad options, not serialisable).

    Not retriable: the same attempt would be refused the same way.
    """
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = f"the attempt could not be sent to Ray: {text}"
    return failed_outcome(message, type(exc).__name__, retriable=False)


class WorkerLink:
    """Runs attempts on one warm `TaskWorker` actor, batching starts and outcomes.

    Args:
        worker: The `TaskWorker` actor handle.
    """

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self._id = uuid.uuid4().hex
        self._keys = itertools.count()
        self._outbox: list[tuple[int, TaskInvocation]] = []
        self._waiting: dict[int, asyncio.Future[TaskOutcome]] = {}
        self._incarnation_of: dict[int, str] = {}
        self._incarnation = ""
        self._starting = 0  # start calls not answered yet
        self._collector: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.starts = 0
        """How many ``start`` calls went out (for tests and benchmarks)."""
        self.calls = 0
        """Plain ``run`` calls on their way (the dispatcher's path for a lone attempt)."""

    @property
    def running(self) -> int:
        """Attempts sent or about to be sent whose outcome has not come back."""
        return len(self._waiting) + self.calls

    @property
    def idle(self) -> bool:
        """Nothing of ours is on its way to or running on the worker."""
        return not self._waiting and not self.calls and not self._starting

    def submit(self, invocation: TaskInvocation) -> tuple[int, asyncio.Future[TaskOutcome]]:
        """Send the attempt (now, or with the others held meanwhile): its key and future."""
        loop = asyncio.get_running_loop()
        key = next(self._keys)
        future: asyncio.Future[TaskOutcome] = loop.create_future()
        self._waiting[key] = future
        self._outbox.append((key, invocation))
        if self._starting == 0:
            self._flush()
        return key, future

    def abandon(self, key: int) -> None:
        """Give up on an attempt (kill, hard timeout): cancel it on the worker if sent."""
        self._waiting.pop(key, None)
        self._incarnation_of.pop(key, None)
        before = len(self._outbox)
        self._outbox = [(k, inv) for k, inv in self._outbox if k != key]
        if len(self._outbox) == before:
            with contextlib.suppress(Exception):  # best effort: the worker may be gone
                self.worker.cancel.remote(self._id, key)

    async def close(self) -> None:
        """Stop collecting; attempts still waiting end as lost."""
        for task in [self._collector, *self._background]:
            if task is not None:
                task.cancel()
        self._fail(list(self._waiting), "the dispatcher stopped")

    # ---- internals ----

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _flush(self) -> None:
        items, self._outbox = self._outbox, []
        if not items:
            return
        try:
            batch: list[tuple[int, Packed]] | Packed = pack_batch(items)
        except Exception:  # one attempt cannot be pickled: pickle each, fail only those
            alone = self._packed_alone(items)
            if not alone:
                return
            sent = {key for key, _ in alone}
            batch, items = alone, [(key, inv) for key, inv in items if key in sent]
        try:
            ref = self.worker.start.remote(self._id, batch)
        except Exception as exc:  # a call Ray refuses: none of these left
            self._not_sent([key for key, _ in items], exc)
            return
        self.starts += 1
        self._starting += 1
        self._spawn(self._started(ref, [key for key, _ in items]))
        if self._collector is None or self._collector.done():
            self._collector = asyncio.ensure_future(self._collect())

    def _packed_alone(self, items: list[tuple[int, TaskInvocation]]) -> list[tuple[int, Packed]]:
        """Each attempt `pack`ed on its own; those that cannot be end not sent."""
        packed: list[tuple[int, Packed]] = []
        for key, invocation in items:
            try:
                packed.append((key, pack(invocation)))
            except Exception as exc:
                self._not_sent([key], exc)
        return packed

    def _not_sent(self, keys: list[int], exc: Exception) -> None:
        for key in keys:
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(not_sent_outcome(exc))

    async def _started(self, ref: Any, keys: list[int]) -> None:
        try:
            incarnation: str = await ref
        except Exception as exc:
            self._fail(keys, repr(exc))
        else:
            self._incarnation = incarnation
            for key in keys:
                if key in self._waiting:
                    self._incarnation_of[key] = incarnation
        finally:  # cancelled too: the link is closing, and nothing more is sent
            self._starting -= 1
        if self._starting == 0 and self._outbox:
            self._flush()  # what was held while this call was on its way

    async def _collect(self) -> None:
        while self._waiting:
            try:
                incarnation, outcomes = await self.worker.collect.remote(
                    self._id, self._incarnation
                )
            except Exception as exc:
                # The worker died: whatever it had accepted is gone.
                self._fail([k for k in self._waiting if k in self._incarnation_of], repr(exc))
                await asyncio.sleep(_COLLECT_RETRY_S)  # let Ray restart it before asking again
                continue
            self._incarnation = incarnation
            for key, outcome in outcomes:
                self._incarnation_of.pop(key, None)
                future = self._waiting.pop(key, None)
                if future is not None and not future.done():
                    future.set_result(outcome)
            stale = [k for k, inc in self._incarnation_of.items() if inc != incarnation]
            self._fail(stale, "it restarted")

    def _fail(self, keys: list[int], reason: str) -> None:
        for key in keys:
            self._incarnation_of.pop(key, None)
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(lost_outcome(reason))
