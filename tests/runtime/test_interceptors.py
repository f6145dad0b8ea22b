"""Interceptors: the chain's shape, the hooks an execution calls, the first-task latency."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid

import pytest

from actors import (
    AttemptFinished,
    AttemptStarted,
    ExecutionCreated,
    ExecutionEnded,
    ExecutionRun,
    FirstTaskLatency,
    InProcessDispatcher,
    Interceptor,
    Interceptors,
    MemoryRecorder,
    RunOptions,
    TaskOutcome,
    TriggerStats,
)
from actors._interceptors import Next
from flows import State

from .harness import ENGINE, flow_of, new_state


class Recording(Interceptor):
    """Notes every attempt hook, tagged with its name."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name = name
        self.seen = seen

    def attempt_started(self, input: AttemptStarted, next: Next[AttemptStarted]) -> None:
        self.seen.append(f"{self.name}>{input.task_id}#{input.attempt}")
        next(input)
        self.seen.append(f"{self.name}<{input.task_id}#{input.attempt}")

    def attempt_finished(self, input: AttemptFinished, next: Next[AttemptFinished]) -> None:
        where = "worker" if input.on_worker else "inline"
        self.seen.append(
            f"{self.name}:{input.task_id}#{input.attempt}={input.outcome.state}@{where}"
        )
        next(input)


class Renaming(Interceptor):
    """Hands a changed input to the rest of the chain."""

    def attempt_started(self, input: AttemptStarted, next: Next[AttemptStarted]) -> None:
        next(AttemptStarted(input.execution_id, input.task_run_id, "renamed", input.attempt))


class Broken(Interceptor):
    def attempt_finished(self, input: AttemptFinished, next: Next[AttemptFinished]) -> None:
        raise RuntimeError("interceptor bug")


def started(task_id: str = "t", attempt: int = 1) -> AttemptStarted:
    return AttemptStarted("e", "r", task_id, attempt)


def test_the_chain_runs_outermost_first_and_passes_changed_inputs() -> None:
    seen: list[str] = []
    chain = Interceptors([Recording("a", seen), Renaming(), Recording("b", seen)])
    chain.attempt_started(started())
    assert seen == ["a>t#1", "b>renamed#1", "b<renamed#1", "a<t#1"]
    assert chain.wants("attempt_started") and not chain.wants("execution_created")
    Interceptors().attempt_started(started())  # an empty chain is a no-op


def test_a_failing_interceptor_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    chain = Interceptors([Recording("a", seen), Broken()])
    now = dt.datetime.now(dt.UTC)
    outcome = TaskOutcome(State.SUCCESS, {}, [], None, "w", "n", now, now)
    with caplog.at_level(logging.ERROR):
        chain.attempt_finished(AttemptFinished("e", "r", "t", 1, outcome, True))
    assert seen == ["a:t#1=SUCCESS@worker"]
    assert "interceptor Broken failed in attempt_finished" in caplog.text


async def test_an_execution_calls_the_attempt_hooks_in_order() -> None:
    key = uuid.uuid4().hex
    flow = flow_of(
        f"""
id: hooked
namespace: tests.interceptors
tasks:
  - {{id: hello, type: core.Log, message: hi}}
  - id: flaky
    type: python.Function
    function: tests.runtime.flowfuncs:fail_times
    kwargs: {{key: "{key}", times: 1}}
    retry: {{type: constant, interval: PT0S, maxAttempts: 3}}
"""
    )
    seen: list[str] = []
    run = ExecutionRun(
        flow,
        new_state(flow),
        MemoryRecorder(),
        InProcessDispatcher(),
        ENGINE,
        options=RunOptions(envs={}),
        interceptors=Interceptors([Recording("a", seen)]),
    )
    assert await run.run() is State.SUCCESS
    assert seen == [
        "a>hello#1",
        "a<hello#1",
        "a:hello#1=SUCCESS@inline",
        "a>flaky#1",
        "a<flaky#1",
        "a:flaky#1=FAILED@worker",
        "a>flaky#2",
        "a<flaky#2",
        "a:flaky#2=SUCCESS@worker",
    ]


def test_first_task_latency_observes_the_first_attempt_on_a_worker_once() -> None:
    stats = TriggerStats()
    latency = FirstTaskLatency(
        lambda ns, flow_id, trigger: stats if trigger == "hook" else None, "trigger"
    )
    chain = Interceptors([latency])
    flow = flow_of(
        "id: f\nnamespace: tests.interceptors\ntasks:\n  - {id: t, type: core.Log, message: x}\n"
    )
    state = new_state(flow)
    execution = state.execution
    labelled = dataclasses.replace(execution, labels={"trigger": "hook"})
    event_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    chain.execution_created(ExecutionCreated(flow, labelled, True, event_at.timestamp()))
    assert latency.pending == 1

    def finished(on_worker: bool, after_ms: int) -> AttemptFinished:
        at = event_at + dt.timedelta(milliseconds=after_ms)
        outcome = TaskOutcome(State.SUCCESS, {}, [], None, "w1", None, at, at)
        return AttemptFinished(labelled.id, "r", "t", 1, outcome, on_worker)

    chain.attempt_finished(finished(False, 1))  # inline: not a runnable task's body
    chain.attempt_finished(finished(True, 3))
    chain.attempt_finished(finished(True, 9))  # not the first any more
    assert stats.first_task_latency_s == [pytest.approx(0.003, abs=1e-6)]
    assert latency.pending == 0

    # An execution that ends before any task ran on a worker leaves nothing behind, and
    # executions from unknown triggers or duplicates are not tracked.
    chain.execution_created(ExecutionCreated(flow, labelled, True, event_at.timestamp()))
    chain.execution_ended(ExecutionEnded(flow, labelled.id, State.FAILED))
    chain.execution_created(ExecutionCreated(flow, labelled, False, event_at.timestamp()))
    chain.execution_created(ExecutionCreated(flow, execution, True, event_at.timestamp()))
    assert latency.pending == 0
