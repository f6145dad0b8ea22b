"""Kestra's spellings and rules in the flow model, and the static checks of templates."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors._flow_trigger import matches
from flows import (
    Condition,
    ExpressionEngine,
    FlowError,
    InputError,
    State,
    build_context,
    condition_holds,
    event_conditions_hold,
    parse_flow,
    parse_inputs,
    validate_flow_text,
)

K = "io.kestra.plugin.core"
HEAD = "id: f\nnamespace: tests.kestra\n"


def flow(body: str):  # type: ignore[no-untyped-def]
    return parse_flow(HEAD + textwrap.dedent(body), "f.yaml")


def problems(body: str) -> list[str]:
    return [str(p) for p in validate_flow_text(HEAD + textwrap.dedent(body), "f.yaml")]


def test_retry_max_attempt_spelling() -> None:
    f = flow(f"""
    tasks:
      - id: t
        type: {K}.log.Log
        message: hi
        retry: {{type: constant, interval: PT1S, maxAttempt: 4}}
    """)
    assert f.tasks[0].retry is not None and f.tasks[0].retry.max_attempts == 4


def test_input_name_and_datetime_after_before() -> None:
    f = flow(f"""
    inputs:
      - name: when
        type: DATETIME
        after: "2024-01-01T00:00:00Z"
        before: "2024-12-31T00:00:00Z"
    tasks:
      - {{id: t, type: {K}.log.Log, message: "{{{{ inputs.when }}}}"}}
    """)
    assert f.inputs[0].id == "when"
    assert parse_inputs(f, {"when": "2024-06-01T00:00:00Z"})["when"] == dt.datetime(
        2024, 6, 1, tzinfo=dt.UTC
    )
    with pytest.raises(InputError, match="when"):
        parse_inputs(f, {"when": "2025-06-01T00:00:00Z"})
    assert any(
        "after/before apply to" in p
        for p in problems("""
    inputs:
      - {id: s, type: STRING, after: x}
    tasks:
      - {id: t, type: core.Log, message: m}
    """)
    )


def test_task_defaults_apply_like_plugin_defaults() -> None:
    f = flow(f"""
    taskDefaults:
      - type: {K}.log.Log
        values: {{level: ERROR}}
    tasks:
      - {{id: t, type: {K}.log.Log, message: m}}
    """)
    assert f.tasks[0].level.value == "ERROR"  # type: ignore[attr-defined]


def test_switch_integer_keys_and_null_defaults() -> None:
    f = flow(f"""
    tasks:
      - id: s
        type: {K}.flow.Switch
        value: "1"
        cases:
          1: [{{id: one, type: {K}.log.Log, message: one}}]
        defaults: null
    """)
    assert list(f.tasks[0].cases) == ["1"]  # type: ignore[attr-defined]


def test_trigger_conditions_are_checked_and_applied() -> None:
    f = flow(f"""
    tasks:
      - {{id: t, type: {K}.log.Log, message: m}}
    triggers:
      - id: after-upstream
        type: {K}.trigger.Flow
        conditions:
          - type: {K}.condition.ExecutionStatus
            in: [SUCCESS]
          - type: {K}.condition.ExecutionFlow
            namespace: up.stream
            flowId: producer
    """)
    trigger = f.triggers[0]
    assert matches(trigger, "up.stream", "producer", State.SUCCESS)  # type: ignore[arg-type]
    assert not matches(trigger, "up.stream", "producer", State.FAILED)  # type: ignore[arg-type]
    assert not matches(trigger, "up.stream", "other", State.SUCCESS)  # type: ignore[arg-type]
    prefix = Condition(type="condition.ExecutionNamespace", namespace="up", prefix=True)
    assert condition_holds(prefix, "up.stream", "x", "SUCCESS")
    assert not condition_holds(prefix, "down", "x", "SUCCESS")
    assert any(
        "unknown condition type 'nope'" in p
        for p in problems("""
    tasks:
      - {id: t, type: core.Log, message: m}
    triggers:
      - {id: w, type: trigger.Webhook, key: abcdefgh123, conditions: [{type: nope}]}
    """)
    )


def test_kestra_refusals() -> None:
    found = problems(f"""
    inputs:
      - {{id: a, type: STRING}}
      - {{id: a, type: STRING}}
    tasks:
      - {{id: self, type: {K}.flow.Subflow, namespace: tests.kestra, flowId: f}}
      - id: wd
        type: {K}.flow.WorkingDirectory
        tasks:
          - {{id: p, type: {K}.flow.Pause, delay: PT1S}}
    """)
    assert any("duplicate input id 'a'" in p for p in found)
    assert any("cannot start itself as a subflow" in p for p in found)
    assert any("cannot hold a Pause task" in p for p in found)


# ---- issue 11 §5: what fails every run is refused at load, with file:line:col


def test_expression_syntax_error_is_refused_with_its_position() -> None:
    found = problems("""
    tasks:
      - id: t
        type: core.Log
        message: "{{ inputs.nope "
    """)
    assert len(found) == 1
    assert found[0].startswith("f.yaml:7:5: tasks[0].message: expression syntax error")


def test_undeclared_input_unknown_task_and_unknown_variable_are_refused() -> None:
    found = problems("""
    inputs:
      - {id: declared, type: STRING, required: false}
    tasks:
      - {id: a, type: core.Log, message: "{{ inputs.undeclared }}"}
      - {id: b, type: core.Log, message: "{{ outputs.nope.value }}"}
      - {id: c, type: core.Log, message: "{{ nothing }}"}
    """)
    assert any(":7:" in p and "'inputs.undeclared' is not a declared input" in p for p in found)
    assert any(":8:" in p and "'outputs.nope' names no task of this flow" in p for p in found)
    assert any(":9:" in p and "unknown variable 'nothing'" in p for p in found)


def test_static_checks_understand_pebble() -> None:
    assert (
        problems("""
    inputs:
      - {id: n, type: INT, required: false}
    tasks:
      - {id: a, type: core.Log, message: "{{ outputs.later.value ?? '' }}"}
      - {id: b, type: core.Log, message: "{{ inputs.n > 1 ? 'big' : ko }}"}
      - {id: c, type: core.Log, message: "{{ task.id }} {{ parents | length }} {{ globals }}"}
      - {id: d, type: core.Log, message: "{% for x in [1] %}{{ x }}{% endfor %}"}
      - {id: e, type: core.Log, message: "{{ [1] contains 1 }} {{ 'a' equals 'a' }}"}
      - {id: later, type: core.Return, value: x}
    """)
        == []
    )


def test_subflow_outputs_are_checked_against_the_child_not_the_parent() -> None:
    assert (
        problems(f"""
    tasks:
      - id: call
        type: {K}.flow.Subflow
        namespace: other
        flowId: child
        outputs:
          extracted: "{{{{ outputs.only_in_child.value }}}}"
    """)
        == []
    )


def test_parse_flow_raises_all_template_problems_at_once() -> None:
    with pytest.raises(FlowError) as caught:
        flow("""
        tasks:
          - {id: a, type: core.Log, message: "{{ inputs.x }} {{ y }}"}
        """)
    assert len(caught.value.problems) == 2


def test_kestrel_validate_refuses_what_fails_every_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        HEAD
        + "tasks:\n"
        + '  - {id: a, type: core.Log, message: "{{ inputs.nope "}\n'
        + '  - {id: b, type: core.Log, message: "{{ inputs.undeclared }}"}\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(f"{bad}:4:") and "syntax error" in line for line in lines)
    assert any(line.startswith(f"{bad}:5:") and "inputs.undeclared" in line for line in lines)


def test_event_conditions_for_webhooks_and_schedules() -> None:
    engine = ExpressionEngine()
    saturday = dt.datetime(2026, 12, 5, 10, 30, tzinfo=dt.UTC)
    body = build_context(trigger={"body": {"hello": "world"}}, envs={})

    def holds(*conditions: dict[str, object], when: dt.datetime = saturday) -> bool:
        parsed = [Condition.model_validate(c) for c in conditions]
        return event_conditions_hold(parsed, engine, body, when)

    expression = {
        "type": f"{K}.condition.Expression",
        "expression": "{{ trigger.body.hello == 'world' }}",
    }
    assert holds(expression)
    assert not holds({**expression, "expression": "{{ trigger.body.hello == 'moon' }}"})
    assert holds({"type": f"{K}.condition.DayWeek", "dayOfWeek": "SATURDAY"})
    assert not holds({"type": f"{K}.condition.DayWeek", "dayOfWeek": "MONDAY"})
    assert holds({"type": f"{K}.condition.Weekend"})
    assert holds({"type": f"{K}.condition.TimeBetween", "after": "09:00:00", "before": "11:00:00"})
    assert not holds({"type": f"{K}.condition.TimeBetween", "after": "11:00:00"})
    assert holds(
        {"type": f"{K}.condition.Not", "conditions": [{"type": f"{K}.condition.Weekend"}]},
        when=saturday - dt.timedelta(days=2),
    )
    assert holds(
        {
            "type": f"{K}.condition.Or",
            "conditions": [
                {"type": f"{K}.condition.DayWeek", "dayOfWeek": "MONDAY"},
                {"type": f"{K}.condition.Weekend"},
            ],
        }
    )


def test_conditions_only_on_triggers_that_evaluate_them() -> None:
    found = problems("""
    tasks:
      - {id: t, type: core.Log, message: m}
    triggers:
      - id: n
        type: nats.RealtimeTrigger
        url: nats://localhost:4222
        subject: s
        conditions: [{type: condition.Weekend}]
    """)
    assert any("conditions are evaluated on" in p for p in found)
