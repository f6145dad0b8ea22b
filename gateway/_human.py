"""Times and durations for people: ``12 ms``, ``1.4 s``, ``2 min 3 s``, ``2024-01-02 03:04:05``."""

from __future__ import annotations

import datetime as dt

from flows import parse_duration


def human_seconds(seconds: float) -> str:
    """A duration in the largest units that read well.

    ``0.0008`` → ``0.8 ms``, ``0.012`` → ``12 ms``, ``1.4`` → ``1.4 s``, ``42`` → ``42 s``,
    ``123`` → ``2 min 3 s``, ``3720`` → ``1 h 2 min``, ``90000`` → ``1 d 1 h``.
    """
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 0.01:
        return f"{sign}{s * 1000:.1f} ms".replace(".0 ms", " ms")
    if s < 1:
        return f"{sign}{round(s * 1000)} ms"
    if s < 10:
        return f"{sign}{s:.1f} s".replace(".0 s", " s")
    whole = round(s)
    if whole < 60:
        return f"{sign}{whole} s"
    parts = (
        (whole // 86_400, "d"),
        (whole % 86_400 // 3600, "h"),
        (whole % 3600 // 60, "min"),
        (whole % 60, "s"),
    )
    first = next(i for i, (n, _) in enumerate(parts) if n)
    # Two adjacent units at most: "1 h 2 min", never "1 h 3 s".
    shown = [(n, u) for n, u in parts[first : first + 2] if n]
    return sign + " ".join(f"{n} {unit}" for n, unit in shown)


def human_duration(iso: str | None) -> str:
    """An ISO-8601 duration (``PT1.4S``) for people (``1.4 s``); ``-`` when unknown."""
    if not iso:
        return "-"
    try:
        return human_seconds(parse_duration(iso).total_seconds())
    except ValueError:
        return iso


def human_time(value: str | None) -> str:
    """An ISO-8601 date-time as ``2024-01-02 03:04:05`` in UTC; ``-`` when unknown."""
    if not value:
        return "-"
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
