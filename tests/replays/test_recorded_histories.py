"""Recorded executions replayed against today's code give the same task-run sequence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.harness import run_text

from .record import sequence

HISTORIES = sorted(Path(__file__).parent.glob("*.json"))


def test_histories_are_recorded() -> None:
    assert len(HISTORIES) >= 2


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_gives_the_recorded_sequence(path: Path) -> None:
    history = json.loads(path.read_text())
    ran = await run_text(history["flow"], inputs=history["inputs"], trigger=history["trigger"])
    assert ran.state.value == history["state"]
    assert sequence(ran) == history["taskRuns"]
