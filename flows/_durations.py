"""ISO-8601 durations (``PT1S``, ``P1DT2H``), converted to `timedelta` once, at the edge."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(
    r"^(?P<sign>-)?P(?!$)(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
# The same grammar for JSON Schema (ECMA-262 regex: no named groups).
DURATION_PATTERN = (
    r"^-?P(?!$)(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
    r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$"
)


_MICROS = {
    "weeks": 7 * 86_400_000_000,
    "days": 86_400_000_000,
    "hours": 3_600_000_000,
    "minutes": 60_000_000,
    "seconds": 1_000_000,
}


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration such as ``PT30S``, ``PT1H30M`` or ``P2D``, exactly.

    Years and months are refused: their length depends on the calendar.

    Raises:
        ValueError: When the text is not an ISO-8601 duration.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not an ISO-8601 duration (e.g. PT30S, PT5M, PT1H, P1D)")
    micros = sum(
        Decimal(amount) * _MICROS[unit]
        for unit, amount in match.groupdict().items()
        if amount and unit != "sign"
    )
    delta = timedelta(microseconds=int(micros))
    return -delta if match.group("sign") else delta


def format_duration(delta: timedelta) -> str:
    """Render a `timedelta` as an ISO-8601 duration, exact to the microsecond.

    E.g. ``PT0S``, ``PT1.5S``, ``P2DT3H``, ``-PT5M``.
    """
    sign = "-" if delta < timedelta(0) else ""
    delta = abs(delta)
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P"
    if delta.days:
        text += f"{delta.days}D"
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or delta.microseconds:
        frac = f".{delta.microseconds:06d}".rstrip("0") if delta.microseconds else ""
        time += f"{seconds}{frac}S"
    if time or not delta.days:
        text += f"T{time or '0S'}"
    return text


def _to_timedelta(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"expected an ISO-8601 duration string (e.g. PT30S), got {value!r}")


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_timedelta),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["PT30S"]}),
]
"""A pydantic field type: an ISO-8601 duration in YAML, a `timedelta` in Python."""
