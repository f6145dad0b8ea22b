"""Typed execution inputs: raw values (JSON, CLI ``--input k=v``, HTTP forms) to Python values.

Every declared input is converted by the converter of its type (one dispatch table,
`_CONVERTERS`), then checked against its ``min``/``max``. Strings are converted to the
declared type, so ``"12"`` is a valid INT and ``"true"`` a valid BOOLEAN. All bad inputs are
reported at once in one `InputError`, each entry naming the input.

What each type yields:

========================  ================================================================
type                      Python value
========================  ================================================================
STRING                    `str` (a number is turned into its text); ``validator`` must
                          fullmatch; ``min``/``max`` bound the length
INT                       `int` (``"12"`` and ``12.0`` are accepted, ``true`` and ``1.5``
                          are not); ``min``/``max``
FLOAT                     finite `float`; ``min``/``max``
BOOLEAN, BOOL             `bool` (``true``/``false``, any case, as text)
DATETIME                  timezone-aware `datetime` (naive values get UTC); ``min``/``max``
DATE, TIME                `date`, `time` (ISO 8601); ``min``/``max``
DURATION                  `timedelta` from an ISO-8601 duration (``PT30S``); ``min``/``max``
JSON                      the parsed value of a JSON text, or an already-parsed value
YAML                      the value of a YAML text (safe loader), or an already-parsed value
ENUM, SELECT              the matching declared value, or any scalar with
                          ``allowCustomValue``
MULTISELECT               a `list` of declared values (a list, or a JSON array as text)
ARRAY                     a `list`, each item converted as an input of type ``itemType``
                          that shares this input's validator, min/max and values
URI                       `str` with a scheme and a host or path
EMAIL                     `str` shaped like ``name@host.domain``
SECRET                    `SecretValue`: a `str` whose `repr` is masked
FILE                      `bytes` for content (bytes, or a ``data:`` URI), else a `str` URI:
                          ``kestra://`` and ``nsfile://`` URIs unchanged, a local path or
                          ``file://`` URI (which must name an existing file) as an absolute
                          ``file://`` URI
========================  ================================================================

A missing value (absent, ``None``, or ``""`` for any type but STRING and SECRET, as an empty
form field) takes the converted ``defaults``; without defaults it is an error when the input
is required and ``None`` otherwise. Keys that are not declared inputs are errors too.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlparse
from urllib.request import url2pathname

import yaml
from jinja2.exceptions import SecurityError

from ._durations import format_duration, parse_duration
from ._errors import InputError
from ._model import Flow, Input, InputType
from ._yaml_positions import safe_load

__all__ = [
    "SecretValue",
    "declaration_problems",
    "input_to_json",
    "inputs_from_json",
    "parse_inputs",
]

_MASK = "******"
_INT = re.compile(r"[+-]?\d+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_STORED_FILE_SCHEMES = ("kestra://", "nsfile://")
_DATA_PREFIX = "data:application/octet-stream;base64,"


class SecretValue(str):
    """The value of a SECRET input: a plain `str` everywhere, except that `repr` masks it.

    Logs and error messages that show values through `repr` (and f-strings with ``!r``)
    print ``'******'``; code that needs the secret uses it as the string it is.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(_MASK)

    def __getitem__(self, key: Any) -> str:
        _refuse_in_template("an item or slice")
        return str.__getitem__(self, key)

    def __iter__(self) -> Iterator[str]:
        _refuse_in_template("iterating")
        return str.__iter__(self)

    def reveal(self) -> str:
        """The secret as a plain `str` (not a `SecretValue`)."""
        return str(self)


def _refuse_in_template(what: str) -> None:
    """Templates use a secret as it is (see ``flows._secret_guard``); Python code may slice it."""
    if sys._getframe(2).f_code.co_filename == "<template>":
        raise SecurityError(
            f"{what} of a secret value is not allowed: secrets are used as they are "
            "(a transformed secret would escape masking)"
        )


@dataclass(frozen=True)
class _Ctx:
    """How values are read: fresh from a caller, or back from the execution store."""

    stored: bool = False


Converter = Callable[[Input, Any, _Ctx], Any]


