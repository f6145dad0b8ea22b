"""Static checks a flow must pass beyond its shape: ids, dependencies, references."""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterator
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateSyntaxError, nodes
from pydantic import BaseModel

from ._errors import Problem
from ._expressions import parse_template
from ._inputs import declaration_problems
from ._model import Flow, Path, Task, walk_tasks, yaml_key
from ._pebble import find_names
from ._tasks_core import Dag, Pause, Subflow
from ._tasks_kestra import WorkingDirectory

if TYPE_CHECKING:
    from ._yaml_positions import PositionedDocument

_TEMPLATE_BLOCK = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)
_OUTPUT_REF = re.compile(
    r"(?<![\w.])outputs\s*(?:\.\s*([A-Za-z0-9_]+)|\[\s*['\"]([A-Za-z0-9_-]+)['\"]\s*\])"
)


Report = Callable[[Path, str], None]


def check_flow(flow: Flow, doc: PositionedDocument | None = None) -> list[Problem]:
    """Every static problem of a validated flow, located in `doc` when given."""
    out: list[Problem] = []

    def report(path: Path, message: str) -> None:
        if doc is not None:
            out.append(doc.problem(path, message))
        else:
            out.append(Problem(message, _fmt(path)))

    tasks = list(walk_tasks(flow))
    seen = _check_ids(tasks, report)
    _check_triggers(flow, report)
    for path, task in tasks:
        if isinstance(task, Dag):
            _check_dag(path, task, report)
        if isinstance(task, Pause):
            _check_on_resume(path, task, report)
    for index, spec in enumerate(flow.inputs):
        for message in declaration_problems(spec):
            report(("inputs", index), f"input '{spec.id}': {message}")
    _check_kestra_rules(flow, tasks, report)
    inputs = {spec.id for spec in flow.inputs}
    for path, text in _strings(flow):
        for message in template_problems(text, seen, inputs):
            report(path, message)
    return out


def _check_on_resume(path: Path, pause: Pause, report: Report) -> None:
    """``onResume`` inputs are declared (and checked) like flow inputs."""
    for index, spec in enumerate(pause.on_resume):
        for message in declaration_problems(spec):
            report((*path, "onResume", index), f"input '{spec.id}': {message}")


def _check_kestra_rules(flow: Flow, tasks: list[tuple[Path, Task]], report: Report) -> None:
    """Kestra's own refusals: duplicate inputs, a flow calling itself, Pause in a folder."""
    ids = [spec.id for spec in flow.inputs]
    for index, spec in enumerate(flow.inputs):
        if ids.index(spec.id) != index:
            report(("inputs", index, "id"), f"duplicate input id '{spec.id}'")
    for path, task in tasks:
        if isinstance(task, Subflow) and (task.namespace, task.flow_id) == (
            flow.namespace,
            flow.id,
        ):
            report((*path, "flowId"), "a flow cannot start itself as a subflow")
        if isinstance(task, WorkingDirectory):
            for sub, child in task.children():
                if isinstance(child, Pause):
                    report((*path, *sub), "a WorkingDirectory cannot hold a Pause task")


_KNOWN_VARIABLES = frozenset(
    {"flow", "execution", "inputs", "outputs", "vars", "labels", "trigger", "taskrun", "task",
     "parent", "parents", "envs", "globals"}
)  # fmt: skip


def template_problems(text: str, tasks: Container[str], inputs: Container[str]) -> list[str]:
    """What is wrong in one template string: syntax, unknown tasks, inputs or variables.

    References that may legitimately be missing (left of ``??``, under ``is defined``,
    piped into ``default``) are not reported.
    """
    if "{{" not in text and "{%" not in text:
        return []
    try:
        tree, known_globals = parse_template(text)
    except TemplateSyntaxError as exc:
        return [f"expression syntax error: {exc.message} in '{text.strip()[:120]}'"]
    stored = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    problems: list[str] = []
    for node in find_names(tree, nodes.Name):
        assert isinstance(node, nodes.Name)
        if node.ctx != "load" or node.name in stored:
            continue
        if node.name not in _KNOWN_VARIABLES and node.name not in known_globals:
            problems.append(f"unknown variable '{node.name}' in '{text.strip()[:120]}'")
    for node in find_names(tree, nodes.Getattr | nodes.Getitem):  # type: ignore[arg-type]
        key = _root_key(node)
        if key is None:
            continue
        root, name = key
        if root == "outputs" and name not in tasks:
            problems.append(f"'outputs.{name}' names no task of this flow")
        elif root == "inputs" and name not in inputs:
            problems.append(f"'inputs.{name}' is not a declared input")
    return list(dict.fromkeys(problems))


