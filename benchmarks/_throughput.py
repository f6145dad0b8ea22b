"""Throughput: raise the offered rate step by step until latency or completions give way.

Each step publishes ``rate * step_seconds`` events (paced in 10 ms ticks; for JetStream,
core publishes onto the stream's subject, so the load generator is not the bottleneck),
then waits until every execution of the step has ended. A step is *sustained* when the
executions created and ended during the publishing window are ≥ 95 % of the events
offered in it, p99 event → first task started is ≤ 1 s, and every execution succeeded.
Timestamps of a step's thousands of executions are read in one SQL query (the same
columns `Store.execution_detail` returns), not one call per execution.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg

from ._deploy import Target
from ._servers import Brokers, Postgres
from ._sources import SOURCES, Source
from ._stats import summarize

KEEP_UP = 0.95
P99_LIMIT_S = 1.0
TICK_S = 0.01


@dataclass
class ThroughputOptions:
    """Which rates, how long each, and the warm-up."""

    rates: list[float] = field(
        default_factory=lambda: [100, 250, 500, 1000, 1100, 1250, 1500, 2000, 3000]
    )
    step_seconds: float = 10.0
    warmup: int = 200
    drain_seconds: float = 60.0
    keep_going: bool = False
    """Run every rate even past the first step not sustained (the latency curve)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ThroughputOptions:
        opts = cls(rates=[100, 250], step_seconds=3.0, warmup=50) if args.quick else cls()
        if args.rates:
            opts.rates = [float(r) for r in args.rates]
        if args.step_seconds:
            opts.step_seconds = args.step_seconds
        return opts

    @classmethod
    def curve(cls, args: argparse.Namespace) -> ThroughputOptions:
        """The latency-versus-rate curve: every rate from 100 to 2,000/s, 5 s each."""
        opts = cls(
            rates=[100, 250, 500, 750, 1000, 1250, 1500, 2000],
            step_seconds=5.0,
            keep_going=True,
        )
        if args.quick:
            opts = cls(rates=[100, 200], step_seconds=2.0, warmup=50, keep_going=True)
        if args.rates:
            opts.rates = [float(r) for r in args.rates]
        if args.step_seconds:
            opts.step_seconds = args.step_seconds
        return opts


async def offer(source: Source, rate: float, count: int, first: int) -> tuple[float, float]:
    """Publish events first..first+count at `rate` in ticks; returns (start, end) times."""
    loop = asyncio.get_running_loop()
    start_wall, start = time.time(), loop.time()
    sent = 0
    while sent < count:
        due = min(count, int((loop.time() - start) * rate) + 1)
        if due > sent:
            await source.publish_many(range(first + sent, first + due))
            sent = due
        await asyncio.sleep(TICK_S)  # pacing
    await source.flush()
    return start_wall, time.time()


_STEP_ROWS = """
SELECT e.id, (e.trigger -> $3::text ->> 'sent')::float8 AS sent,
       extract(epoch FROM e.created_at)::float8 AS created,
       extract(epoch FROM e.ended_at)::float8 AS ended,
       extract(epoch FROM a.started_at)::float8 AS started,
       e.state,
       a.error::text AS error
FROM executions e
LEFT JOIN task_run_attempts a ON a.execution_id = e.id AND a.attempt = 1
WHERE e.namespace = $1 AND e.flow_id = $2
  AND (e.trigger -> $3::text ->> 'n')::int >= $4 AND (e.trigger -> $3::text ->> 'n')::int < $5
"""


async def step_rows(dsn: str, target: Target, variable: str, first: int, end: int) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(_STEP_ROWS, target.namespace, target.flow_id, variable, first, end)
        )
    finally:
        await conn.close()


