"""Store write throughput: batched vs one transaction per write, beside raw INSERT commits.

    python -m benchmarks.store_bench [--dsn postgresql://...] [--ops 3000] [--concurrency 64]

Without ``--dsn`` it starts an `EmbeddedPostgres` in a temporary directory (durability on:
fsync and synchronous_commit are PostgreSQL's defaults). Each scenario runs in its own
new database (created through the DSN, dropped afterwards), so ``--dsn`` needs CREATEDB.

Scenarios, each call awaited until durable, with ``--concurrency`` concurrent callers
unless said otherwise:

* ``baseline_insert_serial``: single-row ``INSERT`` autocommits on one connection, one after
  another (one caller): what one durable commit costs.
* ``baseline_insert_concurrent``: the same from the concurrent callers on a pool.
* ``create_lone`` / ``transition_lone``: one caller at a time through the store: the
  latency a lone event pays for "durable" (compare with ``baseline_insert_serial``).
* ``create_batched`` / ``create_unbatched``: `Store.create_execution` (dedupe key + one
  initial task run) with batching on / off.
* ``transition_batched`` / ``transition_unbatched``: `Store.transition` of distinct
  executions with batching on / off.
* ``history_batched``: what an execution's run writes behind (`StoreRecorder`), fenced by
  its lease, for ``--ops`` executions from the concurrent callers: execution RUNNING, task
  run created, RUNNING, attempt started (enqueued together, awaited), then attempt ended,
  outputs, task run SUCCESS, execution SUCCESS (awaited), then the lease released: 9
  writes per execution in three awaits, as a one-task run makes them. ops = executions.
* ``history_lone``: the same from one run at a time: each batch is one phase of one run
  (the small batches of a lightly loaded host), so its p50 is what a run waits for its
  writes to be durable.

Prints a table and writes ``benchmarks/results/store.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

from actors._embedded_postgres import EmbeddedPostgres
from actors._store import Attempt, NewExecution, NewTaskRun, Store
from actors._store._ops import (
    AddTaskRunsOp,
    AttemptOp,
    OutputsOp,
    ReleaseLeaseOp,
    TaskRunTransitionOp,
    TransitionOp,
)
from flows import State

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


@dataclass
class Result:
    scenario: str
    ops: int
    seconds: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    batches: int | None = None
    client_cpu_ms_per_op: float | None = None
    server_cpu_ms_per_op: float | None = None

    @property
    def mean_batch(self) -> float | None:
        return self.ops / self.batches if self.batches else None


async def _postmaster(dsn: str) -> psutil.Process | None:
    """The local PostgreSQL server's main process (None when it is not on this machine)."""
    conn = await asyncpg.connect(dsn)
    try:
        backend = int(await conn.fetchval("SELECT pg_backend_pid()"))
        return psutil.Process(backend).parent()
    except psutil.Error:
        return None
    finally:
        await conn.close()


class CpuMeter:
    """CPU seconds of this process and of the Postgres server (its processes, live and
    exited): on a shared machine, cost per op moves far less than wall-clock figures."""

    def __init__(self, postmaster: psutil.Process | None) -> None:
        self.postmaster = postmaster

    def server(self) -> float | None:
        if self.postmaster is None:
            return None
        try:
            own = self.postmaster.cpu_times()
            total = own.user + own.system + own.children_user + own.children_system
            for child in self.postmaster.children():
                with contextlib.suppress(psutil.Error):
                    times = child.cpu_times()
                    total += times.user + times.system
            return total
        except psutil.Error:
            return None

    @staticmethod
    def client() -> float:
        return time.process_time()


METER = CpuMeter(None)


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _run(
    name: str, ops: int, concurrency: int, call: Callable[[int], Awaitable[Any]]
) -> Result:
    """Run ``call(i)`` for i in range(ops) from ``concurrency`` workers; time each call."""
    latencies: list[float] = []
    counter = iter(range(ops))
    client, server = METER.client(), METER.server()

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    client = METER.client() - client
    server_now = METER.server()
    latencies.sort()
    return Result(
        scenario=name,
        ops=ops,
        seconds=round(elapsed, 3),
        ops_per_s=round(ops / elapsed, 1),
        p50_ms=round(statistics.median(latencies) * 1000, 3),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 3),
        client_cpu_ms_per_op=round(client * 1000 / ops, 4),
        server_cpu_ms_per_op=(
            None
            if server is None or server_now is None
            else round((server_now - server) * 1000 / ops, 4)
        ),
    )


