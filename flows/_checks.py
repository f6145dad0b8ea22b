"""Static checks a flow must pass beyond its shape: ids, dependencies, references."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ._errors import Problem
from ._inputs import declaration_problems
from ._model import Flow, Path, Task, walk_tasks, yaml_key
from ._tasks_core import Dag, Pause

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
    for path, text in _strings(flow):
        for ref in referenced_outputs(text):
            if ref not in seen:
                report(path, f"'outputs.{ref}' names no task of this flow")
    return out


def _check_on_resume(path: Path, pause: Pause, report: Report) -> None:
    """``onResume`` inputs are declared (and checked) like flow inputs."""
    for index, spec in enumerate(pause.on_resume):
        for message in declaration_problems(spec):
            report((*path, "onResume", index), f"input '{spec.id}': {message}")


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
        if name == "cases":
            continue
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
