"""MQTT payloads to and from bytes, with Kestra's serde names (STRING, JSON, BYTES)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flows import SerdeError as SerdeError  # re-exported: the one serde error

from ._types import MqttSerde


def _no_constant(name: str) -> Any:
    raise SerdeError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
"""One decoder for every body: ``json.loads`` with an option builds a new one per call."""


def deserialize(payload: bytes, serde: MqttSerde) -> Any:
    """The payload as a JSON-safe value: text, a JSON value, or base64 text (BYTES).

    Raises:
        SerdeError: Not UTF-8 (STRING, JSON), or not JSON (JSON); ``NaN`` and
            ``Infinity`` are refused, as JSON itself does.
    """
    if serde is MqttSerde.BYTES:
        return base64.b64encode(payload).decode("ascii")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerdeError(f"payload is not UTF-8 text: {exc}") from exc
    if serde is MqttSerde.STRING:
        return text
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise SerdeError(f"payload is not JSON: {exc}") from exc


def serialize(value: Any, serde: MqttSerde) -> bytes:
    """The bytes to publish for `value` (Kestra's ``from``).

    JSON: any value as JSON (a string too: ``"text"`` with its quotes); STRING: the text
    as UTF-8; BYTES: the bytes of the base64 text.

    Raises:
        SerdeError: A value that does not fit `serde` (not text, bad base64, no JSON form).
    """
    if serde is MqttSerde.JSON:
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise SerdeError(f"'from' has no JSON form: {exc}") from exc
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise SerdeError(f"with serdeType {serde.value} 'from' must be text")
    if serde is MqttSerde.STRING:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SerdeError(f"'from' is not base64 text: {exc}") from exc
