"""Loading flows: safe YAML, every error at once, each at its exact file:line:col."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flows import Flow, FlowError, Problem, load_flow, parse_flow, validate_flow_text
from flows._tasks_core import Dag, If, Log, Return

VALID = """\
id: order-alerts
namespace: shop.orders
description: Alert on large orders
labels: {team: data}
inputs:
  - {id: threshold, type: INT, defaults: 100}
variables:
  channel: alerts
tasks:
  - id: check
    type: flow.If
    condition: "{{ trigger.value.total > inputs.threshold }}"
    then:
      - id: notify
        type: core.Log
        message: "{{ vars.channel }}"
errors:
  - {id: log-error, type: core.Log, message: "failed: {{ execution.id }}"}
"""


def problems_of(text: str, name: str = "flow.yaml") -> list[Problem]:
    return validate_flow_text(textwrap.dedent(text), name)


def test_valid_flow_loads_into_typed_models() -> None:
    flow = parse_flow(VALID)
    assert isinstance(flow, Flow)
    assert flow.uid == "shop.orders.order-alerts"
    check = flow.tasks[0]
    assert isinstance(check, If)
    assert isinstance(check.then[0], Log)
    assert flow.inputs[0].defaults == 100
    assert flow.variables == {"channel": "alerts"}
    assert flow.label_dict() == {"team": "data"}


def test_kestra_alias_resolves_to_the_same_class_with_canonical_type() -> None:
    flow = parse_flow(
        "id: a\nnamespace: n\ntasks:\n"
        "  - {id: r, type: io.kestra.plugin.core.debug.Return, format: hello}\n"
    )
    task = flow.tasks[0]
    assert isinstance(task, Return)
    assert task.type == "core.Return"
    assert task.value == "hello"


def test_yaml_syntax_error_reports_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: a\nnamespace: n\ntasks:\n  - id: x\n    type: [core.Log\n")
    with pytest.raises(FlowError) as info:
        load_flow(path)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    assert (problem.line, problem.column) == (6, 1)
    assert "invalid YAML" in problem.message
    assert str(problem).startswith(f"{path}:6:1: invalid YAML")


def test_bad_indentation_points_at_the_offending_line() -> None:
    (problem,) = problems_of("id: a\nnamespace: n\ntasks:\n  - id: x\n   type: core.Log\n")
    assert problem.line == 5
    assert "invalid YAML" in problem.message


def test_unknown_type_names_the_closest_known_types() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: ok
        type: core.Log
        message: hi
      - id: typo
        type: core.Lgo
    """
    (problem,) = problems_of(text)
    assert (problem.line, problem.column) == (8, 11)
    assert problem.path == "tasks[1].type"
    assert "unknown task type 'core.Lgo'" in problem.message
    assert "core.Log" in problem.message


def test_missing_required_property_points_at_the_task() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: first
        type: core.Log
        message: fine
      - id: second
        type: flow.Sleep
    """
    (problem,) = problems_of(text)
    assert (problem.line, problem.column) == (7, 5)
    assert problem.path == "tasks[1]"
    assert problem.message == "missing required property 'duration'"


def test_all_errors_of_a_file_are_reported_at_once_with_positions() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: p
        type: flow.Parallel
        tasks:
          - id: one
            type: core.Lg
          - id: two
            type: core.Log
            mesage: hi
          - id: three
            type: core.Log
            message: ok
            timeout: 5 minutes
    triggers:
      - id: nightly
        type: trigger.Schedule
        cron: "61 * * * *"
    """
    found = {(p.line, p.column, p.path): p.message for p in problems_of(text)}
    assert found[(8, 15, "tasks[0].tasks[0].type")].startswith("unknown task type 'core.Lg'")
    assert found[(9, 9, "tasks[0].tasks[1]")] == "missing required property 'message'"
    unknown = found[(11, 9, "tasks[0].tasks[1].mesage")]
    assert unknown.startswith("unknown property 'mesage'; allowed: ")
    assert "message" in unknown and "allowFailure" in unknown
    assert "ISO-8601" in found[(15, 18, "tasks[0].tasks[2].timeout")]
    assert "not a valid cron" in found[(19, 11, "triggers[0].cron")]
    assert len(found) == 5


