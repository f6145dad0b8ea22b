"""Kestra's documented behaviour of the types and variables Kestra flows rely on.

In-process runs (memory recorder, in-process dispatcher), like test_flowables.py.
"""

from __future__ import annotations

from flows import State

from .harness import run_text

HEAD = "id: f\nnamespace: tests.kestra\n"
K = "io.kestra.plugin.core"


async def test_max_attempt_spelling_retries_a_fail_task() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: failed
    type: {K}.execution.Fail
    retry: {{type: constant, interval: PT0.01S, maxAttempt: 3}}
"""
    )
    assert ran.state is State.FAILED
    failed = next(r for r in ran.run.state.task_runs.values() if r.task_id == "failed")
    assert len(failed.attempts) == 3


async def test_attempts_count_is_zero_based_and_template_errors_are_retried() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: flaky
    type: {K}.log.Log
    message: "{{{{ taskrun.attemptsCount == 2 ? 'ok' : outputs.flaky.missing }}}}"
    retry: {{type: constant, interval: PT0.01S, maxAttempt: 4, warningOnRetry: true}}
"""
    )
    assert ran.state is State.WARNING
    assert "ok" in ran.messages()


async def test_kestra_variables_task_taskrun_labels_globals() -> None:
    ran = await run_text(
        HEAD
        + f"""
labels: {{team: data}}
tasks:
  - id: show
    type: {K}.debug.Return
    format: "{{{{ task.id }}}}|{{{{ task.type }}}}|{{{{ taskrun.startDate is defined }}}}|{{{{ labels.team }}}}|{{{{ labels.system.correlationId == execution.id }}}}|{{{{ globals | length }}}}"
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("show")["value"] == "show|core.Return|true|data|true|0"


async def test_each_sequential_and_parallel_with_parents() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: outer
    type: {K}.flow.EachSequential
    value: ["a", "b"]
    tasks:
      - id: inner
        type: {K}.flow.EachParallel
        value: '["x", "y"]'
        tasks:
          - id: pair
            type: {K}.debug.Echo
            format: "{{{{ parents[0].taskrun.value }}}}-{{{{ taskrun.value }}}}"
"""
    )
    assert ran.state is State.SUCCESS
    assert sorted(ran.messages()) == ["a-x", "a-y", "b-x", "b-y"]


async def test_working_directory_output_values_and_ternary() -> None:
    ran = await run_text(
        HEAD
        + f"""
inputs:
  - {{name: n, type: INT, defaults: 3}}
tasks:
  - id: wd
    type: {K}.flow.WorkingDirectory
    tasks:
      - id: values
        type: {K}.output.OutputValues
        values:
          size: "{{{{ inputs.n > 2 ? 'big' : 'small' }}}}"
          previous: "{{{{ outputs.nothing.value ?? 'none' }}}}"
      - id: read
        type: {K}.debug.Return
        format: "{{{{ outputs['values']['values'].size }}}}"
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("values")["values"] == {"size": "big", "previous": "none"}
    assert ran.outputs("read")["value"] == "big"


async def test_errors_on_a_flowable_task_run_and_it_stays_failed() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: block
    type: {K}.flow.Sequential
    tasks:
      - {{id: boom, type: {K}.execution.Fail}}
    errors:
      - {{id: local, type: {K}.log.Log, message: "handled {{{{ errorLogs() | length }}}}"}}
errors:
  - {{id: global, type: {K}.log.Log, message: global}}
"""
    )
    assert ran.state is State.FAILED
    assert ran.states()["block"] is State.FAILED
    assert ran.states()["local"] is State.SUCCESS
    assert "handled 1" in ran.messages() and "global" in ran.messages()


async def test_pause_with_tasks_and_templated_delay() -> None:
    ran = await run_text(
        HEAD
        + f"""
inputs:
  - {{id: delay, type: DURATION, defaults: PT0.05S}}
tasks:
  - id: pause
    type: {K}.flow.Pause
    delay: "{{{{ inputs.delay }}}}"
    tasks:
      - {{id: after, type: {K}.log.Log, message: resumed}}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.states()["after"] is State.SUCCESS


async def test_foreach_over_null_fails() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: each
    type: {K}.flow.ForEach
    values: "{{{{ null }}}}"
    tasks:
      - {{id: never, type: {K}.log.Log, message: x}}
"""
    )
    assert ran.state is State.FAILED
    assert "never" not in ran.states()


async def test_wait_for_counts_iterations_and_fails_on_max() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: wait
    type: {K}.flow.WaitFor
    condition: "{{{{ outputs.values.values.count == '10' }}}}"
    checkFrequency: {{maxIterations: 3, interval: PT0.01S}}
    failOnMaxReached: true
    tasks:
      - id: values
        type: {K}.output.OutputValues
        values: {{count: "{{{{ outputs.wait.iterationCount }}}}"}}
