"""Latency per source: event → execution created → first runnable task started.

For each source, at a fixed low rate: deploy the flow, measure the raw broker baseline,
warm up, publish the measured events (each stamped with its send time), wait until every
execution has ended, then read the stored timestamps back (`Store.execution_detail`):

* ``created``: the execution's ``created_at`` (stamped by the host when it builds the
  insert, just before the batched commit);
* ``running``: the execution's RUNNING entry (stamped after the create returned, i.e.
  after the commit: an upper bound for "durably created");
* ``first_task``: the first attempt's ``started_at``, stamped by the worker at the first
  line of the task body ("first runnable task started").
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from actors import ExecutionDetail
from flows import State

from . import _profile
from ._baselines import BROKER_BASELINES, paced, pg_insert_serial, ray_and_postgres
from ._servers import Brokers, Postgres
from ._sources import SOURCES, Source
from ._stats import p50_ms, ratio, summarize


@dataclass
class LatencyOptions:
    """How many events, how fast, and what else to do."""

    events: int = 2000
    warmup: int = 200
    rate: float = 50.0
    baseline_samples: int = 1000
    baseline_warmup: int = 50
    profile: str | None = "nats"
    """Source whose host is profiled with py-spy after its measurement (None: no profile)."""
    profile_seconds: float = 20.0

    @classmethod
    def quick(cls) -> LatencyOptions:
        return cls(events=300, warmup=50, baseline_samples=150, baseline_warmup=20, profile=None)


def _entered(history: Iterable[Any], state: State) -> dt.datetime | None:
    for entry in history:
        if entry.state is state:
            return entry.date  # type: ignore[no-any-return]
    return None


def _ts(value: dt.datetime | None) -> float:
    return value.timestamp() if value is not None else float("nan")


def timeline(detail: ExecutionDetail, source: Source) -> dict[str, float]:
    """The stored timestamps of one execution, as epoch seconds, with the send time."""
    execution = detail.execution
    payload = source.payload(execution.trigger or {})
    out = {
        "n": float(payload["n"]),
        "sent": float(payload["sent"]),
        "created": _ts(execution.created_at),
        "running": _ts(_entered(execution.state_history, State.RUNNING)),
    }
    run = detail.task_runs[0] if detail.task_runs else None
    out["task_running"] = _ts(_entered(run.task_run.state_history, State.RUNNING)) if run else 0
    attempt = run.attempts[0] if run and run.attempts else None
    out["first_task"] = _ts(attempt.started_at if attempt else None)
    return out


SEGMENTS = (
    ("sent", "created", "event → created_at (broker delivery, listener, create built)"),
    ("created", "running", "created_at → execution RUNNING (durable insert commit, start)"),
    ("running", "task_running", "execution RUNNING → task run RUNNING (interpreter)"),
    ("task_running", "first_task", "task run RUNNING → task body start (call to warm worker)"),
)


def analyse(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "event_to_created": summarize(r["created"] - r["sent"] for r in rows),
        "event_to_running": summarize(r["running"] - r["sent"] for r in rows),
        "event_to_first_task": summarize(r["first_task"] - r["sent"] for r in rows),
        "segments": {label: summarize(r[b] - r[a] for r in rows) for a, b, label in SEGMENTS},
    }


async def _profile_host(source: Source, opts: LatencyOptions, first: int, out: Path) -> Any:
    """py-spy the host while events keep coming at the same rate (not measured)."""
    import asyncio

    assert source.target is not None
    pid = source.target.pid
    count = int(opts.profile_seconds * opts.rate)
    output = out / f"profile-{source.key}.collapsed.txt"
    recorder = asyncio.create_task(_profile.record(pid, opts.profile_seconds, output))
    await paced(opts.rate, count, source.publish, first=first)
    await source.flush()
    dump_text = await _profile.dump(pid)
    error = await recorder
    await source.target.wait_for(first + count, ended=True)
    result: dict[str, Any] = {"pid": pid, "seconds": opts.profile_seconds, "rate": opts.rate}
    if dump_text:
        (out / f"profile-{source.key}.dump.txt").write_text(dump_text)
        result["dump"] = str(out / f"profile-{source.key}.dump.txt")
    if error:
        result["error"] = error
    else:
        result["collapsed"] = str(output)
        summary = _profile.summarize(output)
        summary["gil_cpu_ms_per_event"] = round(1000 * summary["gil_seconds"] / count, 2)
        result["summary"] = summary
    return result


async def run_source(
    key: str, brokers: Brokers, pg: Postgres, opts: LatencyOptions, out: Path
) -> dict[str, Any]:
    """Everything about one source: our figures, its broker baseline, the breakdown."""
    dsn = await pg.new_database()
    source = SOURCES[key](brokers, dsn)
    await source.open()
    try:
        async with source.deployed() as target:
            await target.wait_running()
            print(f"  {source.label}: broker baseline ({opts.baseline_samples} msgs)", flush=True)
            baseline = await BROKER_BASELINES[key](
                source, opts.baseline_samples, opts.rate, opts.baseline_warmup
            )
            print(f"  {source.label}: warm-up {opts.warmup}, then {opts.events} events "
                  f"at {opts.rate:g}/s", flush=True)  # fmt: skip
            await paced(opts.rate, opts.warmup, source.publish)
            await source.flush()
            await target.wait_for(opts.warmup, ended=True)
            started = time.time()
            await paced(opts.rate, opts.events, source.publish, first=opts.warmup)
            await source.flush()
            total = opts.warmup + opts.events
            await target.wait_for(total, ended=True, within=120 + opts.events / opts.rate)
            measured_s = time.time() - started
            profile = None
            if opts.profile == key:
                print(f"  {source.label}: py-spy on the host for {opts.profile_seconds:g}s",
                      flush=True)  # fmt: skip
                profile = await _profile_host(source, opts, total, out)
            executions = await target.executions()
            states: dict[str, int] = {}
            ids = []
            for execution in executions:
                states[str(execution.state)] = states.get(str(execution.state), 0) + 1
                n = int(source.payload(execution.trigger or {})["n"])
                if opts.warmup <= n < total:
                    ids.append(execution.id)
            rows = [timeline(d, source) for d in await target.details(ids)]
    finally:
        await source.close()
    ours = analyse(rows)
    return {
        "label": source.label,
        "events": len(rows),
        "offered_rate": opts.rate,
        "measured_seconds": round(measured_s, 1),
        "states": states,
        **ours,
        "baseline": {"what": source.broker_baseline, **summarize(baseline)},
        "profile": profile,
    }


async def run(
    brokers: Brokers, pg: Postgres, sources: list[str], opts: LatencyOptions, out: Path
) -> dict[str, Any]:
    """The latency benchmark over `sources`, with the Ray and Postgres baselines."""
    print("latency: Ray and Postgres baselines (inside an actor)", flush=True)
    probe_db = await pg.new_database()
    in_actor = await ray_and_postgres(
        probe_db, opts.baseline_samples, opts.rate, opts.baseline_warmup
    )
    baselines: dict[str, Any] = {name: summarize(v) for name, v in in_actor.items()}
    baselines["pg_insert_commit_serial"] = await pg_insert_serial(
        await pg.new_database(), min(1000, opts.baseline_samples)
    )
    ray_p50 = p50_ms(baselines["ray_task_start"])
    ray_rt_p50 = p50_ms(baselines["ray_task_round_trip"])
    results: dict[str, Any] = {}
    for key in sources:
        print(f"latency: {SOURCES[key].label}", flush=True)
        result = await run_source(key, brokers, pg, opts, out)
        ours = p50_ms(result["event_to_first_task"])
        # The headline ratio takes the Ray task as far as its body starting (the same
        # point our figure stops at); the second takes it to its result coming back.
        result["ratio_p50_to_broker_plus_ray_task"] = ratio(
            ours, p50_ms(result["baseline"]), ray_p50
        )
        result["ratio_p50_to_broker_plus_ray_task_round_trip"] = ratio(
            ours, p50_ms(result["baseline"]), ray_rt_p50
        )
        results[key] = result
    return {"options": asdict(opts), "baselines": baselines, "sources": results}