# --------------------------------------------------------------------------- helpers


def _show(value: Any) -> str:
    """A short, safe rendering of a value for an error message."""
    if isinstance(value, SecretValue):
        return repr(_MASK)
    text = repr(input_to_json(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _expected(what: str, raw: Any) -> ValueError:
    return ValueError(f"expected {what}, got {_show(raw)}")


def _check_pattern(spec: Input, text: str) -> None:
    if spec.validator is not None and re.fullmatch(spec.validator, text) is None:
        raise ValueError(f"does not match validator '{spec.validator}'")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _each(items: Iterable[Any], convert: Callable[[Any], Any]) -> list[Any]:
    """Convert every item; raise one error naming every bad item by its index."""
    out: list[Any] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            out.append(convert(item))
        except ValueError as exc:
            problems.append(f"item {index}: {exc}")
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _as_list(raw: Any) -> list[Any]:
    if isinstance(raw, list | tuple):
        return list(raw)
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return parsed
    raise _expected("a list or a JSON array", raw)


def _parsed_value(raw: Any, what: str) -> Any:
    if isinstance(raw, dict | list | int | float):  # bool is an int
        return raw
    raise _expected(f"{what} text or an already-parsed value", raw)


# --------------------------------------------------------------------------- converters


def _string(spec: Input, raw: Any, ctx: _Ctx) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise _expected("a string", raw)
    text = raw if isinstance(raw, str) else str(raw)
    _check_pattern(spec, text)
    return text


def _secret(spec: Input, raw: Any, ctx: _Ctx) -> SecretValue:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__}")  # never echo it
    _check_pattern(spec, raw)
    return SecretValue(raw)


def _int(spec: Input, raw: Any, ctx: _Ctx) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and _INT.fullmatch(raw.strip()):
        return int(raw.strip())
    raise _expected("INT", raw)


def _float(spec: Input, raw: Any, ctx: _Ctx) -> float:
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value):
        raise _expected("a finite FLOAT", raw)
    return value


def _boolean(spec: Input, raw: Any, ctx: _Ctx) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
        return raw.strip().lower() == "true"
    raise _expected("BOOLEAN (true or false)", raw)


def _datetime(spec: Input, raw: Any, ctx: _Ctx) -> datetime:
    value = raw if isinstance(raw, datetime) else None
    if isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            value = None
    if value is None:
        raise _expected("an ISO-8601 DATETIME (e.g. 2024-05-01T10:00:00Z)", raw)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _date(spec: Input, raw: Any, ctx: _Ctx) -> date:
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise _expected("an ISO-8601 DATE (e.g. 2024-05-01)", raw)


def _time(spec: Input, raw: Any, ctx: _Ctx) -> time:
    if isinstance(raw, time):
        return raw
    if isinstance(raw, str):
        try:
            return time.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise _expected("an ISO-8601 TIME (e.g. 10:30:00)", raw)


def _duration(spec: Input, raw: Any, ctx: _Ctx) -> timedelta:
    if isinstance(raw, timedelta):
        return raw
    if isinstance(raw, str):
        return parse_duration(raw)
    raise _expected("an ISO-8601 DURATION (e.g. PT30S)", raw)


def _json(spec: Input, raw: Any, ctx: _Ctx) -> Any:
    if not isinstance(raw, str):
        return _parsed_value(raw, "JSON")
    if ctx.stored:  # a stored value is the parsed value, even when it is a string
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _yaml(spec: Input, raw: Any, ctx: _Ctx) -> Any:
    if not isinstance(raw, str):
        return _parsed_value(raw, "YAML")
    if ctx.stored:
        return raw
    try:
        return safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"invalid YAML: {problem}{where}") from None


def _choice(spec: Input, raw: Any, ctx: _Ctx) -> Any:
    values = spec.values or []
    for declared in values:
        if raw == declared and isinstance(raw, bool) == isinstance(declared, bool):
            return declared
        if isinstance(raw, str) and not isinstance(declared, str) and raw == _text(declared):
            return declared
    if spec.allow_custom_value and isinstance(raw, str | int | float | bool):
        return raw
    if not values:
        raise ValueError("declares no 'values' to choose from")
    raise ValueError(f"{_show(raw)} is not one of: {', '.join(_text(v) for v in values)}")


