"""The filters, tests and helpers of the expression language, with Kestra's names.

Everything here is a plain function of data: no I/O, no engine state. The functions that need
I/O or per-engine state (``secret()``, ``kv()``) live on `flows.ExpressionEngine`.

Functions raise `ValueError`/`TypeError` with a message meant for the flow author; the
engine turns them into an `ExpressionError` naming the task, property and expression.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import contextlib
import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from functools import lru_cache
from types import GeneratorType
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jq
from jinja2.runtime import Undefined

from ._durations import format_duration

MASK = "******"
"""What a masked secret is replaced with."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MILLIS_THRESHOLD = 100_000_000_000
"""Epoch numbers larger than this (year 5138 in seconds) are read as milliseconds."""


# --------------------------------------------------------------------------- text and JSON


def json_default(value: Any) -> Any:
    """`json.dumps` fallback for the non-JSON values a context holds.

    Datetimes, dates and times become ISO-8601 text, durations ISO-8601 durations, bytes
    base64 text, sets and iterators lists, enums their value, pydantic models their JSON dump.
    """
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, set | frozenset | tuple | range | Iterator | KeysView | ValuesView):
        return list(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if isinstance(value, Undefined):
        str(value)  # a StrictUndefined raises its own, precise error here
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


def to_json(value: Any, indent: int | None = None) -> str:
    """Filters ``json``/``tojson``/``toJson``: the value as JSON text.

    Compact unless ``indent`` is given; non-ASCII characters are kept as they are (Jinja's
    own ``tojson`` HTML-escapes, which corrupts payloads, so it is replaced).
    """
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        value, ensure_ascii=False, default=json_default, indent=indent, separators=separators
    )


def from_json(value: Any) -> Any:
    """Filter ``fromjson``/``fromJson`` and function ``fromJson()``: parse JSON text.

    A value that is already parsed (not text) is returned unchanged.
    """
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8")
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _is_lazy_sequence(value: Any) -> bool:
    return isinstance(value, GeneratorType | range | Iterator | KeysView | ValuesView | ItemsView)


def materialize(value: Any) -> Any:
    """Turn a lazy result (generator, ``range``, ``map``, dict view) into a list."""
    return list(value) if _is_lazy_sequence(value) else value