"""
    )
    assert ran.state is State.FAILED
    assert ran.outputs("wait")["iterationCount"] == 3


async def test_switch_integer_keys_and_null_defaults() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: switch
    type: {K}.flow.Switch
    value: "{{{{ 1 + 1 }}}}"
    cases:
      2:
        - {{id: two, type: {K}.log.Log, message: two}}
    defaults: null
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.states()["two"] is State.SUCCESS


async def test_labels_task_and_log_fetch() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - {{id: e1, type: {K}.debug.Echo, format: one}}
  - {{id: e2, type: {K}.debug.Echo, format: two, level: DEBUG}}
  - id: label
    type: {K}.execution.Labels
    labels: [{{key: stage, value: "{{{{ 'final' }}}}"}}]
  - {{id: fetch, type: {K}.log.Fetch, tasksId: [e1, e2], level: INFO}}
  - {{id: read, type: {K}.debug.Return, format: "{{{{ labels.stage }}}}"}}
"""
    )
    assert ran.state is State.SUCCESS
    assert ran.outputs("fetch")["size"] == 1
    assert ran.outputs("read")["value"] == "final"


async def test_sla_max_duration_fails_the_execution() -> None:
    ran = await run_text(
        HEAD
        + f"""
sla:
  - {{id: fast, type: MAX_DURATION, behavior: FAIL, duration: PT0.05S}}
tasks:
  - {{id: slow, type: {K}.flow.Sleep, duration: PT5S}}
"""
    )
    assert ran.state is State.FAILED
    assert any("SLA 'fast' missed" in m for m in ran.messages())


async def test_log_level_drops_lower_lines() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - {{id: quiet, type: {K}.debug.Echo, format: hidden, level: DEBUG, logLevel: INFO}}
  - {{id: loud, type: {K}.debug.Echo, format: shown, level: WARN, logLevel: INFO}}
"""
    )
    assert ran.messages() == ["shown"]


async def test_sla_execution_assertion_cancels_when_false() -> None:
    text = (
        HEAD
        + f"""
inputs:
  - {{id: mode, type: STRING, defaults: PASS}}
sla:
  - id: guard
    type: EXECUTION_ASSERTION
    behavior: CANCEL
    assert: "{{{{ inputs.mode != 'CANCEL' }}}}"
tasks:
  - {{id: ok, type: {K}.debug.Return, format: "done"}}
"""
    )
    assert (await run_text(text)).state is State.SUCCESS
    assert (await run_text(text, inputs={"mode": "CANCEL"})).state is State.CANCELLED


async def test_schedule_conditions_decide_each_tick() -> None:
    import datetime as dt
    from types import SimpleNamespace

    from actors._schedule import ScheduleListener
    from flows import parse_flow

    flow = parse_flow(
        HEAD
        + f"""
tasks:
  - {{id: t, type: {K}.log.Log, message: m}}
triggers:
  - id: weekdays
    type: {K}.trigger.Schedule
    cron: "0 9 * * *"
    conditions:
      - type: {K}.condition.Not
        conditions: [{{type: {K}.condition.Weekend}}]
      - type: {K}.condition.Expression
        expression: "{{{{ trigger.date is defined and flow.id == 'f' }}}}"
"""
    )
    ctx = SimpleNamespace(flow_id="f", namespace="tests.kestra")
    listener = ScheduleListener(flow.triggers[0], ctx)  # type: ignore[arg-type]
    monday = dt.datetime(2026, 12, 7, 9, tzinfo=dt.UTC)
    saturday = dt.datetime(2026, 12, 5, 9, tzinfo=dt.UTC)
    assert await listener._conditions_hold(monday, None)
    assert not await listener._conditions_hold(saturday, None)


async def test_retry_on_a_flowable_reruns_its_failed_children() -> None:
    ran = await run_text(
        HEAD
        + f"""
tasks:
  - id: block
    type: {K}.flow.Sequential
    retry: {{type: constant, interval: PT0.01S, maxAttempt: 3}}
    tasks:
      - {{id: fine, type: {K}.log.Log, message: once}}
      - {{id: child, type: {K}.execution.Fail}}
"""
    )
    assert ran.state is State.FAILED
    runs = {r.task_id: r for r in ran.run.state.task_runs.values()}
    assert len(runs["block"].attempts) == 3
    child_runs = [e for e in runs["child"].history if e.state is State.RUNNING]
    assert len(child_runs) == 3  # run again by each retry of its parent
    assert ran.messages().count("once") == 1  # the child that succeeded is kept
