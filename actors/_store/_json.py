"""JSON as the store writes it: one encoder for every jsonb column, safe for common types.

Datetimes, dates and times become ISO-8601 strings, durations ISO-8601 durations
(``PT1H30M``), bytes base64, sets lists, enums their value. Reading gives back plain JSON
(strings stay strings); typed values that must round-trip exactly go through the KV codec.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import uuid
from decimal import Decimal
from typing import Any

import asyncpg

from flows import format_duration


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"), ensure_ascii=False)
# One encoder for the process: `json.dumps` with options builds a new one on every call.


def dumps(value: Any) -> str:
    """Serialize ``value`` to compact JSON text, converting the types listed above."""
    return _ENCODER.encode(value)


def loads(text: str) -> Any:
    """Parse JSON text."""
    return json.loads(text)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Pool ``init`` hook: jsonb and json columns go through `dumps`/`loads`."""
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name, encoder=dumps, decoder=loads, schema="pg_catalog", format="text"
        )
