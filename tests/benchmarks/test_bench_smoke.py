"""The latency benchmark, quick mode, one source (NATS core), through `python -m benchmarks`.

It checks that the harness works end to end and writes what it promises (our
percentiles beside the same-run baselines); never how fast anything is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.__main__ import main

pytestmark = pytest.mark.integration

PERCENTILES = ("p50", "p90", "p99", "max")


@pytest.mark.timeout(180)
def test_latency_quick_nats_core(tmp_path: Path) -> None:
    assert main(["latency", "--sources", "nats", "--quick", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "latency.json").read_text())
    assert report["benchmark"] == "latency" and report["quick"] is True
    assert report["machine"]["logical_cores"] and report["machine"]["ray"]
    assert "fsync" in report["postgres"]  # "on" unless KESTREL_TEST_POSTGRES_DSN says otherwise

    nats = report["sources"]["nats"]
    assert nats["states"] == {"SUCCESS": 350}  # 50 warm-up + 300 measured
    for measure in ("event_to_created", "event_to_running", "event_to_first_task"):
        assert nats[measure]["n"] == 300
        assert all(nats[measure][p] is not None for p in PERCENTILES), nats[measure]
    assert nats["baseline"]["n"] == 150 and nats["baseline"]["p50"] is not None
    assert nats["ratio_p50_to_broker_plus_ray_task"] is not None
    assert len(nats["segments"]) == 4

    baselines = report["baselines"]
    for name in ("ray_task_start", "ray_actor_call_start", "pg_insert_commit_in_actor"):
        assert baselines[name]["p50"] is not None, name
    assert baselines["pg_insert_commit_serial"]["p50"] is not None

    assert (tmp_path / "latency.png").stat().st_size > 0
    assert "NATS core" in (tmp_path / "summary.md").read_text()


def test_storage_bench_smoke(tmp_path: Path) -> None:
    from benchmarks.storage_bench import main as storage_bench

    assert (
        storage_bench(
            ["--files", "5", "--size-mib", "0.1", "--backends", "local", "--out", str(tmp_path)]
        )
        == 0
    )
    figures = json.loads((tmp_path / "storage.json").read_text())["backends"]["local"]
    assert set(figures) == {"raw_put", "kestrel_put", "raw_get", "kestrel_get"}
    assert all(f["mib_s"] > 0 for f in figures.values())


@pytest.mark.timeout(300)
def test_scaleout_quick_two_gateways(tmp_path: Path) -> None:
    """The scale-out part on two ``kestrel server``s, one short step: each gateway holds
    one of the trigger's two listeners, and every event's execution succeeds."""
    argv = ["scaleout", "--topologies", "two-gateways", "--quick", "--rates", "50"]
    assert main([*argv, "--step-seconds", "2", "--out", str(tmp_path)]) == 0

    report = json.loads((tmp_path / "scaleout.json").read_text())
    assert report["benchmark"] == "scaleout" and report["quick"] is True
    assert len(report["load_average_before_after"]) == 2
    gateways = report["sources"]["two-gateways"]
    holders = gateways["slots"].values()
    assert len(holders) == 2
    assert len({holder.split("-host-")[0] for holder in holders}) == 2  # one per gateway
    (step,) = gateways["steps"]
    assert step["executions"] == step["offered"] == 100 and step["not_success"] == 0
    assert step["event_to_first_task"]["p50"] is not None
    assert "two-gateways" in (tmp_path / "summary.md").read_text()
