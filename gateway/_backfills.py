"""Backfills as background jobs: answered at once with an id, progress readable by id.

A backfill of a Schedule trigger creates one execution per tick in ``[start, end)``. The
ticks are counted up front, at most `MAX_BACKFILL_TICKS` of them: a longer range is cut
there and the answer says so (``capped``, ``coveredUntil``), never silently. The job
then creates the executions chunk by chunk (each chunk one call to the execution pool),
so ``done`` moves while it runs. Ticks already run are not repeated (their dedupe key).

Jobs live in the server's memory: a server restart forgets them (the executions they
created stay, and running the same backfill again creates only the missing ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from actors import new_id, ticks_between
from flows import KestrelError, NotFoundError, Schedule

from ._runtime import Runtime

MAX_BACKFILL_TICKS = 10_000
"""The most ticks one backfill runs; a longer range is cut (and the answer says so)."""

CHUNK_TICKS = 50
"""Ticks per call to the execution pool."""

KEEP_JOBS = 100
"""Finished jobs kept for reading."""

_log = logging.getLogger("kestrel.backfill")


class BackfillState(enum.StrEnum):
    """Where a backfill job is."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass
class BackfillJob:
    """One backfill: what it covers and how far it got."""

    namespace: str
    flow_id: str
    trigger_id: str
    start: dt.datetime
    end: dt.datetime
    ticks: list[dt.datetime]
    capped: bool
    cap: int = MAX_BACKFILL_TICKS
    inputs: dict[str, Any] | None = None
    id: str = field(default_factory=new_id)
    state: BackfillState = BackfillState.RUNNING
    executions: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def total(self) -> int:
        """How many ticks (executions) the job runs."""
        return len(self.ticks)

    @property
    def done(self) -> int:
        """How many ticks have their execution so far."""
        return len(self.executions)

    @property
    def covered_until(self) -> dt.datetime:
        """The end of the range actually run: `end`, or just after the last tick if capped."""
        if self.capped and self.ticks:
            return self.ticks[-1] + dt.timedelta(microseconds=1)
        return self.end


def count_ticks(
    trigger: Schedule, start: dt.datetime, end: dt.datetime, cap: int
) -> list[dt.datetime]:
    """The first ``cap + 1`` ticks in ``[start, end)`` (the one more tells "cut")."""
    return list(itertools.islice(ticks_between(trigger, start, end), cap + 1))


class Backfills:
    """The backfill jobs of one server.

    Args:
        runtime: Where the executions are created.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._jobs: dict[str, BackfillJob] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str | None,
        start: dt.datetime,
        end: dt.datetime | None,
        inputs: Mapping[str, Any] | None = None,
    ) -> BackfillJob:
        """Check the flow and its Schedule trigger, count the ticks and start the job.

        Raises:
            NotFoundError: No such flow, or no (such) Schedule trigger.
        """
        flow = await self._runtime.catalog.flow(namespace, flow_id)
        schedules = [
            t
            for t in flow.triggers
            if isinstance(t, Schedule) and (trigger_id is None or t.id == trigger_id)
        ]
        if not schedules:
            which = f" '{trigger_id}'" if trigger_id else ""
            raise NotFoundError(f"flow {flow.uid} has no Schedule trigger{which}")
        trigger = schedules[0]
        until = end or dt.datetime.now(dt.UTC)
        cap = MAX_BACKFILL_TICKS
        ticks = await asyncio.to_thread(count_ticks, trigger, start, until, cap)
        job = BackfillJob(
            namespace=namespace,
            flow_id=flow_id,
            trigger_id=trigger.id,
            start=start,
            end=until,
            ticks=ticks[:cap],
            capped=len(ticks) > cap,
            cap=cap,
            inputs=dict(inputs) if inputs else None,
        )
        self._keep(job)
        task = asyncio.create_task(self._run(job), name=f"backfill {job.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def get(self, job_id: str) -> BackfillJob:
        """A job by id.

        Raises:
            NotFoundError: No such job (or it finished long ago and was forgotten).
        """
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"backfill {job_id} not found")
        return job

    def _keep(self, job: BackfillJob) -> None:
        self._jobs[job.id] = job
        finished = [j for j in self._jobs.values() if j.state is not BackfillState.RUNNING]
        for old in finished[: max(0, len(finished) - KEEP_JOBS)]:
            del self._jobs[old.id]

    async def _run(self, job: BackfillJob) -> None:
        try:
            for offset in range(0, job.total, CHUNK_TICKS):
                chunk = job.ticks[offset : offset + CHUNK_TICKS]
                ids = await self._runtime.pool.backfill(
                    job.namespace,
                    job.flow_id,
                    job.trigger_id,
                    chunk[0],
                    chunk[-1] + dt.timedelta(microseconds=1),
                    job.inputs,
                )
                job.executions.extend(ids)
            job.state = BackfillState.SUCCESS
        except asyncio.CancelledError:
            job.state = BackfillState.FAILED
            job.error = "the server stopped before the backfill ended"
            raise
        except (KestrelError, OSError) as exc:
            job.state = BackfillState.FAILED
            job.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            _log.warning("backfill %s failed: %s", job.id, job.error)
        except Exception as exc:  # a background job must report, never vanish
            job.state = BackfillState.FAILED
            job.error = f"internal error ({type(exc).__name__})"
            _log.exception("backfill %s failed", job.id)

    async def stop(self) -> None:
        """Cancel the running jobs (the executions they created stay)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