def judge(rows: list[Any], count: int, window: tuple[float, float], rate: float) -> dict[str, Any]:
    start, end = window
    seconds = max(end - start, 1e-6)
    created = sum(1 for r in rows if r["created"] is not None and r["created"] <= end)
    ended = sum(1 for r in rows if r["ended"] is not None and r["ended"] <= end)
    failed = sum(1 for r in rows if r["state"] != "SUCCESS")
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    errors = sorted({r["error"][:300] for r in rows if r["error"]})[:3]
    first_task = summarize(r["started"] - r["sent"] for r in rows if r["started"] is not None)
    step: dict[str, Any] = {
        "target_per_s": rate,
        "offered": count,
        "offered_per_s": round(count / seconds, 1),
        "created_per_s": round(created / seconds, 1),
        "ended_per_s": round(ended / seconds, 1),
        "executions": len(rows),
        "not_success": failed,
        "states": states,
        "sample_errors": errors,
        "event_to_created": summarize(r["created"] - r["sent"] for r in rows),
        "event_to_first_task": first_task,
    }
    why = []
    if created < KEEP_UP * count or ended < KEEP_UP * count:
        why.append("fell behind")
    if (first_task["p99"] or 1e9) > P99_LIMIT_S * 1000:
        why.append("p99 > 1 s")
    if failed or len(rows) < count:
        why.append(f"{count - len(rows) + failed} not successful")
    step["sustained"] = not why
    step["why"] = ", ".join(why)
    return step


async def _why_failed(target: Target, rows: list[Any], n: int = 3) -> list[dict[str, Any]]:
    """What the store says about a few executions that did not succeed."""
    out = []
    for row in [r for r in rows if r["state"] != "SUCCESS"][:n]:
        detail = await target.store.execution_detail(row["id"])
        if detail is None:
            continue
        out.append({
            "state": str(detail.execution.state),
            "history": [str(h.state) for h in detail.execution.state_history],
            "task_runs": [
                (str(t.task_run.state), [a.error for a in t.attempts]) for t in detail.task_runs
            ],
            "logs": [f"{line.level} {line.message[:300]}" for line in detail.logs[-5:]],
        })  # fmt: skip
    return out


async def run_steps(
    source: Source, target: Target, dsn: str, opts: ThroughputOptions
) -> list[dict[str, Any]]:
    """Warm up, then offer each rate in turn until a step is not sustained."""
    await target.wait_running()
    await offer(source, 100, opts.warmup, 0)
    await target.wait_for(opts.warmup, ended=True)
    first = opts.warmup
    steps: list[dict[str, Any]] = []
    for rate in opts.rates:
        count = int(rate * opts.step_seconds)
        print(f"  {source.label}: {rate:g}/s for {opts.step_seconds:g}s", flush=True)
        window = await offer(source, rate, count, first)
        drained = True
        try:
            await target.wait_for(first + count, ended=True, within=opts.drain_seconds)
        except TimeoutError:
            drained = False
        rows = await step_rows(dsn, target, source.variable, first, first + count)
        step = judge(rows, count, window, rate)
        step["failed_samples"] = await _why_failed(target, rows)
        step["drained"] = drained
        steps.append(step)
        print(f"    offered {step['offered_per_s']:.0f}/s, created "
              f"{step['created_per_s']:.0f}/s, ended {step['ended_per_s']:.0f}/s, "
              f"p50 {step['event_to_first_task']['p50']} ms, "
              f"p99 {step['event_to_first_task']['p99']} ms", flush=True)  # fmt: skip
        first += count
        if (not step["sustained"] or not drained) and not opts.keep_going:
            break
    return steps


def figures(label: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """A source's steps with its highest sustained rate."""
    sustained = [s for s in steps if s["sustained"]]
    return {
        "label": label,
        "steps": steps,
        "max_sustained_per_s": max((s["ended_per_s"] for s in sustained), default=0.0),
        "max_sustained_offered_per_s": max((s["target_per_s"] for s in sustained), default=0.0),
    }


async def run_source(
    key: str, brokers: Brokers, pg: Postgres, opts: ThroughputOptions
) -> dict[str, Any]:
    dsn = await pg.new_database()
    source = SOURCES[key](brokers, dsn, namespace="bench.throughput")
    await source.open()
    try:
        async with source.deployed() as target:
            steps = await run_steps(source, target, dsn, opts)
    finally:
        await source.close()
    return figures(source.label, steps)


async def run(
    brokers: Brokers, pg: Postgres, sources: list[str], opts: ThroughputOptions
) -> dict[str, Any]:
    results = {}
    for key in sources:
        print(f"throughput: {SOURCES[key].label}", flush=True)
        results[key] = await run_source(key, brokers, pg, opts)
    return {"options": asdict(opts), "sources": results}
