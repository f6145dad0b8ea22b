"""Kestra's trigger conditions: which executions (or events) may start a flow.

A condition is a mapping with a ``type`` (a short name or Kestra's qualified name) and
that type's properties. `condition_holds` evaluates the ones that look at an upstream
execution (Flow triggers); ``Expression`` is evaluated by whoever has a template context.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

if TYPE_CHECKING:
    from ._expressions import ExpressionEngine

_K = "io.kestra.plugin.core.condition."
_OLD = "io.kestra.core.models.conditions.types."

CONDITION_TYPES: dict[str, tuple[str, ...]] = {
    "ExecutionStatus": ("in", "notIn"),
    "ExecutionFlow": ("namespace", "flowId"),
    "ExecutionNamespace": ("namespace", "comparison", "prefix"),
    "ExecutionLabels": ("labels",),
    "ExecutionOutputs": ("expression",),
    "Expression": ("expression",),
    "ExpressionCondition": ("expression",),
    "FlowCondition": ("namespace", "flowId"),
    "FlowNamespaceCondition": ("namespace", "prefix"),
    "DayWeek": ("dayOfWeek", "date"),
    "DayWeekInMonth": ("dayOfWeek", "dayInMonth", "date"),
    "DateTimeBetween": ("after", "before", "date"),
    "TimeBetween": ("after", "before", "date"),
    "Weekend": ("date",),
    "Not": ("conditions",),
    "Or": ("conditions",),
    "MultipleCondition": ("conditions", "window", "windowAdvance"),
    "PublicHoliday": ("country", "subDivision", "date"),
}
"""Every known condition (Kestra's short class name) with the properties it accepts."""


def condition_name(type_name: str) -> str | None:
    """The short name of a condition type written in any accepted spelling, or None."""
    for prefix in (_K, _OLD, "condition.", ""):
        if type_name.startswith(prefix):
            short = type_name[len(prefix) :]
            if short in CONDITION_TYPES:
                return short
    return None


class Condition(BaseModel):
    """One trigger condition: ``type`` plus that condition's properties."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    type: str
    id: str | None = None

    @model_validator(mode="after")
    def _known(self) -> Condition:
        name = condition_name(self.type)
        if name is None:
            known = ", ".join(f"condition.{n}" for n in sorted(CONDITION_TYPES))
            raise ValueError(f"unknown condition type '{self.type}'; known: {known}")
        allowed = set(CONDITION_TYPES[name])
        extra = sorted(set(self.model_extra or {}) - allowed)
        if extra:
            raise ValueError(
                f"condition.{name}: unknown property '{extra[0]}'; allowed: "
                + ", ".join(sorted(allowed))
            )
        return self

    @property
    def name(self) -> str:
        """The condition's short name, e.g. ``ExecutionStatus``."""
        return condition_name(self.type) or self.type

    def get(self, key: str, default: Any = None) -> Any:
        """A property of the condition."""
        return (self.model_extra or {}).get(key, default)


def condition_holds(condition: Condition, namespace: str, flow_id: str, state: str) -> bool:
    """Whether an upstream execution of ``namespace.flow_id`` ending in `state` passes.

    Conditions that do not look at the upstream execution (dates, expressions) pass here.
    """
    name = condition.name
    if name == "ExecutionStatus":
        wanted = [str(s) for s in condition.get("in") or []]
        refused = [str(s) for s in condition.get("notIn") or []]
        return (not wanted or state in wanted) and state not in refused
    if name in ("ExecutionFlow", "FlowCondition"):
        return bool(condition.get("namespace") == namespace and condition.get("flowId") == flow_id)
    if name in ("ExecutionNamespace", "FlowNamespaceCondition"):
        prefix = str(condition.get("namespace") or "")
        if condition.get("prefix") or condition.get("comparison") == "PREFIX":
            return namespace == prefix or namespace.startswith(prefix + ".")
        return namespace == prefix
    if name == "MultipleCondition":
        # Evaluated per upstream execution: one of its conditions must hold. Kestra's
        # window (all of them within `window`) is not kept across executions here.
        inner = condition.get("conditions") or {}
        return any(
            condition_holds(Condition.model_validate(c), namespace, flow_id, state)
            for c in inner.values()
        )
    return True


_DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def event_conditions_hold(
    conditions: list[Condition],
    engine: ExpressionEngine,
    context: Mapping[str, Any],
    when: dt.datetime,
) -> bool:
    """Whether every condition lets an event (a webhook call, a schedule tick) start a run.

    ``Expression`` is evaluated in `context`; ``DayWeek``, ``Weekend``, ``TimeBetween`` and
    ``DateTimeBetween`` look at `when`; ``Not`` and ``Or`` combine nested conditions.
    Conditions about an upstream execution do not apply to events and hold.
    """
    return all(_event_holds(c, engine, context, when) for c in conditions)


def _event_holds(
    condition: Condition, engine: ExpressionEngine, context: Mapping[str, Any], when: dt.datetime
) -> bool:
    name = condition.name
    if name in ("Expression", "ExpressionCondition"):
        return engine.evaluate_condition(str(condition.get("expression")), context)
    if name == "DayWeek":
        return _DAYS[when.weekday()] == str(condition.get("dayOfWeek")).upper()
    if name == "Weekend":
        return when.weekday() >= 5
    if name in ("TimeBetween", "DateTimeBetween"):
        parse = dt.time.fromisoformat if name == "TimeBetween" else dt.datetime.fromisoformat
        point: Any = when.timetz().replace(tzinfo=None) if name == "TimeBetween" else when
        after, before = condition.get("after"), condition.get("before")
        if after is not None and point < _as(parse, after):
            return False
        return before is None or point <= _as(parse, before)
    nested = [Condition.model_validate(c) for c in condition.get("conditions") or []]
    if name == "Not":
        return not any(_event_holds(c, engine, context, when) for c in nested)
    if name == "Or":
        return any(_event_holds(c, engine, context, when) for c in nested)
    return True


def _as(parse: Any, value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.time):
        return value
    parsed = parse(str(value))
    if isinstance(parsed, dt.time):
        return parsed.replace(tzinfo=None)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


__all__ = [
    "CONDITION_TYPES",
    "Condition",
    "condition_holds",
    "condition_name",
    "event_conditions_hold",
]
