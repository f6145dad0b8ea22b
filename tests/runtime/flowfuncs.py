"""Functions that `python.Function` tasks call in runtime tests (importable by Ray workers)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

CALLS: Counter[str] = Counter()


def echo(**kwargs: Any) -> dict[str, Any]:
    """Return the kwargs as outputs."""
    return dict(kwargs)


def fail_times(key: str, times: int) -> dict[str, Any]:
    """Fail the first `times` calls for `key`, then succeed."""
    CALLS[key] += 1
    if CALLS[key] <= times:
        raise RuntimeError(f"planned failure {CALLS[key]} of {times}")
    return {"calls": CALLS[key]}


def always_fail(message: str = "boom") -> None:
    """Always fail."""
    raise RuntimeError(message)


def slow(seconds: float) -> dict[str, Any]:
    """Sleep, then return."""
    time.sleep(seconds)
    return {"slept": seconds}


def count(key: str) -> dict[str, Any]:
    """Count calls per key."""
    CALLS[key] += 1
    return {"calls": CALLS[key]}