def _root_key(node: nodes.Node) -> tuple[str, str] | None:
    """``('outputs', 't')`` for ``outputs.t`` or ``outputs['t']``; None for other shapes."""
    target = getattr(node, "node", None)
    if not isinstance(target, nodes.Name):
        return None
    root = target.name
    if root not in ("outputs", "inputs"):
        return None
    if isinstance(node, nodes.Getattr):
        return root, node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return root, str(node.arg.value)
    return None


def _check_ids(tasks: list[tuple[Path, Task]], report: Report) -> dict[str, Path]:
    seen: dict[str, Path] = {}
    for path, task in tasks:
        if task.id in seen:
            report((*path, "id"), f"duplicate task id '{task.id}' (also at {_fmt(seen[task.id])})")
        else:
            seen[task.id] = path
    return seen


def _check_triggers(flow: Flow, report: Report) -> None:
    triggers: dict[str, int] = {}
    for index, trigger in enumerate(flow.triggers):
        if trigger.id in triggers:
            report(("triggers", index, "id"), f"duplicate trigger id '{trigger.id}'")
        triggers.setdefault(trigger.id, index)


def referenced_outputs(text: str) -> Iterator[str]:
    """Task ids that a template reads as ``outputs.<id>`` or ``outputs['<id>']``."""
    for block in _TEMPLATE_BLOCK.finditer(text):
        inner = block.group(1) or block.group(2) or ""
        for match in _OUTPUT_REF.finditer(inner):
            yield match.group(1) or match.group(2)


def _check_dag(path: Path, dag: Dag, report: Report) -> None:
    ids = {node.task.id for node in dag.tasks}
    graph: dict[str, list[str]] = {}
    for index, node in enumerate(dag.tasks):
        graph[node.task.id] = list(node.depends_on)
        for dep in node.depends_on:
            if dep not in ids:
                report(
                    (*path, "tasks", index, "dependsOn"),
                    f"dependsOn '{dep}' is not a task of this Dag; known: {', '.join(sorted(ids))}",
                )
    cycle = _find_cycle(graph)
    if cycle:
        report((*path, "tasks"), f"dependsOn forms a cycle: {' -> '.join(cycle)}")


def _find_cycle(graph: dict[str, list[str]]) -> list[str]:
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(graph, white)
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        color[node] = grey
        stack.append(node)
        for dep in graph.get(node, []):
            if color.get(dep) == grey:
                return [*stack[stack.index(dep) :], dep]
            if color.get(dep) == white:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        color[node] = black
        return []

    for node in graph:
        if color[node] == white:
            found = visit(node)
            if found:
                return found
    return []


def _strings(flow: Flow) -> Iterator[tuple[Path, str]]:
    """Every string property of every task and flow output, with its document path."""
    for path, task in walk_tasks(flow):
        yield from _model_strings(path, task)
    for index, output in enumerate(flow.outputs):
        yield from _value_strings(("outputs", index, "value"), output.value)


def _model_strings(path: Path, task: Task) -> Iterator[tuple[Path, str]]:
    for name, field in type(task).model_fields.items():
        value = getattr(task, name)
        if isinstance(value, Task) or (
            isinstance(value, list) and value and isinstance(value[0], Task | BaseModel)
        ):
            continue  # nested tasks are visited by walk_tasks on their own
        if name == "cases" or (isinstance(task, Subflow) and name == "outputs"):
            continue  # Subflow outputs are rendered in the child execution's context
        yield from _value_strings((*path, yaml_key(name, field)), value)


def _value_strings(path: Path, value: Any) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _value_strings((*path, key), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _value_strings((*path, index), item)
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            yield from _value_strings((*path, yaml_key(name, field)), getattr(value, name))


def _fmt(path: Path) -> str:
    from ._model import format_path

    return format_path(path)
