"""Statements: parameters bound the way asyncpg wants them, results read back.

``parameters`` are a list for ``$1, $2...`` or a mapping for ``:name`` placeholders, which
are rewritten to ``$n`` (quoted text, identifiers and comments are left alone). A value
of the wrong Python type for its placeholder (the text ``"42"`` for an ``integer``: what a
template renders) is converted to the type Postgres asks for.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal, TypeAlias
from uuid import UUID

import asyncpg

from flows import parse_duration

Fetch = Literal["NONE", "FETCH_ONE", "FETCH"]
if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    AnyConnection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

_POSITIONAL = re.compile(r"(?<![\w$])\$(\d+)")
_TRUE = frozenset({"t", "true", "y", "yes", "on", "1"})
_FALSE = frozenset({"f", "false", "n", "no", "off", "0"})


def fetch_of(fetch_type: str) -> Fetch:
    """How rows are fetched for a ``fetchType`` (STORE, which needs a file store, as FETCH)."""
    if fetch_type == "FETCH_ONE":
        return "FETCH_ONE"
    if fetch_type in ("FETCH", "STORE"):
        return "FETCH"
    return "NONE"


def positional_count(sql: str) -> int:
    """The highest ``$n`` placeholder in `sql` (0 when it has none)."""
    return max((int(n) for n in _POSITIONAL.findall(sql)), default=0)


def bind(sql: str, parameters: Mapping[str, Any] | Sequence[Any] | None) -> tuple[str, list[Any]]:
    """The statement and its positional arguments.

    Raises:
        ValueError: The statement names a ``:parameter`` the mapping does not have.
    """
    if parameters is None:
        return sql, []
    if isinstance(parameters, Mapping):
        return _rewrite_named(sql, parameters)
    return sql, list(parameters)


def named_placeholders(sql: str) -> list[str]:
    """The ``:name`` placeholders of `sql`, in order of first use."""
    return list(dict.fromkeys(name for name in _split_named(sql) if isinstance(name, _Name)))


class _Name(str):
    """A placeholder's name among the pieces of a statement."""

    __slots__ = ()


def _split_named(sql: str) -> list[str]:
    """`sql` cut into plain text and `_Name` pieces (quotes and comments left alone)."""
    pieces: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        skip = _skip_quoted(sql, i)
        if skip > i:
            i = skip
        elif sql[i] == ":" and _is_placeholder(sql, i):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            pieces.extend((sql[start:i], _Name(sql[i + 1 : j])))
            start = i = j
        else:
            i += 1
    pieces.append(sql[start:])
    return pieces


