"""Pure codecs (no database): ISO-8601 durations, typed KV values, ids, JSON."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from actors._store import KVType, _rows, format_duration, new_id, parse_duration
from actors._store._json import dumps
from actors._store._kv import decode_value, encode_value
from flows import State, StoreError


def test_iso_durations() -> None:
    cases = {
        "PT0S": dt.timedelta(0),
        "PT1.5S": dt.timedelta(seconds=1.5),
        "P2DT3H": dt.timedelta(days=2, hours=3),
        "-PT5M": -dt.timedelta(minutes=5),
        "P1DT0.000001S": dt.timedelta(days=1, microseconds=1),
    }
    for text, value in cases.items():
        assert format_duration(value) == text
        assert parse_duration(text) == value
    assert parse_duration("P1W") == dt.timedelta(weeks=1)
    for bad in ("P", "PT", "1H", "P1Y", "PT1H2"):
        with pytest.raises(ValueError, match="ISO-8601"):
            parse_duration(bad)


def test_kv_values_encode_to_json_and_back() -> None:
    value = dt.datetime(2030, 1, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    kind, stored = encode_value(value)
    assert kind is KVType.DATETIME and stored == "2030-01-01T12:00:00-05:00"
    assert decode_value(kind, json.loads(dumps(stored))) == value
    assert encode_value("3.5", KVType.NUMBER) == (KVType.NUMBER, 3.5)
    with pytest.raises(StoreError):
        encode_value(dt.datetime(2030, 1, 1), KVType.DATE)


def test_json_makes_common_types_safe() -> None:
    text = dumps(
        {
            "at": dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            "day": dt.date(2030, 1, 2),
            "wait": dt.timedelta(minutes=5),
            "raw": b"\x00\x01",
            "state": State.RUNNING,
            "tags": ("a",),
        }
    )
    assert json.loads(text) == {
        "at": "2030-01-01T00:00:00+00:00",
        "day": "2030-01-02",
        "wait": "PT5M",
        "raw": "AAE=",
        "state": "RUNNING",
        "tags": ["a"],
    }
    with pytest.raises(TypeError):
        dumps({"x": object()})


def test_ids_are_22_url_safe_characters_and_unique() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 22 and i.isalnum() and i.isascii() for i in ids)


def test_a_state_history_written_as_text_is_the_json_of_its_entries() -> None:
    """The write path builds history text directly; it must equal the encoder's output."""
    at = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    entries = [
        (State.CREATED, at),
        (State.RUNNING, at.astimezone(dt.timezone(dt.timedelta(hours=2)))),
    ]
    entries.append((State.SUCCESS, at.replace(microsecond=0)))
    as_json = [{"state": str(state), "date": date.isoformat()} for state, date in entries]
    assert _rows.history_text(entries) == dumps(as_json)
    assert json.loads(_rows.history_text(entries)) == as_json
    assert _rows.history_text([]) == "[]"
