"""The Celery app of the same-run peer (`benchmarks._celery`): one task, stamped at start.

The worker is started with ``celery -A benchmarks.celery_app worker`` and the broker URL
in ``KESTREL_BENCH_REDIS_URL``. The task's first line takes the time, then pushes
``"<n> <sent> <started>"`` onto a Redis list the benchmark reads: no result backend
(Celery's default for fire-and-forget work, and nothing durable, unlike Kestrel).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

BROKER_URL = os.environ.get("KESTREL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
STAMPS = "kestrel-bench:stamps"
"""The Redis list the task's stamps go to."""

app = Celery("kestrel_bench_peer", broker=BROKER_URL)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
_client: redis.Redis | None = None


@app.task(name="kestrel_bench.noop")
def noop(n: int, sent: float) -> None:
    """Record when the body started; nothing else (like `benchmarks.funcs.noop`)."""
    started = time.time()
    global _client
    if _client is None:
        _client = redis.Redis.from_url(BROKER_URL)
    _client.rpush(STAMPS, f"{n} {sent} {started}")
