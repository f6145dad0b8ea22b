"""Helpers for model validators that report several problems at once, each at its key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Problems = list[tuple[str, str, Any]]
"""``(yamlKey, message, value)`` triples."""


def templated(value: str) -> bool:
    """True when a string holds a template (checked when rendered, not statically)."""
    return "{{" in value or "{%" in value


def contains_template(value: Any) -> bool:
    """True when a string, or any string inside dicts/lists (keys too), is `templated`."""
    if isinstance(value, str):
        return templated(value)
    if isinstance(value, dict):
        return any(contains_template(k) or contains_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_template(v) for v in value)
    return False


def refuse(model: BaseModel, problems: Iterable[tuple[str, str, Any]]) -> None:
    """Raise one validation error per ``(yamlKey, message, value)``; nothing when none.

    A problem is located at its key when the key is in the document, else at the model
    (like pydantic's own "missing" errors); every message names the property.
    """
    present = {
        f.alias or n for n, f in type(model).model_fields.items() if n in model.model_fields_set
    }
    details = [
        InitErrorDetails(
            type=PydanticCustomError("value_error", message),
            loc=(key,) if key in present else (),
            input=value,
        )
        for key, message, value in problems
    ]
    if details:
        raise ValidationError.from_exception_data(type(model).__name__, details)
