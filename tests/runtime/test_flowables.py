"""Kestra's semantics of every flowable task, retries, timeouts, errors/finally, kill, resume.

These run the interpreter in-process (memory recorder, runnable tasks in a thread): they
test the flow language's behaviour. The Ray and Postgres paths are tested in
test_execution_actors.py.
"""

from __future__ import annotations

import asyncio
import time

from actors._recorders import MemoryRecorder
from flows import State
from tests.polling import eventually

from .harness import ENGINE, prepare, run_text

HEAD = "id: f\nnamespace: tests.runtime\n"


async def test_sequential_runs_in_order_and_stops_at_failure() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - {id: a, type: core.Log, message: one}
  - id: seq
    type: flow.Sequential
    tasks:
      - {id: b, type: core.Log, message: two}
      - {id: c, type: flow.Fail, errorMessage: stop here}
      - {id: d, type: core.Log, message: never}
  - {id: e, type: core.Log, message: never either}
"""
    )
    assert ran.state is State.FAILED
    assert ran.order() == ["a", "seq", "b", "c"]
    assert ran.states()["c"] is State.FAILED
    assert ran.states()["seq"] is State.FAILED
    assert "stop here" in ran.messages()
    assert ran.messages()[:2] == ["one", "two"]


async def test_return_outputs_and_flow_outputs() -> None:
    ran = await run_text(
        HEAD
        + """
inputs:
  - {id: name, type: STRING, defaults: world}
tasks:
  - {id: greet, type: core.Return, value: "hello {{ inputs.name }}"}
  - {id: num, type: core.Return, value: "{{ 6 * 7 }}"}
outputs:
  - {id: greeting, type: STRING, value: "{{ outputs.greet.value }}"}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("greet") == {"value": "hello world"}
    assert ran.outputs("num") == {"value": 42}
    assert ran.recorder.events[-1].detail == (State.SUCCESS, {"greeting": "hello world"})


async def test_parallel_respects_concurrent_limit() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: par
    type: flow.Parallel
    concurrent: 2
    tasks:
      - {id: s1, type: flow.Sleep, duration: PT0.2S}
      - {id: s2, type: flow.Sleep, duration: PT0.2S}
      - {id: s3, type: flow.Sleep, duration: PT0.2S}
      - {id: s4, type: flow.Sleep, duration: PT0.2S}
"""
    )
    assert ran.state is State.SUCCESS
    running = 0
    peak = 0
    for task, state in ran.recorder.task_states():
        if task == "par":
            continue
        if state is State.RUNNING:
            running += 1
            peak = max(peak, running)
        elif state.terminal:
            running -= 1
    assert peak == 2


async def test_parallel_runs_children_at_the_same_time() -> None:
    started = time.monotonic()
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: par
    type: flow.Parallel
    tasks:
      - {id: s1, type: flow.Sleep, duration: PT0.5S}
      - {id: s2, type: flow.Sleep, duration: PT0.5S}
      - {id: s3, type: flow.Sleep, duration: PT0.5S}
"""
    )
    assert ran.state is State.SUCCESS
    assert time.monotonic() - started < 1.4  # sequential would take 1.5 s


async def test_if_uses_kestra_truthiness() -> None:
    text = (
        HEAD
        + """
inputs:
  - {id: flag, type: STRING}
tasks:
  - id: check
    type: flow.If
    condition: "{{ inputs.flag }}"
    then:
      - {id: then-branch, type: core.Log, message: then}
    else:
      - {id: else-branch, type: core.Log, message: else}
"""
    )
    cases = [("true", "then"), ("false", "else"), ("0", "else"), ("x", "then"), ("null", "else")]
    for flag, branch in cases:
        ran = await run_text(text, inputs={"flag": flag})
        assert ran.state is State.SUCCESS
        assert f"{branch}-branch" in ran.order(), flag
        other = "else" if branch == "then" else "then"
        assert f"{other}-branch" not in ran.order(), flag


async def test_switch_case_and_defaults() -> None:
    text = (
        HEAD
        + """
inputs:
  - {id: kind, type: STRING}
tasks:
  - id: route
    type: flow.Switch
    value: "{{ inputs.kind }}"
    cases:
      order: [{id: on-order, type: core.Log, message: order}]
      refund: [{id: on-refund, type: core.Log, message: refund}]
    defaults:
      - {id: other, type: core.Log, message: other}
"""
    )
    ran = await run_text(text, inputs={"kind": "refund"})
    assert ran.order() == ["route", "on-refund"]
    assert ran.outputs("route") == {"value": "refund", "defaults": False}
    ran = await run_text(text, inputs={"kind": "gift"})
    assert ran.order() == ["route", "other"]
    assert ran.outputs("route")["defaults"] is True


