"""Durations and times for people in the CLI (pure functions)."""

from __future__ import annotations

import pytest

from gateway._human import human_duration, human_seconds, human_time


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.000772, "0.8 ms"),
        (0.012, "12 ms"),
        (0.5, "500 ms"),
        (1.4, "1.4 s"),
        (42, "42 s"),
        (123, "2 min 3 s"),
        (3720, "1 h 2 min"),
        (3600, "1 h"),
        (90_000, "1 d 1 h"),
    ],
)
def test_human_seconds(seconds: float, shown: str) -> None:
    assert human_seconds(seconds) == shown


def test_human_duration_reads_iso() -> None:
    assert human_duration("PT0.012S") == "12 ms"
    assert human_duration("PT2M3S") == "2 min 3 s"
    assert human_duration(None) == "-"
    assert human_time("2024-01-02T03:04:05.678+01:00") == "2024-01-02 02:04:05"
    assert human_time(None) == "-"