def _multiselect(spec: Input, raw: Any, ctx: _Ctx) -> list[Any]:
    return _each(_as_list(raw), lambda item: _choice(spec, item, ctx))


def _item_spec(spec: Input) -> Input:
    item_type = spec.item_type
    if item_type is None:
        raise ValueError("an ARRAY input needs an 'itemType'")
    if item_type in (InputType.ARRAY, InputType.MULTISELECT):
        raise ValueError(f"itemType {item_type.value} is not supported (use JSON)")
    return spec.model_copy(update={"type": item_type, "item_type": None})


def _array(spec: Input, raw: Any, ctx: _Ctx) -> list[Any]:
    item = _item_spec(spec)
    _bounds(item)  # a bad min/max is one error, not one per item
    return _each(_as_list(raw), lambda value: _convert(item, value, ctx))


def _uri(spec: Input, raw: Any, ctx: _Ctx) -> str:
    if isinstance(raw, str):
        try:
            parts = urlparse(raw.strip())
        except ValueError:
            parts = None
        if parts is not None and parts.scheme and (parts.netloc or parts.path):
            _check_pattern(spec, raw.strip())
            return raw.strip()
    raise _expected("a URI with a scheme (e.g. https://example.com/path)", raw)


def _email(spec: Input, raw: Any, ctx: _Ctx) -> str:
    if isinstance(raw, str) and _EMAIL.fullmatch(raw.strip()):
        _check_pattern(spec, raw.strip())
        return raw.strip()
    raise _expected("an EMAIL address", raw)


def _data_uri(text: str) -> bytes:
    header, sep, payload = text.partition(",")
    if not sep:
        raise ValueError("invalid data: URI (no ',')")
    if not header.endswith(";base64"):
        return unquote_to_bytes(payload)
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("invalid data: URI (bad base64)") from None


def _check_extension(spec: Input, text: str) -> None:
    allowed = spec.allow_file_extensions
    if not allowed:
        return
    name = urlparse(text).path if "://" in text else text
    suffix = Path(name).suffix.lower()
    if suffix not in {f".{ext.lower().lstrip('.')}" for ext in allowed}:
        raise ValueError(f"file extension '{suffix}' is not one of: {', '.join(allowed)}")


def _local_file(text: str) -> str:
    path = Path(url2pathname(urlparse(text).path)) if text.startswith("file://") else Path(text)
    if not path.is_file():
        raise ValueError(f"file {_show(text)} does not exist")
    return path.resolve().as_uri()


def _file(spec: Input, raw: Any, ctx: _Ctx) -> str | bytes:
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, os.PathLike):
        raw = os.fspath(raw)
    if not isinstance(raw, str) or not raw:
        raise _expected("a file path, a file://, kestra:// or nsfile:// URI, or bytes", raw)
    if raw.startswith("data:"):
        return _data_uri(raw)
    _check_extension(spec, raw)
    if raw.startswith(_STORED_FILE_SCHEMES) or (ctx.stored and raw.startswith("file://")):
        return raw
    return _local_file(raw)


_CONVERTERS: dict[InputType, Converter] = {
    InputType.STRING: _string,
    InputType.INT: _int,
    InputType.FLOAT: _float,
    InputType.BOOLEAN: _boolean,
    InputType.BOOL: _boolean,
    InputType.DATETIME: _datetime,
    InputType.DATE: _date,
    InputType.TIME: _time,
    InputType.DURATION: _duration,
    InputType.JSON: _json,
    InputType.YAML: _yaml,
    InputType.ENUM: _choice,
    InputType.SELECT: _choice,
    InputType.MULTISELECT: _multiselect,
    InputType.ARRAY: _array,
    InputType.URI: _uri,
    InputType.EMAIL: _email,
    InputType.SECRET: _secret,
    InputType.FILE: _file,
}