def test_unknown_top_level_key_lists_flow_properties() -> None:
    (problem,) = problems_of(
        "id: a\nnamespace: n\ntask: []\ntasks:\n  - {id: l, type: core.Log, message: m}\n"
    )
    assert (problem.line, problem.column) == (3, 1)
    assert "unknown property 'task'" in problem.message
    assert "tasks" in problem.message and "pluginDefaults" in problem.message


def test_flow_and_namespace_patterns() -> None:
    problems = problems_of(
        "id: -bad\nnamespace: Shop\ntasks:\n  - {id: l, type: core.Log, message: m}\n"
    )
    paths = {p.path for p in problems}
    assert paths == {"id", "namespace"}


def test_duplicate_task_ids_across_nesting_are_refused() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: same
        type: core.Log
        message: one
      - id: wrap
        type: flow.Sequential
        tasks:
          - id: same
            type: core.Log
            message: two
    """
    (problem,) = problems_of(text)
    assert problem.line == 10
    assert "duplicate task id 'same'" in problem.message


def test_duplicate_yaml_keys_are_refused() -> None:
    (problem,) = problems_of(
        "id: a\nnamespace: n\nid: b\ntasks:\n  - {id: l, type: core.Log, message: m}\n"
    )
    assert (problem.line, problem.column) == (3, 1)
    assert "duplicate key 'id'" in problem.message


def test_dag_depends_on_must_exist_and_not_cycle() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: dag
        type: flow.Dag
        tasks:
          - task: {id: a1, type: core.Log, message: m}
            dependsOn: [a3]
          - task: {id: a2, type: core.Log, message: m}
            dependsOn: [a1, ghost]
          - task: {id: a3, type: core.Log, message: m}
            dependsOn: [a2]
    """
    problems = problems_of(text)
    messages = [p.message for p in problems]
    assert any("dependsOn 'ghost'" in m for m in messages)
    assert any("cycle" in m and "a1" in m for m in messages)
    ghost = next(p for p in problems if "ghost" in p.message)
    assert ghost.line == 10


def test_valid_dag_parses() -> None:
    flow = parse_flow(
        "id: a\nnamespace: n\ntasks:\n  - id: dag\n    type: flow.Dag\n    tasks:\n"
        "      - task: {id: a1, type: core.Log, message: m}\n"
        "      - task: {id: a2, type: core.Log, message: m}\n        dependsOn: [a1]\n"
    )
    dag = flow.tasks[0]
    assert isinstance(dag, Dag)
    assert dag.tasks[1].depends_on == ["a1"]


def test_outputs_references_must_name_a_task() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - id: first
        type: core.Return
        value: 1
      - id: second
        type: core.Log
        message: "{{ outputs.first.value }} {{ outputs['nope'].value }} outputs.plain"
    """
    (problem,) = problems_of(text)
    assert problem.line == 9
    assert "'outputs.nope' names no task" in problem.message


def test_duplicate_trigger_ids_are_refused() -> None:
    text = """\
    id: a
    namespace: n
    tasks:
      - {id: l, type: core.Log, message: m}
    triggers:
      - {id: t, type: trigger.Schedule, cron: "0 * * * *"}
      - {id: t, type: trigger.Schedule, cron: "*/5 * * * * *"}
    """
    (problem,) = problems_of(text)
    assert problem.line == 7
    assert "duplicate trigger id 't'" in problem.message


def test_plugin_defaults_fill_missing_properties() -> None:
    flow = parse_flow(
        "id: a\nnamespace: n\ntasks:\n  - {id: l, type: core.Log}\n"
        "  - {id: m, type: core.Log, message: own}\n"
        "pluginDefaults:\n  - type: core.Log\n    values: {message: default, level: WARN}\n"
    )
    first, second = flow.tasks
    assert isinstance(first, Log) and isinstance(second, Log)
    assert (first.message, first.level.value) == ("default", "WARN")
    assert second.message == "own"


def test_unsafe_yaml_tags_are_refused() -> None:
    (problem,) = problems_of(
        "id: a\nnamespace: n\ntasks:\n  - id: x\n    type: core.Log\n"
        "    message: !!python/object/apply:os.system ['echo pwned']\n"
    )
    assert problem.line == 6
    assert "invalid YAML" in problem.message


def test_not_a_mapping() -> None:
    (problem,) = problems_of("- just\n- a list\n")
    assert "must be a YAML mapping" in problem.message
