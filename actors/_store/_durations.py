"""ISO-8601 durations (``P1DT2H3M4.5S``) to and from `datetime.timedelta`."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

_PATTERN = re.compile(
    r"^(?P<sign>[-+])?P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)

_MICROS = {
    "weeks": 7 * 86_400_000_000,
    "days": 86_400_000_000,
    "hours": 3_600_000_000,
    "minutes": 60_000_000,
    "seconds": 1_000_000,
}


def format_duration(value: dt.timedelta) -> str:
    """Write ``value`` as an ISO-8601 duration, exact to the microsecond.

    Args:
        value: Any timedelta, negative included (written with a leading ``-``).

    Returns:
        E.g. ``PT0S``, ``PT1.5S``, ``P2DT3H``, ``-PT5M``.
    """
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    days = value.days
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}P"
    if days:
        text += f"{days}D"
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or value.microseconds:
        frac = f".{value.microseconds:06d}".rstrip("0") if value.microseconds else ""
        time += f"{seconds}{frac}S"
    if time or not days:
        text += f"T{time or '0S'}"
    return text


def parse_duration(text: str) -> dt.timedelta:
    """Read an ISO-8601 duration (weeks, days, hours, minutes, seconds; no months/years).

    Args:
        text: E.g. ``PT30S``, ``P1DT2H``, ``-PT0.25S``.

    Returns:
        The duration.

    Raises:
        ValueError: ``text`` is not such a duration.
    """
    match = _PATTERN.match(text.strip())
    if not match or text.strip() in ("P", "PT", "-P", "+P") or text.strip().endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    micros = sum(
        Decimal(amount) * _MICROS[unit]
        for unit, amount in match.groupdict().items()
        if amount and unit != "sign"
    )
    value = dt.timedelta(microseconds=int(micros))
    return -value if match["sign"] == "-" else value