async def test_foreach_outputs_are_addressed_per_value() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: each
    type: flow.ForEach
    values: ["a", "b", "c"]
    tasks:
      - {id: up, type: core.Return, value: "{{ taskrun.value | upper }}-{{ taskrun.iteration }}"}
  - {id: pick, type: core.Return, value: "{{ outputs.up['b'].value }}"}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("up") == {
        "a": {"value": "A-0"},
        "b": {"value": "B-1"},
        "c": {"value": "C-2"},
    }
    assert ran.outputs("pick") == {"value": "B-1"}


async def test_foreach_values_from_an_expression_and_concurrency_limit() -> None:
    ran = await run_text(
        HEAD
        + """
inputs:
  - {id: items, type: JSON}
tasks:
  - id: each
    type: flow.ForEach
    values: "{{ inputs['items'] }}"
    concurrencyLimit: 0
    tasks:
      - {id: wait, type: flow.Sleep, duration: PT0.3S}
""",
        inputs={"items": [1, 2, 3, 4]},
    )
    assert ran.state is State.SUCCESS
    assert ran.order().count("wait") == 4


async def test_nested_foreach_of_parallel_of_if() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: each
    type: flow.ForEach
    values: [1, 2, 3, 4]
    tasks:
      - id: par
        type: flow.Parallel
        tasks:
          - id: even
            type: flow.If
            condition: "{{ taskrun.value | int is even }}"
            then:
              - {id: tag, type: core.Return, value: "even {{ taskrun.value }}"}
            else:
              - {id: odd, type: core.Return, value: "odd {{ taskrun.value }}"}
          - {id: square, type: core.Return, value: "{{ (taskrun.value | int) ** 2 }}"}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("tag") == {"2": {"value": "even 2"}, "4": {"value": "even 4"}}
    assert ran.outputs("odd") == {"1": {"value": "odd 1"}, "3": {"value": "odd 3"}}
    assert ran.outputs("square")["3"] == {"value": 9}


async def test_nested_foreach_parent_value() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: outer
    type: flow.ForEach
    values: [x, y]
    tasks:
      - id: inner
        type: flow.ForEach
        values: [1, 2]
        tasks:
          - {id: pair, type: core.Return, value: "{{ parent.taskrun.value }}{{ taskrun.value }}"}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("pair") == {
        "x": {"1": {"value": "x1"}, "2": {"value": "x2"}},
        "y": {"1": {"value": "y1"}, "2": {"value": "y2"}},
    }


async def test_dag_runs_after_dependencies() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: dag
    type: flow.Dag
    tasks:
      - task: {id: load, type: core.Log, message: load}
        dependsOn: [extract-a, extract-b]
      - task: {id: extract-a, type: flow.Sleep, duration: PT0.2S}
      - task: {id: extract-b, type: core.Log, message: b}
      - task: {id: report, type: core.Log, message: report}
        dependsOn: [load]
"""
    )
    assert ran.state is State.SUCCESS
    ended = [t for t, s in ran.recorder.task_states() if s is State.SUCCESS]
    assert ended.index("load") > ended.index("extract-a")
    assert ended.index("load") > ended.index("extract-b")
    assert ended.index("report") > ended.index("load")


async def test_dag_does_not_start_dependents_of_a_failure() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: dag
    type: flow.Dag
    tasks:
      - task: {id: broken, type: flow.Fail}
      - task: {id: after, type: core.Log, message: x}
        dependsOn: [broken]
"""
    )
    assert ran.state is State.FAILED
    assert "after" not in ran.order()


async def test_allow_failure_task_and_property() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: tolerant
    type: flow.AllowFailure
    tasks:
      - {id: bad, type: flow.Fail}
  - {id: also-bad, type: flow.Fail, allowFailure: true}
  - {id: goes-on, type: core.Log, message: still here}
"""
    )
    assert ran.state is State.WARNING
    assert ran.states()["tolerant"] is State.WARNING
    assert ran.states()["also-bad"] is State.WARNING
    assert ran.states()["goes-on"] is State.SUCCESS


async def test_fail_condition_and_run_if() -> None:
    ran = await run_text(
        HEAD
        + """