def to_text(value: Any) -> str:
    """How a value is written into a rendered string (the engine's ``finalize``).

    Strings as they are; ``None`` as the empty string; booleans as ``true``/``false``;
    datetimes as ISO-8601; durations as ISO-8601 durations; mappings, lists and other
    collections as compact JSON; everything else with `str`.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, Undefined):
        return str(value)  # raises for StrictUndefined
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset) or _is_lazy_sequence(value):
        return to_json(materialize(value))
    return str(value)


# --------------------------------------------------------------------------- dates


_OFFSET = re.compile(r"^(?:UTC|GMT)?(?P<sign>[+-])(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?$")


def zone(name: str) -> tzinfo:
    """A time zone from an IANA name (``Europe/Paris``), ``UTC``/``Z`` or an offset (``+02:00``).

    Raises:
        ValueError: When the name is none of these.
    """
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT"):
        return UTC
    match = _OFFSET.match(text)
    if match:
        delta = timedelta(hours=int(match["h"]), minutes=int(match["m"] or 0))
        return timezone(-delta if match["sign"] == "-" else delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone '{name}'") from None


def now(timeZone: str | None = None) -> datetime:
    """Function ``now()``: the current time, timezone-aware (UTC unless ``timeZone``)."""
    current = datetime.now(UTC)
    return current.astimezone(zone(timeZone)) if timeZone else current


def new_uuid() -> str:
    """Function ``uuid()``: a random UUID (version 4) as text."""
    return str(uuid.uuid4())


def _from_epoch(number: float) -> datetime:
    if abs(number) > _EPOCH_MILLIS_THRESHOLD:
        return _EPOCH + timedelta(milliseconds=number)
    return _EPOCH + timedelta(seconds=number)


def to_datetime(value: Any, existing_format: str | None = None) -> datetime:
    """Read a datetime from a datetime, a date, ISO-8601 text or an epoch number.

    Epoch numbers are seconds, or milliseconds when larger than 10^11 (Kafka timestamps).
    Naive values are taken as UTC. ``existing_format`` is a Java pattern
    (``dd/MM/yyyy HH:mm``) or a strftime format (contains ``%``) for text input.

    Raises:
        ValueError: When text is not a date in the expected format.
        TypeError: When the value is of a type that cannot be a date.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return _from_epoch(float(value))
    if not isinstance(value, str):
        raise TypeError(f"expected a date, got a {type(value).__name__}")
    text = value.strip()
    if existing_format:
        fmt = existing_format if "%" in existing_format else _java_to_strptime(existing_format)
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            raise ValueError(f"'{value}' does not match the format '{existing_format}'") from None
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                return _from_epoch(float(text))
            except ValueError:
                raise ValueError(
                    f"'{value}' is not an ISO-8601 date (e.g. 2024-05-01T12:00:00Z)"
                ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# A Java DateTimeFormatter pattern, tokenized: (letter, count) for a field, str for literal text.
_Token = tuple[str, int] | str


@lru_cache(maxsize=256)
def _java_tokens(pattern: str) -> tuple[_Token, ...]:
    tokens: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "'":
            text, i = _java_quoted(pattern, i)
            tokens.append(text)
        elif char.isascii() and char.isalpha():
            j = i
            while j < n and pattern[j] == char:
                j += 1
            tokens.append((char, j - i))
            i = j
        else:
            tokens.append(char)
            i += 1
    return tuple(tokens)


def _java_quoted(pattern: str, start: int) -> tuple[str, int]:
    """Read quoted literal text starting at the quote at ``start``; ``''`` is one quote."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "'":
        return "'", i + 1
    out: list[str] = []
    while i < len(pattern):
        if pattern[i] == "'":
            if i + 1 < len(pattern) and pattern[i + 1] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        out.append(pattern[i])
        i += 1
    raise ValueError(f"unterminated quote in date pattern '{pattern}'")


def _pad(number: int, count: int) -> str:
    return str(number).zfill(count)


def _offset(dt: datetime, *, colon: bool, zulu: bool, short: bool = False) -> str:
    delta = dt.utcoffset() or timedelta(0)
    if zulu and not delta:
        return "Z"
    sign = "-" if delta < timedelta(0) else "+"
    minutes = abs(int(delta.total_seconds())) // 60
    hours, minutes = divmod(minutes, 60)
    if short and not minutes:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}{':' if colon else ''}{minutes:02d}"


def _year(dt: datetime, count: int) -> str:
    return _pad(dt.year % 100, 2) if count == 2 else _pad(dt.year, count)


def _month(dt: datetime, count: int) -> str:
    if count >= 5:
        return calendar.month_name[dt.month][0]
    if count == 4:
        return calendar.month_name[dt.month]
    if count == 3:
        return calendar.month_abbr[dt.month]
    return _pad(dt.month, count)


def _weekday(dt: datetime, count: int) -> str:
    if count >= 5:
        return calendar.day_name[dt.weekday()][0]
    return calendar.day_name[dt.weekday()] if count == 4 else calendar.day_abbr[dt.weekday()]


def _fraction(dt: datetime, count: int) -> str:
    return (f"{dt.microsecond:06d}" + "0" * max(0, count - 6))[:count]


def _offset_x(dt: datetime, count: int, *, zulu: bool) -> str:
    return _offset(dt, colon=count in (3, 5), zulu=zulu, short=count == 1)


def _offset_z(dt: datetime, count: int) -> str:
    if count == 4:
        delta = dt.utcoffset()
        return "GMT" + (_offset(dt, colon=True, zulu=False) if delta else "")
    if count == 5:
        return _offset(dt, colon=True, zulu=True)
    return _offset(dt, colon=False, zulu=False)


def _zone_name(dt: datetime, count: int) -> str:
    key = getattr(dt.tzinfo, "key", None)
    if count >= 4 and isinstance(key, str):
        return key
    return dt.tzname() or _offset(dt, colon=True, zulu=True)


def _quarter(dt: datetime, count: int) -> str:
    q = (dt.month - 1) // 3 + 1
    return f"Q{q}" if count == 3 else _pad(q, count)


_FIELDS: dict[str, Callable[[datetime, int], str]] = {
    "G": lambda dt, n: "AD",
    "y": _year,
    "u": _year,
    "Y": lambda dt, n: _year(dt.replace(year=dt.isocalendar().year), n),
    "M": _month,
    "L": _month,
    "Q": _quarter,
    "q": _quarter,
    "w": lambda dt, n: _pad(dt.isocalendar().week, n),
    "d": lambda dt, n: _pad(dt.day, n),
    "D": lambda dt, n: _pad(dt.timetuple().tm_yday, n),
    "E": _weekday,
    "a": lambda dt, n: "AM" if dt.hour < 12 else "PM",
    "H": lambda dt, n: _pad(dt.hour, n),
    "k": lambda dt, n: _pad(dt.hour or 24, n),
    "K": lambda dt, n: _pad(dt.hour % 12, n),
    "h": lambda dt, n: _pad(dt.hour % 12 or 12, n),
    "m": lambda dt, n: _pad(dt.minute, n),
    "s": lambda dt, n: _pad(dt.second, n),
    "S": _fraction,
    "n": lambda dt, n: _pad(dt.microsecond * 1000, n),
    "A": lambda dt, n: _pad((dt.hour * 3600 + dt.minute * 60 + dt.second) * 1000
                            + dt.microsecond // 1000, n),
    "X": lambda dt, n: _offset_x(dt, n, zulu=True),
    "x": lambda dt, n: _offset_x(dt, n, zulu=False),
    "Z": _offset_z,
    "z": _zone_name,
    "V": _zone_name,
}  # fmt: skip

_STRPTIME: dict[str, Callable[[int], str]] = {
    "y": lambda n: "%y" if n == 2 else "%Y",
    "u": lambda n: "%y" if n == 2 else "%Y",
    "M": lambda n: {3: "%b", 4: "%B"}.get(n, "%m"),
    "d": lambda n: "%d",
    "D": lambda n: "%j",
    "E": lambda n: "%A" if n >= 4 else "%a",
    "a": lambda n: "%p",
    "H": lambda n: "%H",
    "h": lambda n: "%I",
    "m": lambda n: "%M",
    "s": lambda n: "%S",
    "S": lambda n: "%f",
    "X": lambda n: "%z",
    "x": lambda n: "%z",
    "Z": lambda n: "%z",
    "z": lambda n: "%Z",
}


def format_java(dt: datetime, pattern: str) -> str:
    """Format a datetime with a Java ``DateTimeFormatter`` pattern (``yyyy-MM-dd'T'HH:mm``).

    Supported letters: G y u Y M L Q q w d D E a H k K h m s S n A X x Z z V; text in single
    quotes is literal and ``''`` is a quote. Names are English.

    Raises:
        ValueError: For a pattern letter that is not supported.
    """
    out: list[str] = []
    for token in _java_tokens(pattern):
        if isinstance(token, str):
            out.append(token)
            continue
        letter, count = token
        field = _FIELDS.get(letter)
        if field is None:
            raise ValueError(f"unsupported letter '{letter}' in date pattern '{pattern}'")
        out.append(field(dt, count))
    return "".join(out)


@lru_cache(maxsize=256)
def _java_to_strptime(pattern: str) -> str:
    out: list[str] = []
    for token in _java_tokens(pattern):
        if isinstance(token, str):
            out.append(token.replace("%", "%%"))
            continue
        letter, count = token
        directive = _STRPTIME.get(letter)
        if directive is None:
            raise ValueError(f"unsupported letter '{letter}' in date pattern '{pattern}'")
        out.append(directive(count))
    return "".join(out)


_NAMED_FORMATS: dict[str, Callable[[datetime], str]] = {
    "iso": lambda dt: dt.isoformat(),
    "iso_sec": lambda dt: dt.isoformat(timespec="seconds"),
    "iso_milli": lambda dt: dt.isoformat(timespec="milliseconds"),
    "iso_date_time": lambda dt: dt.isoformat(),
    "iso_offset_date_time": lambda dt: dt.isoformat(),
    "iso_instant": lambda dt: dt.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    "iso_date": lambda dt: dt.date().isoformat(),
    "iso_local_date": lambda dt: dt.date().isoformat(),
    "iso_time": lambda dt: dt.timetz().isoformat(),
    "iso_local_time": lambda dt: dt.time().isoformat(),
    "iso_local_date_time": lambda dt: dt.replace(tzinfo=None).isoformat(),
    "sql": lambda dt: dt.replace(tzinfo=None).isoformat(sep=" "),
    "sql_sec": lambda dt: dt.replace(tzinfo=None).isoformat(sep=" ", timespec="seconds"),
    "sql_milli": lambda dt: dt.replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds"),
}


def date_filter(
    value: Any,
    format: str | None = None,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> str:
    """Filter ``date``: format a date.

    ``format`` is a Java pattern (``yyyy-MM-dd'T'HH:mm:ss``), a strftime format when it
    contains ``%``, or one of the names ``iso``, ``iso_sec``, ``iso_milli``, ``iso_instant``,
    ``iso_date``, ``iso_time``, ``sql``, ``sql_sec``, ``sql_milli``, ...; ISO-8601 without one.
    The input may be a datetime, ISO text or an epoch number (see `to_datetime`).
    """
    dt = to_datetime(value, existingFormat)
    if timeZone:
        dt = dt.astimezone(zone(timeZone))
    if format is None:
        return dt.isoformat()
    named = _NAMED_FORMATS.get(format.lower())
    if named is not None:
        return named(dt)
    if "%" in format:
        return dt.strftime(format)
    return format_java(dt, format)


_UNITS: dict[str, timedelta] = {
    "NANOS": timedelta(microseconds=0.001),
    "MICROS": timedelta(microseconds=1),
    "MILLIS": timedelta(milliseconds=1),
    "SECONDS": timedelta(seconds=1),
    "MINUTES": timedelta(minutes=1),
    "HOURS": timedelta(hours=1),
    "HALF_DAYS": timedelta(hours=12),
    "DAYS": timedelta(days=1),
    "WEEKS": timedelta(weeks=1),
}
_MONTH_UNITS = {"MONTHS": 1, "YEARS": 12, "DECADES": 120, "CENTURIES": 1200}


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + dt.month - 1 + months
    year, month0 = divmod(total, 12)
    day = min(dt.day, calendar.monthrange(year, month0 + 1)[1])
    return dt.replace(year=year, month=month0 + 1, day=day)


def date_add(
    value: Any,
    amount: float,
    unit: str,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> datetime:
    """Filter ``dateAdd(amount, unit)``: the date moved by ``amount`` units (may be negative).

    Units are Java's ``ChronoUnit`` names: NANOS, MICROS, MILLIS, SECONDS, MINUTES, HOURS,
    HALF_DAYS, DAYS, WEEKS, MONTHS, YEARS, DECADES, CENTURIES (case-insensitive, singular
    accepted). Months and years are calendar arithmetic (Jan 31 + 1 month = Feb 28/29).
    """
    dt = to_datetime(value, existingFormat)
    if timeZone:
        dt = dt.astimezone(zone(timeZone))
    name = unit.strip().upper()
    name = name if name.endswith("S") else f"{name}S"
    if name in _MONTH_UNITS:
        if amount != int(amount):
            raise ValueError(f"dateAdd: {unit} needs a whole amount, got {amount}")
        return _add_months(dt, int(amount) * _MONTH_UNITS[name])
    step = _UNITS.get(name)
    if step is None:
        known = ", ".join([*_UNITS, *_MONTH_UNITS])
        raise ValueError(f"dateAdd: unknown unit '{unit}' (expected one of {known})")
    return dt + step * amount


def _since_epoch(value: Any, unit: timedelta, tz: str | None, existing: str | None) -> int:
    dt = to_datetime(value, existing)
    if tz:
        dt = dt.astimezone(zone(tz))
    return (dt - _EPOCH) // unit


def timestamp(
    value: Any,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> int:
    """Filter ``timestamp``: epoch seconds of a date (floored)."""
    return _since_epoch(value, timedelta(seconds=1), timeZone, existingFormat)


def timestamp_milli(
    value: Any,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> int:
    """Filter ``timestampMilli``: epoch milliseconds of a date."""
    return _since_epoch(value, timedelta(milliseconds=1), timeZone, existingFormat)


def timestamp_micro(
    value: Any,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> int:
    """Filter ``timestampMicro``: epoch microseconds of a date."""
    return _since_epoch(value, timedelta(microseconds=1), timeZone, existingFormat)


def timestamp_nano(
    value: Any,
    timeZone: str | None = None,
    existingFormat: str | None = None,
) -> int:
    """Filter ``timestampNano``: epoch nanoseconds of a date (microsecond precision)."""
    return _since_epoch(value, timedelta(microseconds=1), timeZone, existingFormat) * 1000


# --------------------------------------------------------------------------- data


@lru_cache(maxsize=256)
def _jq_program(program: str) -> Any:
    try:
        return jq.compile(program)
    except ValueError as exc:
        raise ValueError(f"jq: bad filter {program!r}: {str(exc).splitlines()[0]}") from None


def jq_filter(value: Any, program: str) -> list[Any]:
    """Filter ``jq(filter)``: every result of a jq program, as a list (Kestra's behaviour).

    Text input is parsed as JSON when it is JSON, else used as a JSON string. Use
    ``| first`` for the first result.
    """
    if isinstance(value, str):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(value)
    text = json.dumps(value, default=json_default)
    try:
        results: list[Any] = _jq_program(program).input_text(text).all()
    except ValueError as exc:
        raise ValueError(f"jq {program!r}: {exc}") from None
    return results


_INT_TYPES = frozenset({"INT", "INTEGER", "LONG", "SHORT", "BYTE", "BIGINTEGER"})
_FLOAT_TYPES = frozenset({"FLOAT", "DOUBLE", "BIGDECIMAL", "DECIMAL"})


def number(value: Any, type: str | None = None) -> int | float:
    """Filter ``number``: parse text as a number (an int when it is one, else a float).

    ``type`` forces the result: ``INT``/``LONG`` or ``FLOAT``/``DOUBLE``.
    """
    result: int | float
    if isinstance(value, bool):
        result = int(value)
    elif isinstance(value, int | float):
        result = value
    elif isinstance(value, Decimal):
        result = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            result = int(text)
        except ValueError:
            try:
                result = float(text)
            except ValueError:
                raise ValueError(f"'{value}' is not a number") from None
    else:
        raise TypeError(f"expected a number or text, got a {type_name(value)}")
    kind = (type or "").upper()
    if kind in _INT_TYPES:
        return int(result)
    if kind in _FLOAT_TYPES:
        return float(result)
    if kind:
        raise ValueError(f"number: unknown type '{type}' (use INT, LONG, FLOAT or DOUBLE)")
    return result


def type_name(value: Any) -> str:
    """The short name of a value's type, for error messages."""
    return "null" if value is None else type(value).__name__


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a map, got a {type_name(value)}")
    return value


def keys(value: Any) -> list[Any]:
    """Filter ``keys``: the keys of a map, as a list."""
    return list(_mapping(value, "keys"))


def values(value: Any) -> list[Any]:
    """Filter ``values``: the values of a map, as a list."""
    return list(_mapping(value, "values").values())


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return to_text(value).encode("utf-8")


def base64_encode(value: Any) -> str:
    """Filter ``base64encode``/``b64encode``: standard base64 of the UTF-8 text."""
    return base64.b64encode(_bytes(value)).decode("ascii")


def base64_decode(value: Any) -> str:
    """Filter ``base64decode``/``b64decode``: decode base64 to UTF-8 text."""
    try:
        raw = base64.b64decode(_bytes(value), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("base64 data is not UTF-8 text") from None


def slugify(value: Any) -> str:
    """Filter ``slugify``: ASCII lowercase words joined by ``-``.

    ``Héllo World!`` gives ``hello-world``.
    """
    text = unicodedata.normalize("NFKD", to_text(value)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    """Filter ``split(delimiter, limit)``: split text; ``limit`` caps the number of parts."""
    if limit is not None and limit > 0:
        return to_text(value).split(delimiter, limit - 1)
    return to_text(value).split(delimiter)


def starts_with(value: Any, prefix: str) -> bool:
    """Filter and test ``startsWith``."""
    return to_text(value).startswith(prefix)


def ends_with(value: Any, suffix: str) -> bool:
    """Filter and test ``endsWith``."""
    return to_text(value).endswith(suffix)


def substring_before(value: Any, separator: str) -> str:
    """Filter ``substringBefore``: text before the first separator (all of it if absent)."""
    return to_text(value).partition(separator)[0]


def substring_after(value: Any, separator: str) -> str:
    """Filter ``substringAfter``: text after the first separator (empty if absent)."""
    return to_text(value).partition(separator)[2]


def substring_before_last(value: Any, separator: str) -> str:
    """Filter ``substringBeforeLast``: text before the last separator (all of it if absent)."""
    text = to_text(value)
    head, found, _ = text.rpartition(separator)
    return head if found else text


def substring_after_last(value: Any, separator: str) -> str:
    """Filter ``substringAfterLast``: text after the last separator (empty if absent)."""
    _, found, tail = to_text(value).rpartition(separator)
    return tail if found else ""


def chunk(value: Any, size: int) -> list[list[Any]]:
    """Filter ``chunk(size)``: split a list into lists of ``size`` items."""
    if size < 1:
        raise ValueError("chunk: size must be at least 1")
    items = list(value)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _digest(name: str) -> Callable[[Any], str]:
    def digest(value: Any) -> str:
        return hashlib.new(name, _bytes(value), usedforsecurity=False).hexdigest()

    digest.__name__ = name
    digest.__doc__ = f"Filter ``{name}``: hex digest of the UTF-8 text."
    return digest


def is_empty(value: Any) -> bool:
    """Test ``empty``: null, or a string/list/map with no items."""
    if value is None:
        return True
    try:
        return len(value) == 0
    except TypeError:
        return False


FILTERS: dict[str, Callable[..., Any]] = {
    "json": to_json,
    "tojson": to_json,
    "toJson": to_json,
    "fromjson": from_json,
    "fromJson": from_json,
    "date": date_filter,
    "dateAdd": date_add,
    "timestamp": timestamp,
    "timestampMilli": timestamp_milli,
    "timestampMicro": timestamp_micro,
    "timestampNano": timestamp_nano,
    "jq": jq_filter,
    "number": number,
    "string": to_text,
    "keys": keys,
    "values": values,
    "base64encode": base64_encode,
    "base64decode": base64_decode,
    "b64encode": base64_encode,
    "b64decode": base64_decode,
    "slugify": slugify,
    "split": split,
    "startsWith": starts_with,
    "endsWith": ends_with,
    "substringBefore": substring_before,
    "substringAfter": substring_after,
    "substringBeforeLast": substring_before_last,
    "substringAfterLast": substring_after_last,
    "chunk": chunk,
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "sha512": _digest("sha512"),
}
"""Filters added to (or replacing) Jinja's built-in ones, under Kestra's names."""

TESTS: dict[str, Callable[..., bool]] = {
    "null": lambda value: value is None,
    "empty": is_empty,
    "startsWith": starts_with,
    "endsWith": ends_with,
}
"""Tests (``x is empty``) added to Jinja's built-in ones."""


# --------------------------------------------------------------------------- secrets


def secret_forms(secret: str) -> set[str]:
    """The forms a secret may take in text: itself, base64, JSON-escaped and URL-encoded."""
    if not secret:
        return set()
    raw = secret.encode("utf-8")
    forms = {
        secret,
        base64.b64encode(raw).decode("ascii"),
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
    }
    forms.discard("")
    return forms


def mask_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``secrets`` (longest first), or None when there are none."""
    ordered = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not ordered:
        return None
    return re.compile("|".join(re.escape(s) for s in ordered))


def mask_with(pattern: re.Pattern[str] | None, value: Any) -> Any:
    """Replace every match of ``pattern`` in the strings of ``value``, recursively.

    Mappings (keys and values), lists and tuples are rebuilt; other values are returned as is.
    """
    if pattern is None:
        return value
    if isinstance(value, str):
        return pattern.sub(MASK, value)
    if isinstance(value, Mapping):
        return {mask_with(pattern, k): mask_with(pattern, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_with(pattern, v) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_with(pattern, v) for v in value)
    return value


def mask_secrets(value: Any, secrets: Iterable[str]) -> Any:
    """Replace each secret (and its base64, JSON-escaped and URL-encoded forms) with ``******``.

    Works on text or, recursively, on mappings, lists and tuples of text.

    Args:
        value: Text or a structure holding text.
        secrets: The secret values to hide; empty strings are ignored.
    """
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    return mask_with(mask_pattern(forms), value)