_LENGTH_BOUNDED = frozenset({InputType.STRING, InputType.SECRET})
"""Types whose ``min``/``max`` bound the length of the text."""
_VALUE_BOUNDED = frozenset(
    {
        InputType.INT,
        InputType.FLOAT,
        InputType.DATETIME,
        InputType.DATE,
        InputType.TIME,
        InputType.DURATION,
    }
)
"""Types whose ``min``/``max`` bound the value; bounds are converted like a value."""
_PATTERN_TYPES = frozenset({InputType.STRING, InputType.SECRET, InputType.URI, InputType.EMAIL})
"""Types that apply ``validator``."""


# --------------------------------------------------------------------------- bounds


def _bound(spec: Input, name: str, raw: Any) -> Any:
    if raw is None:
        return None
    try:
        if spec.type in _LENGTH_BOUNDED:
            length = _int(spec, raw, _Ctx())
            if length < 0:
                raise ValueError("a length cannot be negative")
            return length
        return _CONVERTERS[spec.type](spec, raw, _Ctx())
    except ValueError as exc:
        raise ValueError(f"invalid {name} in the declaration: {exc}") from None


def _bounds(spec: Input) -> tuple[Any, Any]:
    """The converted ``(min, max)`` of an input; ARRAY bounds apply to each item."""
    if spec.min is None and spec.max is None:
        return None, None
    if spec.type is InputType.ARRAY:
        return None, None
    if spec.type not in _LENGTH_BOUNDED | _VALUE_BOUNDED:
        raise ValueError(f"min/max are not supported for {spec.type.value} inputs")
    return _bound(spec, "min", spec.min), _bound(spec, "max", spec.max)


def _check_bounds(spec: Input, value: Any) -> None:
    low, high = _bounds(spec)
    if low is None and high is None:
        return
    by_length = spec.type in _LENGTH_BOUNDED
    measure = len(value) if by_length else value
    shown = f"length {measure}" if by_length else _show(value)
    try:
        if low is not None and measure < low:
            raise ValueError(f"{shown} is less than min {_show(low)}")
        if high is not None and measure > high:
            raise ValueError(f"{shown} is greater than max {_show(high)}")
    except TypeError:
        raise ValueError(
            f"{shown} cannot be compared with min/max {_show(low)}/{_show(high)}"
        ) from None


def _convert(spec: Input, raw: Any, ctx: _Ctx) -> Any:
    try:
        value = _CONVERTERS[spec.type](spec, raw, ctx)
    except OverflowError:
        raise ValueError(f"{_show(raw)} is out of range for {spec.type.value}") from None
    _check_bounds(spec, value)
    return value


# --------------------------------------------------------------------------- public API


def _is_missing(spec: Input, raw: Any) -> bool:
    if raw is None:
        return True
    return isinstance(raw, str) and raw == "" and spec.type not in _LENGTH_BOUNDED


def _one(spec: Input, raw: Any, ctx: _Ctx) -> Any:
    if not _is_missing(spec, raw):
        return _convert(spec, raw, ctx)
    if spec.defaults is not None:
        try:
            return _convert(spec, spec.defaults, ctx)
        except ValueError as exc:
            raise ValueError(f"invalid default: {exc}") from None
    if spec.required:
        raise ValueError("required")
    return None


def _declared(flow_or_inputs: Flow | Sequence[Input]) -> Sequence[Input]:
    return flow_or_inputs.inputs if isinstance(flow_or_inputs, Flow) else flow_or_inputs


def _parse(
    flow_or_inputs: Flow | Sequence[Input], raw: Mapping[str, Any], ctx: _Ctx
) -> dict[str, Any]:
    inputs = _declared(flow_or_inputs)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in inputs:
        try:
            values[spec.id] = _one(spec, raw.get(spec.id), ctx)
        except ValueError as exc:
            errors[spec.id] = str(exc)
    ids = [spec.id for spec in inputs]
    known = set(ids)
    for key in raw:
        if key not in known:
            errors[key] = f"not a declared input; declared: {', '.join(ids) or '(none)'}"
    if errors:
        raise InputError(errors)
    return values


