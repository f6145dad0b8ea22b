"""Where the hot path spends its time: py-spy on the process that runs the listener.

`record` samples the listener host while events flow, keeping only samples of threads
that hold the GIL (``--gil``: Python code running, i.e. CPU time, not waits: py-spy's
idle detection is unreliable in this VM, and without ``--gil`` waits in ``epoll`` or in
a socket ``send`` show up as work), and writes collapsed stacks (``*.collapsed.txt``, for
speedscope or flamegraph.pl). `summarize` turns them into shares by library and the top
functions. `dump` is one snapshot of every thread's stack.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

CATEGORIES = (
    ("asyncpg", "asyncpg (Postgres driver)"),
    ("/ray/", "Ray (core worker, serialization)"),
    ("nats/", "nats-py"),
    ("aiokafka", "aiokafka"),
    ("paho", "paho-mqtt"),
    ("pydantic", "pydantic"),
    ("jinja2", "Jinja2"),
    ("/json/", "json"),
    ("/actors/_store", "kestrel store (SQL building, rows)"),
    ("/actors/", "kestrel actors (interpreter, service)"),
    ("/flows/", "kestrel flows (expressions, models)"),
    ("/connectors/", "kestrel connectors (listeners)"),
    ("asyncio", "asyncio event loop"),
)


def py_spy() -> str | None:
    """The py-spy binary (the venv's first)."""
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


async def _run(args: list[str], timeout: float) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "timed out"
    return proc.returncode or 0, out.decode(errors="replace")


async def dump(pid: int) -> str | None:
    """``py-spy dump`` of the process (None when py-spy is missing or not allowed)."""
    binary = py_spy()
    if binary is None:
        return None
    code, text = await _run([binary, "dump", "--pid", str(pid)], 30)
    return text if code == 0 else f"py-spy dump failed ({code}): {text.strip()[:500]}"


RATE_HZ = 250


async def record(pid: int, seconds: float, output: Path, rate: int = RATE_HZ) -> str | None:
    """Start ``py-spy record`` for `seconds`; returns an error message, or None when done."""
    binary = py_spy()
    if binary is None:
        return "py-spy is not installed (pip install '.[bench]')"
    args = [
        binary, "record", "--pid", str(pid), "--duration", str(int(seconds)),
        "--rate", str(rate), "--format", "raw", "--nolineno", "--full-filenames",
        "--gil", "--output", str(output),
    ]  # fmt: skip
    code, text = await _run(args, seconds + 60)
    return None if code == 0 and output.exists() else f"py-spy record failed: {text[-500:]}"


def _frames(stack: str) -> list[str]:
    return [f.strip() for f in stack.split(";") if f.strip()]


def _category(frame: str) -> str:
    for needle, name in CATEGORIES:
        if needle in frame:
            return name
    return "other"


def _function(frame: str) -> str:
    """``func (/path/to/pkg/module.py)`` → ``func (pkg/module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    for anchor in ("site-packages", "main", "lib"):
        if anchor in parts:
            parts = parts[len(parts) - parts[::-1].index(anchor) :]
            break
    return f"{name} ({'/'.join(parts[-3:])})"


def summarize(collapsed: Path, top: int = 15, rate: int = RATE_HZ) -> dict[str, Any]:
    """Shares of GIL-holding samples by library (leaf frame) and the top functions."""
    by_category: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        python_frames = [f for f in frames if "(" in f and not f.startswith(("process", "thread"))]
        if not python_frames:
            continue
        total += count
        leaf = python_frames[-1]
        by_category[_category(leaf)] += count
        by_leaf[_function(leaf)] += count
        for name in {_function(f) for f in python_frames if "/main/" in f or "kestrel" in f}:
            inclusive[name] += count

    def shares(counter: Counter[str], n: int) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": c, "share": round(c / total, 3)}
            for name, c in counter.most_common(n)
        ]

    return {
        "active_samples": total,
        "gil_seconds": round(total / rate, 2),
        "by_library": shares(by_category, len(CATEGORIES) + 1),
        "top_self": shares(by_leaf, top),
        "top_inclusive_kestrel": shares(inclusive, top),
    }
