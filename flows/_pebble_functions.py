"""Functions, filters and tests Kestra documents for its Pebble templates.

``json(text)`` / ``yaml(text)`` parse (safely); ``printContext()`` shows the variables;
``currentEachOutput(outputs.t)`` picks the current loop iteration's outputs;
``errorLogs()`` lists the execution's ERROR log lines so far; ``escapeChar`` escapes
quotes; ``is json`` / ``is map`` test values. Everything stays inside the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml
from jinja2 import pass_context
from jinja2.runtime import Context

from ._errors import ExpressionError
from ._expression_functions import to_text

ERROR_LOGS = "__errorLogs"
"""Context key under which the runtime may put a callable returning ERROR log lines."""


def parse_json(value: Any) -> Any:
    """Kestra's ``json()`` function: JSON text to a value (other values pass through)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ExpressionError(f"json(): not valid JSON: {exc.msg}") from None


def parse_yaml(value: Any) -> Any:
    """Kestra's ``yaml()`` function: YAML text to a value, with the safe loader."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ExpressionError(f"yaml(): not valid YAML: {exc}") from None


def to_yaml(value: Any) -> str:
    """The ``yaml`` filter: a value as YAML text."""
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def escape_char(value: Any, kind: str = "single") -> str:
    """Kestra's ``escapeChar('single'|'double'|'shell')``."""
    text = to_text(value)
    if kind == "single":
        return text.replace("\\", "\\\\").replace("'", "\\'")
    if kind == "double":
        return text.replace("\\", "\\\\").replace('"', '\\"')
    if kind == "shell":
        return text.replace("'", "'\\''")
    raise ExpressionError(f"escapeChar: unknown type '{kind}' (single, double or shell)")


@pass_context
def print_context(context: Context) -> str:
    """Kestra's ``printContext()``: every variable as JSON text."""
    shown = {
        k: v for k, v in context.get_all().items() if not callable(v) and not k.startswith("__")
    }
    return json.dumps(shown, default=str, sort_keys=True)


@pass_context
def current_each_output(context: Context, outputs: Any) -> Any:
    """Kestra's ``currentEachOutput(outputs.t)``: `t`'s outputs for the current iteration.

    Walks the iteration values of every enclosing loop (``parents``, outermost first, then
    ``taskrun.value``) down the output tree.
    """
    values: list[Any] = []
    parents = context.get("parents") or []
    for parent in reversed(list(parents)):
        taskrun = parent.get("taskrun") if isinstance(parent, Mapping) else None
        if isinstance(taskrun, Mapping) and taskrun.get("value") is not None:
            values.append(taskrun["value"])
    taskrun = context.get("taskrun")
    if isinstance(taskrun, Mapping) and taskrun.get("value") is not None:
        values.append(taskrun["value"])
    node = outputs
    for value in values:
        if isinstance(node, Mapping) and str(value) in node:
            node = node[str(value)]
    return node


@pass_context
def error_logs(context: Context) -> list[dict[str, Any]]:
    """Kestra's ``errorLogs()``: the ERROR log lines of the execution so far."""
    source = context.get(ERROR_LOGS)
    return list(source()) if callable(source) else []


def is_json(value: Any) -> bool:
    """``is json``: text that parses as JSON."""
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except json.JSONDecodeError:
        return False
    return True


GLOBALS: dict[str, Any] = {
    "json": parse_json,
    "yaml": parse_yaml,
    "printContext": print_context,
    "currentEachOutput": current_each_output,
    "errorLogs": error_logs,
}
FILTERS: dict[str, Any] = {"escapeChar": escape_char, "yaml": to_yaml}
TESTS: dict[str, Any] = {"json": is_json, "map": lambda v: isinstance(v, Mapping)}
