"""Recorded executions replayed against today's code give the same task-run sequence.

Each history keeps its flow, inputs, trigger, the task-run sequence and every write the
run made. It is replayed twice: from scratch, and through the resume path from what the
store held after each write (`ExecutionState.from_detail`, as an actor does when the
owner of an execution died), which must finish with the same sequence.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from actors import ExecutionRun, ExecutionState, InProcessDispatcher, MemoryRecorder, RunOptions
from flows import ForEach, LoopUntil, State, walk_tasks
from tests.runtime.harness import ENGINE, Ran, flow_of, run_text

from .record import SOURCES, sequence
from .stored import detail_after

HISTORIES = sorted(Path(__file__).parent.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    history: dict[str, Any] = json.loads(path.read_text())
    return history


def test_every_source_is_recorded_as_it_is_today() -> None:
    assert {p.stem for p in HISTORIES} == set(SOURCES)
    for path in HISTORIES:
        history = load(path)
        source = SOURCES[path.stem]
        assert history["flow"] == source["flow"], f"{path.name}: re-record it"
        assert (history["inputs"], history["trigger"]) == (source["inputs"], source["trigger"])
        assert State(history["state"]).terminal
        created = [w for w in history["writes"] if w[0] == "created"]
        assert len(created) == len(history["taskRuns"]) >= 5
        assert history["writes"][-1] == ["execution", history["state"]]


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay_gives_the_recorded_sequence(path: Path) -> None:
    history = load(path)
    ran = await run_text(history["flow"], inputs=history["inputs"], trigger=history["trigger"])
    assert ran.state.value == history["state"]
    assert sequence(ran) == history["taskRuns"]


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_resuming_from_the_store_at_every_write_gives_the_recorded_sequence(
    path: Path,
) -> None:
    history = load(path)
    flow = flow_of(history["flow"])
    loops = frozenset(t.id for _, t in walk_tasks(flow) if isinstance(t, ForEach | LoopUntil))
    last = len(history["writes"]) - 1  # the last write ends the execution: nothing to resume
    for cut in range(last):
        state = ExecutionState.from_detail(detail_after(history, flow, cut), loops)
        recorder = MemoryRecorder()
        run = ExecutionRun(
            flow, state, recorder, InProcessDispatcher(), ENGINE, options=RunOptions(envs={})
        )
        final = await run.run()
        ran = Ran(final, recorder, run)
        where = (
            f"{path.stem}, resumed after write {cut} {history['writes'][cut - 1] if cut else ''}"
        )
        assert final.value == history["state"], where
        assert sequence(ran) == history["taskRuns"], where
        assert len(run.state.task_runs) == len(history["taskRuns"]), where
