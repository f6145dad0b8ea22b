"""Trivial tasks run in the execution's own process: Log, Echo, Return, OutputValues, Labels, Fetch.

A Ray round trip would cost more than their work, so an attempt of one of them is a
render and an outcome here (`INLINE_WORKER`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from flows import (
    Echo,
    ExpressionError,
    Fetch,
    Labels,
    Log,
    OutputValues,
    Return,
    State,
    Task,
    TaskError,
)

from ._invocation import INLINE_WORKER, TaskOutcome
from ._run_port import RunPort
from ._runstate import TaskRunState
from ._scope import Scope
from ._store._records import utcnow

INLINE_TYPES: tuple[type[Task], ...] = (Log, Return, Echo, OutputValues, Labels, Fetch)
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


class InlineTasks:
    """Runs attempts of the trivial task types (`INLINE_TYPES`) of one execution run."""

    def __init__(self, port: RunPort) -> None:
        self._port = port

    async def run(
        self, task: Task, run: TaskRunState, scope: Scope, started: dt.datetime
    ) -> TaskOutcome:
        """One attempt of `task`; a template error raises `ExpressionError`."""
        templates = self._port.templates
        context = templates.context(run, scope)
        outputs: dict[str, Any] = {}
        logs: list[tuple[dt.datetime, str, str]] = []
        if isinstance(task, Log):
            messages = task.message if isinstance(task.message, list) else [task.message]
            for index, message in enumerate(messages):
                prop = "message" if isinstance(task.message, str) else f"message[{index}]"
                text = await templates.render(message, context, task=task.id, prop=prop)
                logs.append((utcnow(), task.level.value, text))
        elif isinstance(task, Echo):
            text = await templates.render(task.format, context, task=task.id, prop="format")
            logs.append((utcnow(), task.level.value, text))
        elif isinstance(task, OutputValues):
            values = await templates.render_value(task.values, context, task=task.id, prop="values")
            outputs["values"] = _as_text(values)
        elif isinstance(task, Labels):
            await self._set_labels(task, context)
        elif isinstance(task, Fetch):
            outputs["size"] = self._fetch_size(task)
        else:
            assert isinstance(task, Return)
            outputs["value"] = await templates.render_value(
                task.value, context, task=task.id, prop="value"
            )
        return TaskOutcome(
            state=State.SUCCESS,
            outputs=outputs,
            logs=logs,
            error=None,
            worker=INLINE_WORKER,
            node=None,
            started_at=started,
            ended_at=utcnow(),
        )

    async def _set_labels(self, task: Labels, context: Mapping[str, Any]) -> None:
        templates = self._port.templates
        value = await templates.render_value(task.labels, context, task=task.id, prop="labels")
        if isinstance(value, str):
            value = _json_value(value, task.id, "labels")
        if isinstance(value, list):
            value = {
                str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)
            }
        if not isinstance(value, dict):
            raise ExpressionError("labels must be a map or a list of key/value", task=task.id)
        for key in value:
            if str(key).startswith("system."):
                raise TaskError(f"label '{key}' is reserved by the system", retriable=False)
        self._port.journal.add_labels({str(k): text(v) for k, v in value.items()})

    def _fetch_size(self, task: Fetch) -> int:
        floor = LEVELS.index(task.level.value)
        return sum(
            1
            for task_id, level, _ in self._port.journal.logs
            if level in LEVELS
            and LEVELS.index(level) >= floor
            and (not task.tasks_id or task_id in task.tasks_id)
        )


def text(value: Any) -> str:
    """A value as Kestra writes it in text: booleans lower case, maps and lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _as_text(value: Any) -> Any:
    """Kestra renders OutputValues to text: every rendered leaf becomes a string."""
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value if value is None else text(value)


def _json_value(raw: str, task_id: str, prop: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise ExpressionError(
            f"{prop} must be JSON, got {raw!r}", task=task_id, prop=prop
        ) from None