def _rewrite_named(sql: str, parameters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    order: dict[str, int] = {}
    out: list[str] = []
    for piece in _split_named(sql):
        if not isinstance(piece, _Name):
            out.append(piece)
            continue
        if piece not in parameters:
            raise ValueError(f"sql uses :{piece} but 'parameters' does not set it")
        out.append(f"${order.setdefault(str(piece), len(order) + 1)}")
    return "".join(out), [parameters[name] for name in order]


def _is_placeholder(sql: str, i: int) -> bool:
    """``:name``, not a ``::cast``, ``a[1:n]`` slice or ``x:y`` inside a word."""
    before = sql[i - 1] if i else " "
    after = sql[i + 1] if i + 1 < len(sql) else " "
    return (
        before != ":" and not before.isalnum() and before not in "_$"
        and (after.isalpha() or after == "_")
    )  # fmt: skip


def _skip_quoted(sql: str, i: int) -> int:
    """The end of the literal, quoted identifier or comment starting at `i` (else `i`)."""
    c = sql[i]
    if c == "'":
        escapes = i > 0 and sql[i - 1] in "eE" and (i < 2 or not sql[i - 2].isalnum())
        return _end_of_quote(sql, i, "'", backslash=escapes)
    if c == '"':
        return _end_of_quote(sql, i, '"', backslash=False)
    if sql.startswith("--", i):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end + 1
    if sql.startswith("/*", i):
        return _end_of_block_comment(sql, i)
    if c == "$" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")):
        j = i + 1
        while j < len(sql) and (sql[j].isalnum() or sql[j] == "_"):
            j += 1
        if j < len(sql) and sql[j] == "$" and not sql[i + 1 : j].isdigit():
            tag = sql[i : j + 1]
            end = sql.find(tag, j + 1)
            return len(sql) if end < 0 else end + len(tag)
    return i


def _end_of_quote(sql: str, i: int, quote: str, *, backslash: bool) -> int:
    j = i + 1
    while j < len(sql):
        if backslash and sql[j] == "\\":
            j += 2
            continue
        if sql[j] == quote:
            if sql.startswith(quote * 2, j):
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def _end_of_block_comment(sql: str, i: int) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(sql)


def affected_rows(status: str) -> int:
    """The row count of a command tag (``INSERT 0 5`` → 5, ``CREATE TABLE`` → 0)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


def is_argument_type_error(exc: BaseException) -> bool:
    """Whether asyncpg refused an argument's Python type before sending the statement."""
    return type(exc) is asyncpg.DataError and "invalid input for query argument" in str(exc)


async def execute(
    conn: AnyConnection, sql: str, args: list[Any], fetch: Fetch
) -> tuple[list[asyncpg.Record], int]:
    """Run one statement; its rows (all, the first, or none) and its row count.

    Arguments of the wrong Python type are converted to the placeholder's type (one
    extra round trip to learn the types, only when needed).
    """
    try:
        return await _run(conn, sql, args, fetch)
    except asyncpg.DataError as exc:
        if not args or not is_argument_type_error(exc):
            raise
    statement = await conn.prepare(sql)
    coerced = coerce_arguments(args, [p.name for p in statement.get_parameters()])
    if fetch == "FETCH_ONE":
        row = await statement.fetchrow(*coerced)
        return ([row] if row is not None else []), int(row is not None)
    rows = await statement.fetch(*coerced)
    if fetch == "FETCH":
        return rows, len(rows)
    return [], affected_rows(statement.get_statusmsg() or "")


async def _run(
    conn: AnyConnection, sql: str, args: list[Any], fetch: Fetch
) -> tuple[list[asyncpg.Record], int]:
    if fetch == "FETCH_ONE":
        row = await conn.fetchrow(sql, *args)
        return ([row] if row is not None else []), int(row is not None)
    if fetch == "FETCH":
        rows = await conn.fetch(sql, *args)
        return rows, len(rows)
    return [], affected_rows(await conn.execute(sql, *args))


def coerce_arguments(args: Sequence[Any], type_names: Sequence[str]) -> list[Any]:
    """Each argument converted, where it helps, to the Postgres type of its placeholder.

    Raises:
        ValueError: An argument cannot be read as its placeholder's type.
    """
    out = list(args)
    for index, (value, type_name) in enumerate(zip(args, type_names, strict=False)):
        try:
            out[index] = coerce(value, type_name)
        except (ValueError, TypeError, InvalidOperation) as exc:
            raise ValueError(
                f"parameter ${index + 1} ({value!r}) is not a {type_name}: {exc}"
            ) from None
    return out


def coerce(value: Any, type_name: str) -> Any:
    """`value` as the Python type asyncpg encodes ``type_name`` from, when it is not."""
    if value is None:
        return None
    if type_name.startswith("_") and isinstance(value, list | tuple):
        return [coerce(v, type_name[1:]) for v in value]
    if type_name in ("int2", "int4", "int8", "oid"):
        return value if isinstance(value, int) else int(str(value).strip())
    if type_name in ("float4", "float8"):
        return value if isinstance(value, float) else float(value)
    if type_name == "numeric":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if type_name == "bool":
        return value if isinstance(value, bool) else _bool(value)
    if type_name in ("text", "varchar", "bpchar", "name", "citext"):
        return value if isinstance(value, str) else _text(value)
    if not isinstance(value, str):
        return value
    return _from_text(value, type_name)


def _from_text(value: str, type_name: str) -> Any:
    text = value.strip()
    if type_name == "timestamptz":
        parsed = dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if type_name == "timestamp":
        return dt.datetime.fromisoformat(text)
    if type_name == "date":
        return dt.date.fromisoformat(text)
    if type_name in ("time", "timetz"):
        return dt.time.fromisoformat(text)
    if type_name == "interval":
        return parse_duration(text)
    if type_name == "uuid":
        return UUID(text)
    if type_name == "bytea":
        return base64.b64decode(text, validate=True)
    return value


def _bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)
