"""flow.Pause as Kestra documents it: onResume inputs, pauseDuration with behavior, timeout,
and pausing a running execution from outside."""

from __future__ import annotations

import asyncio

import pytest

from flows import FlowError, State, parse_flow
from flows._tasks_core import Pause
from tests.polling import eventually
from tests.runtime.harness import prepare, run_text

HEAD = "id: f\nnamespace: tests.runtime\n"
AFTER = "  - {id: after, type: core.Log, message: after}\n"


def _pause(props: str) -> str:
    return HEAD + f"tasks:\n  - {{id: wait, type: flow.Pause, {props}}}\n" + AFTER


@pytest.mark.parametrize(
    ("behavior", "pause_state", "final", "after_runs"),
    [
        ("RESUME", State.SUCCESS, State.SUCCESS, True),
        ("WARN", State.WARNING, State.WARNING, True),
        ("FAIL", State.FAILED, State.FAILED, False),
        ("CANCEL", State.CANCELLED, State.CANCELLED, False),
    ],
)
async def test_pause_duration_then_behavior(
    behavior: str, pause_state: State, final: State, after_runs: bool
) -> None:
    ran = await run_text(_pause(f"pauseDuration: PT0.05S, behavior: {behavior.lower()}"))
    assert ran.state is final
    assert ran.states()["wait"] is pause_state
    assert ("after" in ran.states()) is after_runs


async def test_delay_is_the_deprecated_name_of_pause_duration() -> None:
    task = parse_flow(_pause("delay: PT1S, behavior: WARN")).tasks[0]
    assert isinstance(task, Pause)
    assert task.duration is not None and task.duration.total_seconds() == 1
    ran = await run_text(_pause("delay: PT0.05S, behavior: WARN"))
    assert ran.state is State.WARNING


async def test_timeout_without_a_resume_fails_the_pause() -> None:
    ran = await run_text(_pause("timeout: PT0.05S"))
    assert ran.state is State.FAILED
    assert ran.states()["wait"] is State.FAILED
    assert "after" not in ran.states()


ON_RESUME = (
    HEAD
    + """tasks:
  - id: approve
    type: flow.Pause
    onResume:
      - {id: approver, type: STRING}
      - {id: level, type: INT, defaults: 1}
  - {id: after, type: core.Log, message: "by {{ outputs.approve.onResume.approver }} at {{ outputs.approve.onResume.level }}"}
"""
)


async def test_resume_inputs_become_on_resume_outputs() -> None:
    run = prepare(ON_RESUME)
    main = asyncio.create_task(run.run())
    await eventually(lambda: run.state.state is State.PAUSED, within=10, what="paused")
    assert run.resume(None, {"approver": "ada", "level": 3})
    assert await asyncio.wait_for(main, 10) is State.SUCCESS
    paused = next(r for r in run.state.task_runs.values() if r.task_id == "approve")
    assert paused.outputs == {"onResume": {"approver": "ada", "level": 3}}
    assert "by ada at 3" in [line.message for line in run.journal.recorder.logs]  # type: ignore[attr-defined]


async def test_an_elapsed_pause_gives_the_on_resume_defaults() -> None:
    ran = await run_text(
        HEAD
        + """tasks:
  - id: approve
    type: flow.Pause
    pauseDuration: PT0.05S
    onResume:
      - {id: level, type: INT, defaults: 2}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("approve") == {"onResume": {"level": 2}}


async def test_pause_from_outside_holds_the_next_task_until_resumed() -> None:
    run = prepare(
        HEAD
        + """tasks:
  - {id: first, type: flow.Sleep, duration: PT0.2S}
  - {id: second, type: core.Log, message: second}
"""
    )
    main = asyncio.create_task(run.run())
    await eventually(lambda: "first" in {r.task_id for r in run.state.task_runs.values()})
    assert run.pause()
    assert not run.pause()  # already paused
    assert run.state.state is State.PAUSED
    first = next(r for r in run.state.task_runs.values() if r.task_id == "first")
    await eventually(lambda: first.state is State.SUCCESS, within=10, what="first done")
    assert run.state.state is State.PAUSED
    assert "second" not in {r.task_id for r in run.state.task_runs.values()}
    assert not main.done()
    assert run.resume()
    assert await asyncio.wait_for(main, 10) is State.SUCCESS
    states = run.journal.recorder.execution_states()  # type: ignore[attr-defined]
    assert states == [State.RUNNING, State.PAUSED, State.RUNNING, State.SUCCESS]


def test_on_resume_inputs_are_checked_at_load_like_flow_inputs() -> None:
    source = (
        HEAD
        + """tasks:
  - id: approve
    type: flow.Pause
    onResume:
      - {id: level, type: INT, validator: "^[0-9]+$", min: 5, max: 1}
"""
    )
    with pytest.raises(FlowError) as raised:
        parse_flow(source, "approve.yaml")
    lines = [str(p) for p in raised.value.problems]
    assert any(
        "approve.yaml:7:9: tasks[0].onResume[0]" in line and "validator does not apply" in line
        for line in lines
    ), lines
    assert any("min is greater than max" in line for line in lines), lines
