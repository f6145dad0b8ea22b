"""The Celery peer's table: its figures beside ours, with the ratios (pure logic)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import _report

CELERY = {
    "benchmark": "celery",
    "machine": {"when": "2026-12-06T05:00:00Z"},
    "latency": {"n": 300, "p50": 2.0, "p90": 3.0, "p99": 8.0, "max": 9.0},
    "throughput": {"tasks": 1000, "started": 1000, "tasks_per_s": 1000.0,
                   "producer_per_s": 2500.0},
}  # fmt: skip
LATENCY = {
    "machine": {"when": "2026-12-06T05:00:00Z"},
    "sources": {
        "nats": {"label": "NATS core", "event_to_first_task": {"p50": 3.0, "p99": 6.0}},
    },
}
THROUGHPUT = {"sources": {"jetstream": {"label": "NATS JetStream", "max_sustained_per_s": 1500}}}


def test_peer_rows_put_ours_beside_celery_with_ratios() -> None:
    rows = _report.peer_rows(CELERY, {"latency": LATENCY, "throughput": THROUGHPUT})
    latency, throughput = rows
    assert latency[1:] == ["2.00 / 8.00", "3.00 / 6.00", "1.50 / 0.75"]
    assert throughput[2] == "1500 (highest sustained)" and throughput[3] == "1.50"


def test_summary_shows_the_peer_alone_when_ours_are_missing(tmp_path: Path) -> None:
    (tmp_path / "celery.json").write_text(json.dumps(CELERY))
    text = _report.summary(tmp_path)
    assert "### Same-run peer: Celery + Redis" in text
    assert "| 2.00 / 8.00 | — (no latency.json) | — |" in text
    assert "— (no throughput.json)" in text
