"""Percentiles and small summaries of latency samples (seconds in, milliseconds out)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

PERCENTILES = (50, 90, 99)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile of already sorted values, linearly interpolated."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * p / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return float(sorted_values[low])
    weight = rank - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


def summarize(seconds: Iterable[float]) -> dict[str, Any]:
    """``{n, p50, p90, p99, max, mean}`` in milliseconds (rounded to µs)."""
    values = sorted(s * 1000 for s in seconds if s == s)  # drop NaN
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    out: dict[str, Any] = {"n": len(values)}
    for p in PERCENTILES:
        out[f"p{p}"] = round(percentile(values, p), 3)
    out["max"] = round(values[-1], 3)
    out["mean"] = round(sum(values) / len(values), 3)
    return out


def p50_ms(summary: dict[str, Any] | None) -> float | None:
    """The p50 of a summary, if there is one."""
    if not summary or summary.get("p50") is None:
        return None
    return float(summary["p50"])


def ratio(ours: float | None, *parts: float | None) -> float | None:
    """``ours / sum(parts)`` rounded, or None when something is missing."""
    if ours is None or any(p is None for p in parts):
        return None
    total = sum(p for p in parts if p is not None)
    return round(ours / total, 2) if total > 0 else None