inputs:
  - {id: n, type: INT}
tasks:
  - {id: guard, type: flow.Fail, condition: "{{ inputs.n > 10 }}", errorMessage: "too big: {{ inputs.n }}"}
  - {id: maybe, type: core.Log, message: small, runIf: "{{ inputs.n < 3 }}"}
  - {id: done, type: core.Log, message: done}
""",
        inputs={"n": 5},
    )
    assert ran.state is State.SUCCESS
    assert ran.states()["maybe"] is State.SKIPPED
    ran = await run_text(
        HEAD
        + """
inputs:
  - {id: n, type: INT}
tasks:
  - {id: guard, type: flow.Fail, condition: "{{ inputs.n > 10 }}", errorMessage: "too big: {{ inputs.n }}"}
""",
        inputs={"n": 50},
    )
    assert ran.state is State.FAILED
    assert "too big: 50" in ran.messages()


async def test_errors_then_finally_order() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - {id: work, type: core.Log, message: work}
  - {id: broken, type: flow.Fail, errorMessage: broken}
errors:
  - {id: on-error, type: core.Log, message: "handling {{ execution.id }}"}
finally:
  - {id: cleanup, type: core.Log, message: cleanup}
afterExecution:
  - {id: notify, type: core.Log, message: "ended {{ execution.state }}"}
"""
    )
    assert ran.state is State.FAILED
    assert ran.order() == ["work", "broken", "on-error", "cleanup", "notify"]
    assert ran.messages()[-1] == "ended FAILED"
    assert ran.recorder.execution_states()[-1] is State.FAILED


async def test_finally_runs_on_success_and_errors_do_not() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - {id: work, type: core.Log, message: work}
errors:
  - {id: on-error, type: core.Log, message: not this}
finally:
  - {id: cleanup, type: core.Log, message: cleanup}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.order() == ["work", "cleanup"]


async def test_retry_with_exponential_backoff_records_each_attempt() -> None:
    key = f"retry-{time.monotonic_ns()}"
    started = time.monotonic()
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: flaky
    type: python.Function
    function: tests.runtime.flowfuncs:fail_times
    kwargs: {{key: {key}, times: 2}}
    retry: {{type: exponential, interval: PT0.1S, delayFactor: 3, maxAttempts: 5}}
"""
    )
    elapsed = time.monotonic() - started
    assert ran.state is State.SUCCESS
    attempts = [e.detail for e in ran.recorder.events if e.kind == "attempt" and e.detail.ended_at]
    assert [a.state for a in attempts] == [State.FAILED, State.FAILED, State.SUCCESS]
    assert [a.number for a in attempts] == [1, 2, 3]
    assert "planned failure 1 of 2" in attempts[0].error["message"]
    assert elapsed >= 0.1 + 0.3  # 0.1 s, then 0.1 * 3
    assert State.RETRYING in [s for t, s in ran.recorder.task_states() if t == "flaky"]
    assert ran.outputs("flaky") == {"calls": 3}


async def test_retry_gives_up_after_max_attempts() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: bad
    type: python.Function
    function: tests.runtime.flowfuncs:always_fail
    retry: {type: constant, interval: PT0.01S, maxAttempts: 3}
"""
    )
    assert ran.state is State.FAILED
    attempts = [e.detail for e in ran.recorder.events if e.kind == "attempt" and e.detail.ended_at]
    assert len(attempts) == 3


async def test_timeout_fails_the_task() -> None:
    started = time.monotonic()
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: slow
    type: python.Function
    function: tests.runtime.flowfuncs:slow
    kwargs: {seconds: 5}
    timeout: PT0.3S
"""
    )
    assert ran.state is State.FAILED
    assert time.monotonic() - started < 4
    attempts = [e.detail for e in ran.recorder.events if e.kind == "attempt" and e.detail.ended_at]
    assert attempts[-1].error["type"] == "timeout"


async def test_flowable_timeout() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: wrap
    type: flow.Sequential
    timeout: PT0.2S
    tasks:
      - {id: long, type: flow.Sleep, duration: PT10S}
"""
    )
    assert ran.state is State.FAILED
    assert ran.states()["long"] is State.KILLED


