"""What the dashboard and the triggers view chart: executions per minute, latency per trigger."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query

from flows import State

from ._deps import RuntimeDep
from ._health import LATENCY_BUCKETS
from ._models import ApiModel

router = APIRouter(tags=["stats"])


class MinuteCount(ApiModel):
    """Executions created in one minute that are now in one state."""

    minute: dt.datetime
    state: State
    count: int


class ExecutionStats(ApiModel):
    """``GET /stats/executions``."""

    since: dt.datetime
    per_minute: list[MinuteCount]
    running: int
    success: int
    failed: int
    success_rate: float | None = None


class LatencyBody(ApiModel):
    """One trigger's recent latencies: histogram (seconds, upper bounds) and percentiles."""

    trigger: str
    kind: str
    count: int
    p50: float | None = None
    p99: float | None = None
    buckets: list[float]
    counts: list[int]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0-100) of `values`, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def histogram(values: Sequence[float], bounds: Sequence[float] = LATENCY_BUCKETS) -> list[int]:
    """How many `values` fall in each bucket ``(previous bound, bound]``, plus one overflow."""
    counts = [0] * (len(bounds) + 1)
    for value in values:
        index = next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))
        counts[index] += 1
    return counts


_RUNNING = (State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING)
_FAILED = (State.FAILED, State.KILLED, State.CANCELLED)


@router.get("/stats/executions")
async def execution_stats(
    runtime: RuntimeDep,
    minutes: Annotated[int, Query(ge=1, le=1440, description="how far back")] = 60,
    namespace: Annotated[str | None, Query(description="this namespace and below")] = None,
) -> ExecutionStats:
    """Executions created per minute by current state, running now, and the success rate."""
    now = dt.datetime.now(dt.UTC)
    since = (now - dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    rows = await runtime.store.executions_per_minute(since, namespace)
    running = await runtime.store.search_executions(namespace=namespace, states=_RUNNING, limit=1)
    success = sum(n for _, state, n in rows if state in (State.SUCCESS, State.WARNING))
    failed = sum(n for _, state, n in rows if state in _FAILED)
    ended = success + failed
    return ExecutionStats(
        since=since,
        per_minute=[MinuteCount(minute=m, state=s, count=n) for m, s, n in rows],
        running=running.total,
        success=success,
        failed=failed,
        success_rate=success / ended if ended else None,
    )


@router.get("/triggers/latency")
async def trigger_latency(
    runtime: RuntimeDep,
    kind: Annotated[
        str, Query(pattern="^(first_task|created)$", description="first_task or created")
    ] = "first_task",
) -> list[LatencyBody]:
    """Per trigger, the recent event → first task (or → execution created) latencies."""
    latencies = await runtime.trigger_view.latencies(kind)
    return [
        LatencyBody(
            trigger=name,
            kind=kind,
            count=len(values),
            p50=percentile(values, 50),
            p99=percentile(values, 99),
            buckets=list(LATENCY_BUCKETS),
            counts=histogram(values),
        )
        for name, values in sorted(latencies.items())
    ]
