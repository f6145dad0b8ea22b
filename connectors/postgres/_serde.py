"""Postgres values as JSON-safe data: rows, NOTIFY payloads and cursor positions."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import asyncpg

from flows import ConnectorError, format_duration

from ._types import PostgresSerde

CursorKind = Literal["int", "numeric", "timestamp", "date", "text"]

# Postgres type names (pg_type.typname) a cursor column may have, by how they travel.
_CURSOR_KINDS: dict[str, CursorKind] = {
    "int2": "int", "int4": "int", "int8": "int",
    "numeric": "numeric",
    "timestamp": "timestamp", "timestamptz": "timestamp",
    "date": "date",
    "text": "text", "varchar": "text", "bpchar": "text", "name": "text", "citext": "text",
}  # fmt: skip

SUPPORTED_CURSOR_TYPES = (
    "smallint/integer/bigint (serial, identity), numeric, timestamp, timestamptz, date, "
    "text/varchar"
)


def json_safe(value: Any) -> Any:
    """A Postgres value as plain JSON data.

    Numbers stay numbers (``numeric`` becomes an int when integral, else a float, so
    expressions can compare it; very precise decimals lose digits), non-finite floats
    and decimals become ``"NaN"``/``"Infinity"`` text, dates and times ISO-8601 text,
    intervals ISO-8601 durations, UUIDs text, ``bytea`` base64 text, arrays lists,
    composite values objects, ``json``/``jsonb`` the decoded data; anything else its text.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, asyncpg.Record | Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)


def _decimal(value: Decimal) -> Any:
    if not value.is_finite():
        return str(value)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def row_to_dict(record: asyncpg.Record) -> dict[str, Any]:
    """One result row as a JSON-safe mapping of column name to value."""
    return {key: json_safe(value) for key, value in record.items()}


def decode_payload(payload: str, deserializer: PostgresSerde) -> Any:
    """A NOTIFY payload as configured: the text itself, or the JSON it holds.

    Raises:
        ValueError: JSON was asked for and the payload is not JSON.
    """
    if deserializer is PostgresSerde.JSON:
        try:
            return json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
    return payload


def encode_json(value: Any) -> str:
    """Encoder of the ``json``/``jsonb`` codec: text is taken as JSON already."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


async def install_json_codecs(conn: asyncpg.Connection[Any]) -> None:
    """Make ``json``/``jsonb`` values arrive as Python data (asyncpg gives text otherwise)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=encode_json, decoder=json.loads, schema="pg_catalog"
        )


def cursor_kind(type_name: str, column: str) -> CursorKind:
    """How values of a cursor column of type ``type_name`` are kept in the saved cursor.

    Raises:
        ConnectorError: The column's type cannot be a cursor.
    """
    kind = _CURSOR_KINDS.get(type_name)
    if kind is None:
        raise ConnectorError(
            f"cursorColumn '{column}' has type {type_name}, which cannot be a cursor; "
            f"supported: {SUPPORTED_CURSOR_TYPES}"
        )
    return kind


def cursor_to_json(value: Any, kind: CursorKind) -> Any:
    """A cursor value as saved (an int, or text for numerics, times and text)."""
    if kind == "int":
        return int(value)
    if kind == "numeric":
        return str(value)
    if kind in ("timestamp", "date"):
        return str(value.isoformat())
    return str(value)


def cursor_from_json(saved: Any, kind: CursorKind) -> Any:
    """The query parameter for a saved cursor value.

    Raises:
        ValueError: The saved value does not fit the column's type.
    """
    if kind == "int":
        if isinstance(saved, bool) or not isinstance(saved, int | str):
            raise ValueError(f"{saved!r} is not an integer")
        return int(saved)
    if not isinstance(saved, str):
        raise ValueError(f"{saved!r} is not text")
    if kind == "numeric":
        return Decimal(saved)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(saved)
    if kind == "date":
        return dt.date.fromisoformat(saved)
    return saved