async def test_pause_waits_for_resume() -> None:
    run = prepare(
        HEAD
        + """
tasks:
  - {id: before, type: core.Log, message: before}
  - {id: approve, type: flow.Pause}
  - {id: after, type: core.Log, message: after}
"""
    )
    task = asyncio.create_task(run.run())
    await eventually(lambda: run.state.state is State.PAUSED, within=10, what="the pause")
    assert not task.done()
    assert run.resume()
    assert await asyncio.wait_for(task, 10) is State.SUCCESS
    states = run.journal.recorder.execution_states()  # type: ignore[attr-defined]
    assert states == [State.RUNNING, State.PAUSED, State.RUNNING, State.SUCCESS]


async def test_pause_with_delay_resumes_by_itself_and_timeout_fails() -> None:
    ran = await run_text(HEAD + "tasks:\n  - {id: wait, type: flow.Pause, delay: PT0.1S}\n")
    assert ran.state is State.SUCCESS
    ran = await run_text(HEAD + "tasks:\n  - {id: wait, type: flow.Pause, timeout: PT0.1S}\n")
    assert ran.state is State.FAILED


async def test_loop_until_condition() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: poll
    type: flow.LoopUntil
    condition: "{{ outputs.step | length >= 3 }}"
    checkFrequency: {interval: PT0.01S, maxIterations: 10}
    tasks:
      - {id: step, type: core.Return, value: "{{ taskrun.iteration }}"}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("step") == {"0": {"value": 0}, "1": {"value": 1}, "2": {"value": 2}}


async def test_loop_until_max_iterations() -> None:
    ran = await run_text(
        HEAD
        + """
tasks:
  - id: poll
    type: flow.LoopUntil
    condition: "false"
    failOnMaxReached: true
    checkFrequency: {interval: PT0.01S, maxIterations: 3}
    tasks:
      - {id: step, type: core.Log, message: "{{ taskrun.iteration }}"}
"""
    )
    assert ran.state is State.FAILED
    assert ran.messages()[:3] == ["0", "1", "2"]


async def test_kill_cancels_running_tasks() -> None:
    run = prepare(
        HEAD
        + """
tasks:
  - id: par
    type: flow.Parallel
    tasks:
      - {id: long1, type: flow.Sleep, duration: PT30S}
      - id: long2
        type: python.Function
        function: tests.runtime.flowfuncs:slow
        kwargs: {seconds: 2}
finally:
  - {id: never, type: core.Log, message: x}
"""
    )
    task = asyncio.create_task(run.run())
    recorder = run.journal.recorder
    assert isinstance(recorder, MemoryRecorder)
    await eventually(
        lambda: ("long2", State.RUNNING) in recorder.task_states(), within=10, what="long2 to run"
    )
    run.kill()
    assert await asyncio.wait_for(task, 10) is State.KILLED
    finals = dict(run.journal.recorder.task_states())  # type: ignore[attr-defined]
    assert finals["long1"] is State.KILLED
    assert finals["par"] is State.KILLED


async def test_expression_error_fails_the_task_with_a_precise_log() -> None:
    ran = await run_text(
        HEAD + "tasks:\n  - {id: bad, type: core.Log, message: '{{ vars.nope }}'}\n"
    )
    assert ran.state is State.FAILED
    assert any("bad.message" in m and "nope" in m for m in ran.messages())


async def test_trigger_payload_is_data_not_a_template() -> None:
    ran = await run_text(
        HEAD + "tasks:\n  - {id: echo, type: core.Return, value: '{{ trigger.value }}'}\n",
        trigger={"value": "{{ 7*7 }}"},
    )
    assert ran.outputs("echo") == {"value": "{{ 7*7 }}"}


async def test_secret_inputs_are_masked_in_logs_and_outputs() -> None:
    ran = await run_text(
        HEAD
        + """
inputs:
  - {id: token, type: SECRET}
tasks:
  - {id: say, type: core.Log, message: "token is {{ inputs.token }}"}
  - {id: keep, type: core.Return, value: "{{ inputs.token }}"}
""",
        inputs={"token": "s3cr3t-value"},
    )
    assert ran.messages() == ["token is ******"]
    assert ran.outputs("keep") == {"value": "******"}
    # The value is this execution's: the process-wide engine does not keep it (it used to
    # remember every execution's secrets forever).
    assert ENGINE.mask("s3cr3t-value") == "s3cr3t-value"