class Databases:
    """Creates one fresh database per scenario and drops them all at the end."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self.names: list[str] = []

    async def new(self) -> str:
        name = f"kestrel_bench_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.names.append(name)
        return _with_database(self.admin_dsn, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in self.names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def baseline_serial(dsn: str, ops: int) -> Result:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE bench (id text PRIMARY KEY, payload jsonb NOT NULL)")

        async def insert(i: int) -> None:
            await conn.execute(
                "INSERT INTO bench (id, payload) VALUES ($1, $2::jsonb)", f"row-{i}", '{"n": 1}'
            )

        return await _run("baseline_insert_serial", ops, 1, insert)
    finally:
        await conn.close()


async def baseline_concurrent(dsn: str, ops: int, concurrency: int, pool_size: int) -> Result:
    async with asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size) as pool:
        await pool.execute("CREATE TABLE bench (id text PRIMARY KEY, payload jsonb NOT NULL)")

        async def insert(i: int) -> None:
            await pool.execute(
                "INSERT INTO bench (id, payload) VALUES ($1, $2::jsonb)", f"row-{i}", '{"n": 1}'
            )

        return await _run("baseline_insert_concurrent", ops, concurrency, insert)


def _execution(i: int, *, task_runs: bool = True) -> NewExecution:
    return NewExecution(
        namespace="bench",
        flow_id="flow",
        flow_revision=1,
        inputs={"i": i},
        trigger={"topic": "orders", "partition": 0, "offset": i},
        dedupe_key=f"kafka:orders/0@{i}",
        task_runs=(NewTaskRun(task_id="first"),) if task_runs else (),
    )


async def creates(
    dsn: str, ops: int, concurrency: int, batching: bool, pool: int, name: str = ""
) -> Result:
    name = name or ("create_batched" if batching else "create_unbatched")
    async with Store(dsn, batching=batching, max_connections=pool) as store:
        result = await _run(name, ops, concurrency, lambda i: store.create_execution(_execution(i)))
        if batching:
            result.batches = store.batcher.batches
    return result


async def transitions(
    dsn: str, ops: int, concurrency: int, batching: bool, pool: int, name: str = ""
) -> Result:
    name = name or ("transition_batched" if batching else "transition_unbatched")
    async with Store(dsn, batching=True, max_connections=pool) as setup:
        created = await asyncio.gather(*(setup.create_execution(_execution(i)) for i in range(ops)))
    ids = [c.execution.id for c in created]
    async with Store(dsn, batching=batching, max_connections=pool) as store:
        result = await _run(
            name, ops, concurrency, lambda i: store.transition(ids[i], State.RUNNING)
        )
        if batching:
            result.batches = store.batcher.batches
    return result


async def histories(
    dsn: str, executions: int, concurrency: int, pool: int, name: str = "history_batched"
) -> Result:
    """The writes of one-task runs, fenced, as `StoreRecorder` hands them to the store."""
    ttl = dt.timedelta(minutes=10)
    async with Store(dsn, max_connections=pool) as setup:
        created = await asyncio.gather(
            *(
                setup.create_execution(
                    _execution(i, task_runs=False), lease_owner="bench", lease_ttl=ttl
                )
                for i in range(executions)
            )
        )
    leases = [c.lease for c in created]
    async with Store(dsn, max_connections=pool) as store:

        async def run(i: int) -> None:
            lease = leases[i]
            assert lease is not None
            ex = lease.key
            started = dt.datetime.now(dt.UTC)
            task = NewTaskRun(task_id="first", created_at=started)
            await asyncio.gather(
                store.enqueue(TransitionOp.of(ex, State.RUNNING, started, lease=lease)),
                store.enqueue(AddTaskRunsOp.of(ex, [task], lease)),
                store.enqueue(TaskRunTransitionOp.of(ex, task.id, State.RUNNING, lease=lease)),
                store.enqueue(
                    AttemptOp.of(
                        ex, task.id, Attempt(number=1, state=State.RUNNING, started_at=started,
                                             worker="bench-worker"), lease
                    )
                ),
            )  # fmt: skip
            ended = dt.datetime.now(dt.UTC)
            done = Attempt(number=1, state=State.SUCCESS, ended_at=ended)
            await asyncio.gather(
                store.enqueue(AttemptOp.of(ex, task.id, done, lease)),
                store.enqueue(OutputsOp.of(ex, task.id, {"value": i}, lease)),
                store.enqueue(TaskRunTransitionOp.of(ex, task.id, State.SUCCESS, lease=lease)),
                store.enqueue(TransitionOp.of(ex, State.SUCCESS, lease=lease)),
            )
            await store.enqueue(ReleaseLeaseOp(lease))

        result = await _run(name, executions, concurrency, run)
        result.batches = store.batcher.batches
    # Every write landed: each execution ended SUCCESS with its task run and attempt.
    conn = await asyncpg.connect(dsn)
    try:
        done = await conn.fetchval(
            """SELECT count(*) FROM executions e
               JOIN task_runs t ON t.execution_id = e.id AND t.state = 'SUCCESS'
               JOIN task_run_attempts a ON a.task_run_id = t.id AND a.state = 'SUCCESS'
               JOIN outputs o ON o.task_run_id = t.id
               WHERE e.state = 'SUCCESS' AND jsonb_array_length(t.state_history) = 3"""
        )
    finally:
        await conn.close()
    if done != executions:
        raise RuntimeError(f"{name}: {done} of {executions} executions fully written")
    return result


async def _server_settings(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: str(await conn.fetchval(f"SHOW {name}"))
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    finally:
        await conn.close()


SCENARIOS = (
    "baseline_insert_serial",
    "create_lone",
    "transition_lone",
    "baseline_insert_concurrent",
    "create_batched",
    "create_unbatched",
    "transition_batched",
    "transition_unbatched",
    "history_batched",
    "history_lone",
)


async def _scenario(
    name: str, databases: Databases, ops: int, concurrency: int, pool: int
) -> Result:
    lone = min(ops, 1000)
    db = await databases.new()
    if name == "baseline_insert_serial":
        return await baseline_serial(db, lone)
    if name == "create_lone":
        return await creates(db, lone, 1, True, pool, name)
    if name == "transition_lone":
        return await transitions(db, lone, 1, True, pool, name)
    if name == "baseline_insert_concurrent":
        return await baseline_concurrent(db, ops, concurrency, pool)
    if name.startswith("create_"):
        return await creates(db, ops, concurrency, name == "create_batched", pool)
    if name.startswith("transition_"):
        return await transitions(db, ops, concurrency, name == "transition_batched", pool)
    if name == "history_batched":
        return await histories(db, ops, concurrency, pool)
    if name == "history_lone":
        return await histories(db, lone, 1, pool, name)
    raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")


async def bench(
    admin_dsn: str,
    ops: int,
    concurrency: int,
    pool: int,
    scenarios: tuple[str, ...] = SCENARIOS,
) -> dict[str, Any]:
    databases = Databases(admin_dsn)
    results: list[Result] = []
    METER.postmaster = await _postmaster(admin_dsn)
    try:
        for name in scenarios:
            results.append(await _scenario(name, databases, ops, concurrency, pool))
    finally:
        await databases.drop_all()
    return {
        "benchmark": "store",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "postgres": await _server_settings(admin_dsn),
        "concurrency": concurrency,
        "pool_size": pool,
        "results": [{**asdict(r), "mean_batch": r.mean_batch} for r in results],
    }


def _print(report: dict[str, Any]) -> None:
    pg = report["postgres"]
    print(
        f"PostgreSQL {pg['server_version']} fsync={pg['fsync']} "
        f"synchronous_commit={pg['synchronous_commit']}; {report['machine']['cpus']} CPUs; "
        f"{report['concurrency']} concurrent callers; pool {report['pool_size']}"
    )
    header = (
        f"{'scenario':<28}{'ops':>7}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'batch':>8}"
        f"{'cpu ms/op client':>18}{'server':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in report["results"]:
        batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "-"
        server = r.get("server_cpu_ms_per_op")
        print(
            f"{r['scenario']:<28}{r['ops']:>7}{r['ops_per_s']:>10.0f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{batch:>8}"
            f"{r.get('client_cpu_ms_per_op') or 0:>18.3f}"
            f"{'-' if server is None else f'{server:.3f}':>8}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="admin DSN of a server (default: embedded, temp dir)")
    parser.add_argument("--ops", type=int, default=3000, help="writes per scenario")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent callers")
    parser.add_argument("--pool", type=int, default=10, help="connections per store/pool")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, in order (default: all): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    if args.dsn:
        report = await bench(args.dsn, args.ops, args.concurrency, args.pool, scenarios)
        report["server"] = "external"
    else:
        with tempfile.TemporaryDirectory(prefix="kestrel-bench-") as tmp:
            async with EmbeddedPostgres(Path(tmp) / "pg") as pg:
                report = await bench(pg.admin_dsn, args.ops, args.concurrency, args.pool, scenarios)
        report["server"] = "embedded"
    _print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
