"""ISO-8601 durations (``PT1S``, ``P1DT2H``), converted to `timedelta` once, at the edge."""

from __future__ import annotations

import re
from datetime import timedelta
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


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration such as ``PT30S``, ``PT1H30M`` or ``P2D``.

    Years and months are refused: their length depends on the calendar.

    Raises:
        ValueError: When the text is not an ISO-8601 duration.
    """
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not an ISO-8601 duration (e.g. PT30S, PT5M, PT1H, P1D)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
    delta = timedelta(**parts)
    return -delta if match.group("sign") else delta


def format_duration(delta: timedelta) -> str:
    """Render a `timedelta` as an ISO-8601 duration (``PT1.5S``, ``P1DT2H``)."""
    total = delta.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    out = f"{sign}P"
    if days:
        out += f"{int(days)}D"
    time = ""
    if hours:
        time += f"{int(hours)}H"
    if minutes:
        time += f"{int(minutes)}M"
    if seconds or not (days or hours or minutes):
        time += f"{seconds:.6f}".rstrip("0").rstrip(".") + "S"
    return out + (f"T{time}" if time else "")


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
