"""`make bench` installs what the Celery peer needs; `make test` does not (no Redis)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.dry_run import make_dry_run

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(target: str, tmp_path: Path) -> str:
    return make_dry_run(target, tmp_path / "venv")


def test_make_bench_installs_redis_and_celery_and_make_test_does_not(tmp_path: Path) -> None:
    bench = _dry_run("bench", tmp_path)
    assert "KESTREL_SYSTEM_PACKAGES=.ci/bench-packages.txt .ci/deps" in bench
    assert "'.[dev,bench]'" in bench
    test = _dry_run("test", tmp_path)
    assert "bench-packages" not in test and "[bench]" not in test

    listed = [
        line.split()[0]
        for line in (ROOT / ".ci" / "bench-packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert listed == ["redis-server"]
    tests_list = (ROOT / ".ci" / "system-packages.txt").read_text()
    assert "redis" not in tests_list

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bench_extra = extras["optional-dependencies"]["bench"]
    assert any(dep.startswith("celery[redis]") for dep in bench_extra)
    assert not any("celery" in dep for dep in extras["optional-dependencies"]["dev"])
