"""Checks that also run on a flow that does not validate: duplicate ids, from the raw YAML.

When a flow's structure is invalid (an unknown type, a missing property) there is no
`Flow` to check, but its duplicate task and trigger ids are still plain to see in the
document: they are reported in the same pass, so a user fixes everything at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._model import Path, format_path

TOP_BRANCHES = ("tasks", "errors", "finally", "afterExecution")
"""The flow's own task lists."""

CHILD_LISTS = ("tasks", "then", "else", "defaults", "errors", "finally")
"""Keys under which a task nests a list of tasks (``cases`` nests a mapping of lists)."""


def raw_tasks(data: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every task mapping of a raw flow document, nested ones included, depth first."""
    for key in TOP_BRANCHES:
        yield from _list((key,), data.get(key))


def _list(path: Path, items: Any) -> Iterator[tuple[Path, dict[str, Any]]]:
    if not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "type" not in item and isinstance(item.get("task"), dict):  # a Dag node
            yield from _task((*path, index, "task"), item["task"])
        else:
            yield from _task((*path, index), item)


def _task(path: Path, task: dict[str, Any]) -> Iterator[tuple[Path, dict[str, Any]]]:
    yield path, task
    for key in CHILD_LISTS:
        yield from _list((*path, key), task.get(key))
    cases = task.get("cases")
    if isinstance(cases, dict):
        for name, items in cases.items():
            yield from _list((*path, "cases", str(name)), items)


def duplicate_ids(data: dict[str, Any]) -> list[tuple[Path, str]]:
    """``(path, message)`` for every task or trigger id already used above it."""
    out: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for path, task in raw_tasks(data):
        task_id = task.get("id")
        if not isinstance(task_id, str):
            continue
        if task_id in seen:
            out.append(
                (
                    (*path, "id"),
                    f"duplicate task id '{task_id}' (also at {format_path(seen[task_id])})",
                )
            )
        else:
            seen[task_id] = path
    triggers = data.get("triggers")
    if isinstance(triggers, list):
        ids: set[str] = set()
        for index, trigger in enumerate(triggers):
            trigger_id = trigger.get("id") if isinstance(trigger, dict) else None
            if isinstance(trigger_id, str):
                if trigger_id in ids:
                    out.append((("triggers", index, "id"), f"duplicate trigger id '{trigger_id}'"))
                ids.add(trigger_id)
    return out
