"""Typed KV values: a Python value <-> (type name, JSON value) that round-trips exactly."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from flows import StoreError, format_duration, parse_duration

from ._records import KVType


def infer_type(value: Any) -> KVType:
    """The KV type a Python value is stored as when no type is given."""
    if isinstance(value, bool):
        return KVType.BOOLEAN
    if isinstance(value, int | float):
        return KVType.NUMBER
    if isinstance(value, str):
        return KVType.STRING
    if isinstance(value, dt.datetime):
        return KVType.DATETIME
    if isinstance(value, dt.date):
        return KVType.DATE
    if isinstance(value, dt.timedelta):
        return KVType.DURATION
    return KVType.JSON


def encode_value(value: Any, kv_type: KVType | None = None) -> tuple[KVType, Any]:
    """Turn a value into what is stored.

    Args:
        value: The value. With an explicit DATETIME, DATE or DURATION type, ISO-8601
            text is accepted too; with NUMBER, numeric text.
        kv_type: The type to store it as; inferred from the value when None.

    Returns:
        The type and a JSON-compatible value.

    Raises:
        StoreError: The value does not fit the type.
    """
    kind = infer_type(value) if kv_type is None else KVType(kv_type)
    try:
        return kind, _ENCODERS[kind](value)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"cannot store {value!r} as a KV {kind}: {exc}") from exc


def decode_value(kv_type: str, stored: Any) -> Any:
    """Turn what is stored back into the Python value `encode_value` was given."""
    kind = KVType(kv_type)
    if kind is KVType.DATETIME:
        return dt.datetime.fromisoformat(stored)
    if kind is KVType.DATE:
        return dt.date.fromisoformat(stored)
    if kind is KVType.DURATION:
        return parse_duration(stored)
    return stored


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, str):
        value = float(value) if any(c in value for c in ".eE") else int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN and infinities are not JSON numbers")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a boolean")
    return value


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError("expected a datetime")
    return value.isoformat()


def _date(value: Any) -> str:
    if isinstance(value, str):
        value = dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise TypeError("expected a date")
    return value.isoformat()


def _duration(value: Any) -> str:
    if isinstance(value, str):
        value = parse_duration(value)
    if not isinstance(value, dt.timedelta):
        raise TypeError("expected a timedelta")
    return format_duration(value)


def _json(value: Any) -> Any:
    return value


_ENCODERS = {
    KVType.STRING: _string,
    KVType.NUMBER: _number,
    KVType.BOOLEAN: _boolean,
    KVType.DATETIME: _datetime,
    KVType.DATE: _date,
    KVType.DURATION: _duration,
    KVType.JSON: _json,
}