def parse_inputs(flow_or_inputs: Flow | Sequence[Input], raw: Mapping[str, Any]) -> dict[str, Any]:
    """Convert raw execution inputs to typed values, per the flow's declared inputs.

    Raw values may be typed (from JSON) or text (from ``--input k=v`` or a form): text is
    converted to the declared type. See the module docstring for what each type yields.

    Args:
        flow_or_inputs: The flow, or its list of declared inputs.
        raw: The values given for this execution, keyed by input id.

    Returns:
        A value for every declared input, keyed by id, in declaration order; ``None`` for an
        optional input without a value or default.

    Raises:
        InputError: With one entry per bad input (missing, wrong type, out of bounds, not a
            declared input, bad default), all of them at once.
    """
    return _parse(flow_or_inputs, raw, _Ctx())


def inputs_from_json(
    flow_or_inputs: Flow | Sequence[Input], stored: Mapping[str, Any]
) -> dict[str, Any]:
    """Rebuild typed inputs from the JSON form kept in the store (by `input_to_json`).

    Unlike `parse_inputs`, a string stored for a JSON or YAML input is the value itself (not
    text to parse again), and a stored ``file://`` URI is not required to exist any more.

    Args:
        flow_or_inputs: The flow revision the inputs were recorded with, or its inputs.
        stored: The stored values, keyed by input id.

    Returns:
        The typed values, as `parse_inputs` returned them.

    Raises:
        InputError: When the stored values no longer fit the declaration.
    """
    return _parse(flow_or_inputs, stored, _Ctx(stored=True))


def input_to_json(value: Any) -> Any:
    """Make a typed input value JSON-safe for storage; `inputs_from_json` reverses it.

    Date-times, dates and times become ISO-8601 text, durations ISO-8601 durations, a
    `SecretValue` its plain text (masking is for display, the store keeps the value) and
    bytes a base64 ``data:`` URI. Mappings and sequences are converted item by item.

    Args:
        value: A value returned by `parse_inputs`, or a mapping/list of them.

    Returns:
        A value made of dicts, lists, strings, numbers, booleans and None.
    """
    if isinstance(value, str):
        return str(value)  # a plain str, also for a SecretValue
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _DATA_PREFIX + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): input_to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [input_to_json(v) for v in value]
    return value


def _type_problems(spec: Input) -> list[str]:
    problems: list[str] = []
    if spec.item_type is not None and spec.type is not InputType.ARRAY:
        problems.append("itemType only applies to ARRAY inputs")
    if spec.validator is not None and spec.type not in _PATTERN_TYPES:
        problems.append(
            f"validator does not apply to {spec.type.value} inputs "
            f"(only {', '.join(sorted(t.value for t in _PATTERN_TYPES))})"
        )
    if spec.type in (InputType.ENUM, InputType.SELECT, InputType.MULTISELECT) and not spec.values:
        problems.append(f"a {spec.type.value} input needs a non-empty 'values' list")
    return problems


def _bound_problems(spec: Input) -> list[str]:
    try:
        low, high = _bounds(spec)
    except ValueError as exc:
        return [str(exc)]
    if low is not None and high is not None:
        try:
            if low > high:
                return ["min is greater than max"]
        except TypeError:
            return ["min and max cannot be compared"]
    return []


def declaration_problems(spec: Input) -> list[str]:
    """What is wrong with an input's declaration, for refusing a flow at load time.

    Checks that ``min``/``max``, ``validator``, ``itemType`` and ``values`` fit the type and
    that ``defaults`` converts (FILE defaults are not checked: the file may live elsewhere).
    `parse_inputs` reports the problems that affect a value when it meets them.

    Args:
        spec: One declared input.

    Returns:
        One message per problem; empty when the declaration is sound.
    """
    check = spec
    if spec.type is InputType.ARRAY:
        try:
            check = _item_spec(spec)
        except ValueError as exc:
            return [str(exc)]
    problems = _type_problems(check) + _bound_problems(check)
    if check is not spec:
        problems = [f"itemType {check.type.value}: {p}" for p in problems]
    if not problems and spec.defaults is not None and check.type is not InputType.FILE:
        try:
            _convert(spec, spec.defaults, _Ctx())
        except ValueError as exc:
            problems.append(f"invalid default: {exc}")
    return problems
