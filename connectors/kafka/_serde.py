"""Kafka keys and values to and from bytes, with Kestra's serde names.

Numbers use the big-endian layouts of Kafka's own serializers (``IntegerSerializer``,
``LongSerializer``, ...); ``UUID`` is the UUID's text, as Kafka's ``UUIDSerializer``
writes it; ``BYTES``/``BYTE_ARRAY``/``BYTE_BUFFER`` are base64 text on the Kestrel side;
a null (absent) key or value stays null in both directions.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import uuid
from typing import Any

from flows import SerdeError as SerdeError  # re-exported: the one serde error

from ._types import KafkaSerde

_NUMBERS: dict[KafkaSerde, struct.Struct] = {
    KafkaSerde.SHORT: struct.Struct(">h"),
    KafkaSerde.INTEGER: struct.Struct(">i"),
    KafkaSerde.LONG: struct.Struct(">q"),
    KafkaSerde.FLOAT: struct.Struct(">f"),
    KafkaSerde.DOUBLE: struct.Struct(">d"),
}
_BINARY = frozenset({KafkaSerde.BYTES, KafkaSerde.BYTE_ARRAY, KafkaSerde.BYTE_BUFFER})
_FLOATS = frozenset({KafkaSerde.FLOAT, KafkaSerde.DOUBLE})


def deserialize(data: bytes | None, serde: KafkaSerde) -> Any:
    """Turn a record's key or value into a JSON-safe value.

    Args:
        data: The bytes as read (None for a null key or value).
        serde: The configured deserializer.

    Returns:
        Text, a JSON value, base64 text, an int, a float (non-finite ones as the strings
        ``NaN``, ``Infinity``, ``-Infinity``), UUID text, or None.

    Raises:
        SerdeError: The bytes do not match `serde` (bad UTF-8, bad JSON, wrong size...).
    """
    if data is None or serde is KafkaSerde.VOID:
        return None
    if serde in _BINARY:
        return base64.b64encode(data).decode("ascii")
    if serde in _NUMBERS:
        return _unpack(data, serde)
    text = _utf8(data)
    if serde is KafkaSerde.JSON:
        try:
            return _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise SerdeError(f"not valid JSON: {exc}") from None
    if serde is KafkaSerde.UUID:
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise SerdeError(f"not a UUID: {text[:80]!r}") from None
    return text


def _no_constant(name: str) -> Any:
    """JSON has no NaN or Infinity (Python's parser accepts them; stores do not)."""
    raise SerdeError(f"not valid JSON: {name} is not a JSON value")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
"""One decoder for every body: ``json.loads`` with an option builds a new one per call."""


def _utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerdeError(f"not valid UTF-8 text: {exc}") from None


def _unpack(data: bytes, serde: KafkaSerde) -> int | float | str:
    layout = _NUMBERS[serde]
    if len(data) != layout.size:
        raise SerdeError(f"a {serde.value} is {layout.size} bytes, this payload has {len(data)}")
    value: int | float = layout.unpack(data)[0]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def serialize(value: Any, serde: KafkaSerde) -> bytes | None:
    """Turn a key or value given in a flow into the bytes to produce.

    ``STRING`` writes text as is and anything else as JSON; ``JSON`` writes a string that
    already holds valid JSON as is (a rendered ``{{ x | tojson }}``) and encodes anything
    else; ``BYTES`` takes base64 text (or bytes); numbers take numbers or numeric text.

    Args:
        value: The rendered value (None for a null key or a tombstone).
        serde: The configured serializer.

    Returns:
        The bytes, or None for a null value (and always for ``VOID``).

    Raises:
        SerdeError: The value does not fit `serde` (bad base64, out of range, not a number).
    """
    if value is None or serde is KafkaSerde.VOID:
        return None
    if serde in _BINARY:
        return _from_base64(value)
    if serde in _NUMBERS:
        return _pack(value, serde)
    if serde is KafkaSerde.UUID:
        try:
            return str(uuid.UUID(str(value))).encode()
        except ValueError:
            raise SerdeError(f"not a UUID: {str(value)[:80]!r}") from None
    if serde is KafkaSerde.JSON:
        if isinstance(value, str) and _is_json(value):
            return value.encode()
        return _json_bytes(value)
    return value.encode() if isinstance(value, str) else _json_bytes(value)


def _is_json(text: str) -> bool:
    try:
        _DECODER.decode(text)
    except (json.JSONDecodeError, SerdeError):
        return False
    return True


def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise SerdeError(f"cannot be written as JSON: {exc}") from None


def _from_base64(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise SerdeError("BYTES values must be base64 text") from None


def _pack(value: Any, serde: KafkaSerde) -> bytes:
    layout = _NUMBERS[serde]
    try:
        number: int | float
        if serde in _FLOATS:
            number = float(value)
        elif isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        else:
            number = int(value)
        return layout.pack(number)
    except (TypeError, ValueError, OverflowError, struct.error):
        raise SerdeError(f"{value!r} is not a valid {serde.value}") from None
