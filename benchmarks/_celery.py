"""The same-run peer: Celery on Redis, apply_async → task body start, and tasks/s.

What a user would hand-roll instead of Kestrel, without durability: Debian's
``redis-server`` (started here on a free loopback port, no persistence) as the broker,
one ``celery worker`` with its defaults (prefork, one process per core) except gossip,
mingle and heartbeats off, and a task that stamps the time on its first line
(`benchmarks.celery_app`). The producer is the benchmark process.

* **Latency**: warm-up, then ``events`` tasks paced at ``rate``/s (our latency part's
  rate): each carries ``time.time()`` taken just before ``apply_async``; the figure is
  body start minus sent (same machine, same clock), p50/p90/p99.
* **Throughput**: ``burst`` tasks sent back to back; tasks/s is how many started divided
  by the time from the first send to the last body start (the producer's own rate is
  reported beside it: when it is close, the producer is the bottleneck).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.servers._process import (
    LOOPBACK,
    ServerSpec,
    ServerStartError,
    run_server,
    start_process,
    stop_process,
)

from ._stats import summarize

REPO = Path(__file__).resolve().parent.parent
REDIS_PATHS = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
INSTALL_HINT = "run `make bench-deps` (or `apt-get install -y redis-server` as root)"


@dataclass
class PeerOptions:
    """How many tasks, at what rate."""

    events: int = 2000
    warmup: int = 200
    rate: float = 50.0
    burst: int = 5000
    concurrency: int | None = None  # worker processes; None: Celery's default (cores)

    @classmethod
    def quick(cls) -> PeerOptions:
        return cls(events=300, warmup=50, burst=1000)


def find_redis() -> str:
    found = shutil.which("redis-server") or next((p for p in REDIS_PATHS if Path(p).exists()), None)
    if found is None:
        raise ServerStartError(f"the Celery peer needs Debian's redis-server: {INSTALL_HINT}")
    return found


def _ping(port: int) -> None:
    import redis

    redis.Redis(host=LOOPBACK, port=port, socket_timeout=1).ping()


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private Redis without persistence; yields its URL."""
    binary = find_redis()

    def command(port: int, workdir: Path) -> list[str]:
        return [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip

    spec = ServerSpec(name="redis", command=command, probe=lambda port, _: _ping(port))
    with run_server(spec) as server:
        yield f"redis://{server.host}:{server.port}/0"


@contextlib.contextmanager
def celery_worker(url: str, concurrency: int | None) -> Iterator[None]:
    """A ``celery worker`` on ``url``, ready (it has run a task) when this yields."""
    from . import celery_app

    argv = [sys.executable, "-m", "celery", "-A", "benchmarks.celery_app", "worker",
            "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]  # fmt: skip
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    with tempfile.TemporaryDirectory(prefix="kestrel-bench-celery-") as tmp:
        process = start_process(
            "celery-worker",
            argv,
            log_path=Path(tmp) / "worker.log",
            cwd=REPO,
            env={"KESTREL_BENCH_REDIS_URL": url},
        )
        try:
            celery_app.app.conf.broker_url = url  # this process sends to the same Redis
            client = _redis(url)
            celery_app.noop.apply_async((-1, time.time()))
            deadline = time.monotonic() + 60
            while not client.llen(celery_app.STAMPS):
                if process.popen.poll() is not None or time.monotonic() > deadline:
                    raise ServerStartError(f"celery worker not ready:\n{process.log_tail()}")
                time.sleep(0.05)  # polling the worker's readiness, not synchronisation
            client.delete(celery_app.STAMPS)
            yield
        finally:
            stop_process(process)


def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


def _send_paced(first: int, count: int, rate: float) -> None:
    from .celery_app import noop

    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the offered rate
        noop.apply_async((first + i, time.time()))


def _collect(url: str, expected: int, within: float) -> list[tuple[int, float, float]]:
    from .celery_app import STAMPS

    client = _redis(url)
    deadline = time.monotonic() + within
    while client.llen(STAMPS) < expected and time.monotonic() < deadline:
        time.sleep(0.05)  # polling Redis for the workers' stamps
    raw = client.lrange(STAMPS, 0, -1)
    client.delete(STAMPS)
    out = []
    for item in raw:
        n, sent, started = item.decode().split()
        out.append((int(n), float(sent), float(started)))
    return out


def measure(url: str, opts: PeerOptions) -> dict[str, Any]:
    """Latency at ``opts.rate``, then a burst for tasks/s (blocking; run it in a thread)."""
    from .celery_app import noop

    _send_paced(0, opts.warmup, opts.rate)
    _collect(url, opts.warmup, 60)
    _send_paced(opts.warmup, opts.events, opts.rate)
    stamps = _collect(url, opts.events, 60)
    latency = summarize(started - sent for _, sent, started in stamps)

    first = opts.warmup + opts.events
    sent_at = time.time()
    for i in range(opts.burst):
        noop.apply_async((first + i, time.time()))
    produced = time.time() - sent_at
    burst = _collect(url, opts.burst, 120)
    last_start = max((started for _, _, started in burst), default=sent_at)
    seconds = max(last_start - sent_at, 1e-6)
    return {
        "options": asdict(opts),
        "latency": latency,
        "latency_received": len(stamps),
        "throughput": {
            "tasks": opts.burst,
            "started": len(burst),
            "tasks_per_s": round(len(burst) / seconds, 1),
            "producer_per_s": round(opts.burst / max(produced, 1e-6), 1),
            "burst_to_start": summarize(started - sent for _, sent, started in burst),
        },
    }


def run(opts: PeerOptions) -> dict[str, Any]:
    """Start Redis and a worker, measure, stop them."""
    import celery
    import redis

    with redis_server() as url, celery_worker(url, opts.concurrency):
        figures = measure(url, opts)
        server = _redis(url).info("server").get("redis_version")
    return {
        "label": "Celery + Redis (not durable)",
        **figures,
        "versions": {
            "celery": celery.__version__,
            "redis_py": redis.__version__,
            "redis_server": server,
        },
    }
