"""Unit tests of typed execution inputs (flows._inputs)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from flows._errors import InputError
from flows._inputs import (
    SecretValue,
    declaration_problems,
    input_to_json,
    inputs_from_json,
    parse_inputs,
)
from flows._model import Flow, Input


def make_flow(*inputs: dict[str, Any]) -> Flow:
    return Flow.model_validate(
        {
            "id": "f",
            "namespace": "n",
            "inputs": list(inputs),
            "tasks": [{"id": "t", "type": "core.Log", "message": "x"}],
        }
    )


def one(decl: dict[str, Any], raw: Any) -> Any:
    """Parse a single input `x` declared by `decl` with value `raw`."""
    return parse_inputs(make_flow({"id": "x", **decl}), {"x": raw})["x"]


def error_of(decl: dict[str, Any], raw: Any) -> str:
    with pytest.raises(InputError) as info:
        one(decl, raw)
    assert list(info.value.errors) == ["x"]
    return info.value.errors["x"]


# --------------------------------------------------------------------------- STRING


def test_string_happy_and_number_text() -> None:
    assert one({"type": "STRING"}, "hello") == "hello"
    assert one({"type": "STRING"}, 12) == "12"
    assert one({}, "default type is STRING") == "default type is STRING"


def test_string_refuses_non_text() -> None:
    assert "expected a string" in error_of({"type": "STRING"}, ["a"])
    assert "expected a string" in error_of({"type": "STRING"}, True)


def test_string_validator_fullmatch() -> None:
    decl = {"type": "STRING", "validator": "[a-z]+"}
    assert one(decl, "abc") == "abc"
    assert "does not match validator '[a-z]+'" in error_of(decl, "abc1")


def test_string_min_max_are_lengths() -> None:
    decl = {"type": "STRING", "min": 2, "max": 4}
    assert one(decl, "abc") == "abc"
    assert "length 1 is less than min 2" in error_of(decl, "a")
    assert "length 5 is greater than max 4" in error_of(decl, "abcde")


def test_empty_string_is_a_string_value() -> None:
    assert one({"type": "STRING"}, "") == ""


# --------------------------------------------------------------------------- INT / FLOAT


@pytest.mark.parametrize(("raw", "expected"), [(12, 12), ("12", 12), (" -3 ", -3), (4.0, 4)])
def test_int_happy(raw: Any, expected: int) -> None:
    value = one({"type": "INT"}, raw)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("raw", ["1.5", 1.5, "abc", True, "true", [1]])
def test_int_refused(raw: Any) -> None:
    assert "expected INT" in error_of({"type": "INT"}, raw)


def test_int_min_max() -> None:
    decl = {"type": "INT", "min": 1, "max": 10}
    assert one(decl, "10") == 10
    assert "0 is less than min 1" in error_of(decl, "0")
    assert "11 is greater than max 10" in error_of(decl, 11)


@pytest.mark.parametrize(("raw", "expected"), [(1.5, 1.5), ("2.5", 2.5), (3, 3.0), ("1e3", 1000.0)])
def test_float_happy(raw: Any, expected: float) -> None:
    value = one({"type": "FLOAT"}, raw)
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize("raw", ["x", False, "nan", "inf", {"a": 1}])
def test_float_refused(raw: Any) -> None:
    assert "expected a finite FLOAT" in error_of({"type": "FLOAT"}, raw)


def test_float_min_max() -> None:
    decl = {"type": "FLOAT", "min": 0.5, "max": 1}
    assert one(decl, "0.75") == 0.75
    assert "is less than min 0.5" in error_of(decl, 0.1)
    assert "is greater than max 1.0" in error_of(decl, "1.01")


def test_float_overflow_is_an_error() -> None:
    assert "out of range" in error_of({"type": "FLOAT"}, 10**400)


# --------------------------------------------------------------------------- BOOLEAN


@pytest.mark.parametrize("kind", ["BOOLEAN", "BOOL"])
@pytest.mark.parametrize(
    ("raw", "expected"), [(True, True), (False, False), ("true", True), ("FALSE", False)]
)
def test_boolean_happy(kind: str, raw: Any, expected: bool) -> None:
    assert one({"type": kind}, raw) is expected


@pytest.mark.parametrize("raw", ["yes", 1, 0, "1"])
def test_boolean_refused(raw: Any) -> None:
    assert "expected BOOLEAN" in error_of({"type": "BOOLEAN"}, raw)


# --------------------------------------------------------------------------- temporal


def test_datetime_aware_and_naive_gets_utc() -> None:
    aware = one({"type": "DATETIME"}, "2024-05-01T10:00:00+02:00")
    assert aware == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert aware.utcoffset() == timedelta(hours=2)
    assert one({"type": "DATETIME"}, "2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    naive = one({"type": "DATETIME"}, "2024-05-01T10:00:00")
    assert naive.tzinfo is UTC
    given = one({"type": "DATETIME"}, datetime(2024, 1, 1))
    assert given == datetime(2024, 1, 1, tzinfo=UTC)


def test_datetime_refused_and_bounds() -> None:
    assert "expected an ISO-8601 DATETIME" in error_of({"type": "DATETIME"}, "yesterday")
    assert "expected an ISO-8601 DATETIME" in error_of({"type": "DATETIME"}, 1714557600)
    decl = {"type": "DATETIME", "min": "2024-01-01T00:00:00Z", "max": "2024-12-31T00:00:00"}
    assert one(decl, "2024-06-01T00:00:00+05:00").year == 2024
    assert "is less than min '2024-01-01T00:00:00+00:00'" in error_of(decl, "2023-12-31T23:00Z")
    assert "is greater than max" in error_of(decl, "2025-01-01T00:00:00Z")


def test_date() -> None:
    assert one({"type": "DATE"}, "2024-05-01") == date(2024, 5, 1)
    assert one({"type": "DATE"}, date(2024, 5, 1)) == date(2024, 5, 1)
    assert "expected an ISO-8601 DATE" in error_of({"type": "DATE"}, "2024-13-01")
    assert "expected an ISO-8601 DATE" in error_of({"type": "DATE"}, datetime(2024, 5, 1))
    decl = {"type": "DATE", "min": "2024-01-01"}
    assert "is less than min '2024-01-01'" in error_of(decl, "2023-12-31")


def test_time() -> None:
    assert one({"type": "TIME"}, "10:30") == time(10, 30)
    assert one({"type": "TIME"}, "10:30:15.5") == time(10, 30, 15, 500000)
    assert "expected an ISO-8601 TIME" in error_of({"type": "TIME"}, "25:00")
    decl = {"type": "TIME", "min": "08:00", "max": "18:00"}
    assert one(decl, "12:00") == time(12)
    assert "is greater than max '18:00:00'" in error_of(decl, "19:00")


def test_time_aware_against_naive_bound_is_a_clear_error() -> None:
    decl = {"type": "TIME", "min": "08:00"}
    assert "cannot be compared" in error_of(decl, "10:00+02:00")


def test_duration() -> None:
    assert one({"type": "DURATION"}, "PT1M30S") == timedelta(seconds=90)
    assert one({"type": "DURATION"}, timedelta(days=1)) == timedelta(days=1)
    assert "not an ISO-8601 duration" in error_of({"type": "DURATION"}, "90s")
    assert "expected an ISO-8601 DURATION" in error_of({"type": "DURATION"}, 90)
    decl = {"type": "DURATION", "min": "PT1S", "max": "PT1H"}
    assert one(decl, "PT5M") == timedelta(minutes=5)
    assert "'PT0.5S' is less than min 'PT1S'" in error_of(decl, "PT0.5S")
    assert "is greater than max 'PT1H'" in error_of(decl, "P1D")


# --------------------------------------------------------------------------- JSON / YAML


def test_json() -> None:
    assert one({"type": "JSON"}, '{"a": [1, 2]}') == {"a": [1, 2]}
    assert one({"type": "JSON"}, '"text"') == "text"
    assert one({"type": "JSON"}, {"already": "parsed"}) == {"already": "parsed"}
    assert one({"type": "JSON"}, [1, 2]) == [1, 2]
    message = error_of({"type": "JSON"}, "{not json")
    assert message.startswith("invalid JSON:")
    assert "line 1 column 2" in message


def test_yaml() -> None:
    assert one({"type": "YAML"}, "a: 1\nb: [x, y]\n") == {"a": 1, "b": ["x", "y"]}
    assert one({"type": "YAML"}, {"k": "v"}) == {"k": "v"}
    assert error_of({"type": "YAML"}, "a: [1, 2").startswith("invalid YAML:")


def test_yaml_is_safe() -> None:
    assert error_of({"type": "YAML"}, "!!python/object/apply:os.system ['true']").startswith(
        "invalid YAML:"
    )


# --------------------------------------------------------------------------- choices


@pytest.mark.parametrize("kind", ["ENUM", "SELECT"])
def test_enum(kind: str) -> None:
    decl = {"type": kind, "values": ["low", "high"]}
    assert one(decl, "high") == "high"
    assert "'medium' is not one of: low, high" in error_of(decl, "medium")


def test_enum_text_matches_non_string_value() -> None:
    decl = {"type": "ENUM", "values": [1, 2, True]}
    assert one(decl, "2") == 2
    assert one(decl, "true") is True
    assert "is not one of" in error_of({"type": "ENUM", "values": [1]}, True)


def test_enum_allow_custom_value() -> None:
    decl = {"type": "SELECT", "values": ["a"], "allowCustomValue": True}
    assert one(decl, "zzz") == "zzz"
    assert "is not one of" in error_of(decl, {"no": "dict"})


def test_multiselect() -> None:
    decl = {"type": "MULTISELECT", "values": ["a", "b", "c"]}
    assert one(decl, ["a", "c"]) == ["a", "c"]
    assert one(decl, '["b"]') == ["b"]
    message = error_of(decl, ["a", "x", "b", "y"])
    assert message == "item 1: 'x' is not one of: a, b, c; item 3: 'y' is not one of: a, b, c"
    assert "expected a list or a JSON array" in error_of(decl, "a")
    assert one({**decl, "allowCustomValue": True}, ["a", "q"]) == ["a", "q"]


# --------------------------------------------------------------------------- ARRAY


def test_array_of_int_converts_each_item() -> None:
    decl = {"type": "ARRAY", "itemType": "INT"}
    assert one(decl, [1, "2", 3]) == [1, 2, 3]
    assert one(decl, '[4, "5"]') == [4, 5]
    assert one(decl, []) == []


def test_array_item_errors_name_the_index() -> None:
    decl = {"type": "ARRAY", "itemType": "INT"}
    message = error_of(decl, [1, 2, "x", 4, "1.5"])
    assert message.startswith("item 2: expected INT")
    assert "item 4: expected INT" in message
    with pytest.raises(InputError) as info:
        parse_inputs(make_flow({"id": "ids", **decl}), {"ids": [1, 2, "x"]})
    assert str(info.value) == "input 'ids': item 2: expected INT, got 'x'"


def test_array_not_a_list() -> None:
    decl = {"type": "ARRAY", "itemType": "STRING"}
    assert "expected a list or a JSON array" in error_of(decl, "a,b")
    assert "expected a list or a JSON array" in error_of(decl, '{"a": 1}')


def test_array_items_share_bounds_validator_and_values() -> None:
    assert "item 1: 11 is greater than max 10" in error_of(
        {"type": "ARRAY", "itemType": "INT", "max": 10}, [1, 11]
    )
    assert "item 0: does not match validator" in error_of(
        {"type": "ARRAY", "itemType": "STRING", "validator": "[a-z]+"}, ["A1"]
    )
    decl = {"type": "ARRAY", "itemType": "ENUM", "values": ["a", "b"]}
    assert one(decl, ["a"]) == ["a"]
    assert "item 0: 'z' is not one of: a, b" in error_of(decl, ["z"])


def test_array_of_temporal_items() -> None:
    decl = {"type": "ARRAY", "itemType": "DURATION"}
    assert one(decl, ["PT1S", "PT2M"]) == [timedelta(seconds=1), timedelta(minutes=2)]
    decl = {"type": "ARRAY", "itemType": "DATE"}
    assert one(decl, '["2024-01-02"]') == [date(2024, 1, 2)]


def test_array_of_unsupported_item_type_is_one_error() -> None:
    message = error_of({"type": "ARRAY", "itemType": "ARRAY"}, [[1]])
    assert "itemType ARRAY is not supported" in message
    message = error_of({"type": "ARRAY", "itemType": "BOOLEAN", "min": 1}, [True, False])
    assert message == "min/max are not supported for BOOLEAN inputs"


# --------------------------------------------------------------------------- URI / EMAIL


@pytest.mark.parametrize(
    "raw", ["https://example.com/x?y=1", "s3://bucket/key", "mailto:a@b.c", "file:///tmp/x"]
)
def test_uri_happy(raw: str) -> None:
    assert one({"type": "URI"}, raw) == raw


@pytest.mark.parametrize("raw", ["not a uri", "/just/a/path", "https://", 42])
def test_uri_refused(raw: Any) -> None:
    assert "expected a URI with a scheme" in error_of({"type": "URI"}, raw)


def test_email() -> None:
    assert one({"type": "EMAIL"}, "ops@example.com") == "ops@example.com"
    for bad in ["ops", "ops@example", "a b@example.com", "@example.com", "a@.com"]:
        assert "expected an EMAIL address" in error_of({"type": "EMAIL"}, bad)
    decl = {"type": "EMAIL", "validator": r".*@example\.com"}
    assert "does not match validator" in error_of(decl, "ops@other.org")


# --------------------------------------------------------------------------- SECRET


def test_secret_is_masked_in_repr_but_usable() -> None:
    value = one({"type": "SECRET"}, "hunter2")
    assert isinstance(value, SecretValue)
    assert isinstance(value, str)
    assert value == "hunter2"
    assert repr(value) == "'******'"
    assert "hunter2" not in repr({"pw": value})
    assert f"{value}" == "hunter2"
    assert value.reveal() == "hunter2"
    assert type(value.reveal()) is str


def test_secret_errors_never_echo_the_value() -> None:
    message = error_of({"type": "SECRET", "validator": "[0-9]+"}, "hunter2")
    assert "hunter2" not in message
    message = error_of({"type": "SECRET", "min": 10}, "hunter2")
    assert message == "length 7 is less than min 10"
    assert "expected a string, got int" in error_of({"type": "SECRET"}, 1234)


# --------------------------------------------------------------------------- FILE


def test_file_local_path_and_file_uri(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b\n")
    assert one({"type": "FILE"}, str(path)) == path.resolve().as_uri()
    assert one({"type": "FILE"}, path) == path.resolve().as_uri()
    assert one({"type": "FILE"}, path.as_uri()) == path.resolve().as_uri()


def test_file_missing_local_path(tmp_path: Path) -> None:
    assert "does not exist" in error_of({"type": "FILE"}, str(tmp_path / "nope.csv"))
    assert "does not exist" in error_of({"type": "FILE"}, (tmp_path / "nope").as_uri())
    assert "does not exist" in error_of({"type": "FILE"}, str(tmp_path))  # a directory


def test_file_storage_uris_and_bytes() -> None:
    assert one({"type": "FILE"}, "kestra:///ns/f/file.txt") == "kestra:///ns/f/file.txt"
    assert one({"type": "FILE"}, "nsfile:///scripts/a.py") == "nsfile:///scripts/a.py"
    assert one({"type": "FILE"}, b"\x00\x01") == b"\x00\x01"
    assert one({"type": "FILE"}, "data:application/octet-stream;base64,AAE=") == b"\x00\x01"
    assert one({"type": "FILE"}, "data:,hi%20there") == b"hi there"
    assert "bad base64" in error_of({"type": "FILE"}, "data:;base64,!!!")
    assert "expected a file path" in error_of({"type": "FILE"}, 12)


def test_file_allowed_extensions(tmp_path: Path) -> None:
    decl = {"type": "FILE", "allowFileExtensions": [".csv", "JSON"]}
    good = tmp_path / "x.JSON"
    good.write_text("{}")
    assert one(decl, str(good)) == good.resolve().as_uri()
    assert one(decl, "kestra:///a/b.csv") == "kestra:///a/b.csv"
    assert "file extension '.txt' is not one of: .csv, JSON" in error_of(decl, "kestra:///a/b.txt")


# --------------------------------------------------------------------------- required / defaults


def test_required_missing_and_none() -> None:
    flow = make_flow({"id": "a", "type": "INT"}, {"id": "b", "type": "INT"})
    with pytest.raises(InputError) as info:
        parse_inputs(flow, {"b": None})
    assert info.value.errors == {"a": "required", "b": "required"}


def test_optional_missing_is_none() -> None:
    flow = make_flow({"id": "a", "type": "INT", "required": False})
    assert parse_inputs(flow, {}) == {"a": None}
    assert parse_inputs(flow, {"a": ""}) == {"a": None}  # an empty form field


def test_defaults_are_converted() -> None:
    flow = make_flow(
        {"id": "n", "type": "INT", "defaults": "100"},
        {"id": "d", "type": "DURATION", "defaults": "PT5M", "required": False},
        {"id": "s", "type": "SECRET", "defaults": "s3cr3t"},
    )
    values = parse_inputs(flow, {})
    assert values == {"n": 100, "d": timedelta(minutes=5), "s": "s3cr3t"}
    assert isinstance(values["s"], SecretValue)
    assert parse_inputs(flow, {"n": 7})["n"] == 7


def test_bad_default_names_the_input() -> None:
    flow = make_flow({"id": "n", "type": "INT", "defaults": "many", "min": 1})
    with pytest.raises(InputError) as info:
        parse_inputs(flow, {})
    assert info.value.errors == {"n": "invalid default: expected INT, got 'many'"}
    assert parse_inputs(flow, {"n": 3}) == {"n": 3}  # the default is not used


def test_default_out_of_bounds() -> None:
    flow = make_flow({"id": "n", "type": "INT", "defaults": 0, "min": 1})
    with pytest.raises(InputError, match="invalid default: 0 is less than min 1"):
        parse_inputs(flow, {})


# --------------------------------------------------------------------------- all errors at once


def test_every_bad_input_is_reported_together() -> None:
    flow = make_flow(
        {"id": "count", "type": "INT", "min": 1},
        {"id": "ratio", "type": "FLOAT"},
        {"id": "when", "type": "DATETIME"},
        {"id": "level", "type": "ENUM", "values": ["a", "b"]},
        {"id": "ok", "type": "BOOLEAN"},
        {"id": "needed", "type": "STRING"},
    )
    with pytest.raises(InputError) as info:
        parse_inputs(
            flow,
            {"count": "0", "ratio": "x", "when": "soon", "level": "c", "ok": "true", "extra": 1},
        )
    errors = info.value.errors
    assert set(errors) == {"count", "ratio", "when", "level", "needed", "extra"}
    assert errors["count"] == "0 is less than min 1"
    assert errors["needed"] == "required"
    text = str(info.value)
    assert "input 'count': 0 is less than min 1" in text
    assert "input 'extra': not a declared input" in text


def test_unknown_input() -> None:
    flow = make_flow({"id": "a"}, {"id": "b", "required": False})
    with pytest.raises(InputError) as info:
        parse_inputs(flow, {"a": "x", "c": 1, "d": None})
    assert info.value.errors == {
        "c": "not a declared input; declared: a, b",
        "d": "not a declared input; declared: a, b",
    }
    with pytest.raises(InputError) as info:
        parse_inputs([], {"z": 1})
    assert info.value.errors == {"z": "not a declared input; declared: (none)"}


def test_accepts_a_list_of_inputs_and_keeps_order() -> None:
    inputs = [
        Input.model_validate({"id": "b", "type": "INT"}),
        Input.model_validate({"id": "a", "type": "BOOL"}),
    ]
    values = parse_inputs(inputs, {"a": "TRUE", "b": "2"})
    assert list(values) == ["b", "a"]
    assert values == {"b": 2, "a": True}
    assert parse_inputs([], {}) == {}


def test_min_max_on_unsupported_type_is_reported() -> None:
    assert error_of({"type": "BOOLEAN", "min": 1}, "true") == (
        "min/max are not supported for BOOLEAN inputs"
    )
    assert "invalid min in the declaration: expected INT" in error_of(
        {"type": "INT", "min": "one"}, 3
    )


# --------------------------------------------------------------------------- storage round trip


ROUND_TRIP_FLOW = make_flow(
    {"id": "s", "type": "STRING"},
    {"id": "i", "type": "INT"},
    {"id": "f", "type": "FLOAT"},
    {"id": "b", "type": "BOOLEAN"},
    {"id": "dt", "type": "DATETIME"},
    {"id": "d", "type": "DATE"},
    {"id": "t", "type": "TIME"},
    {"id": "dur", "type": "DURATION"},
    {"id": "j", "type": "JSON"},
    {"id": "jtext", "type": "JSON"},
    {"id": "y", "type": "YAML"},
    {"id": "ytext", "type": "YAML"},
    {"id": "e", "type": "ENUM", "values": ["x", "y"]},
    {"id": "m", "type": "MULTISELECT", "values": ["x", "y"]},
    {"id": "arr", "type": "ARRAY", "itemType": "DATETIME"},
    {"id": "u", "type": "URI"},
    {"id": "mail", "type": "EMAIL"},
    {"id": "pw", "type": "SECRET"},
    {"id": "file", "type": "FILE"},
    {"id": "blob", "type": "FILE"},
    {"id": "opt", "type": "INT", "required": False},
)


def test_input_to_json_and_back(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_text("x")
    raw = {
        "s": "text",
        "i": "3",
        "f": "1.25",
        "b": "false",
        "dt": "2024-05-01T10:00:00+02:00",
        "d": "2024-05-01",
        "t": "10:30:00",
        "dur": "PT1H30M",
        "j": '{"k": [1, null]}',
        "jtext": '"just text"',
        "y": "k: v",
        "ytext": "'123'",
        "e": "y",
        "m": '["x", "y"]',
        "arr": ["2024-01-01T00:00:00Z"],
        "u": "https://example.com",
        "mail": "a@example.com",
        "pw": "hunter2",
        "file": str(path),
        "blob": b"\x00\xff",
    }
    typed = parse_inputs(ROUND_TRIP_FLOW, raw)
    assert typed["jtext"] == "just text"
    assert typed["ytext"] == "123"
    stored = input_to_json(typed)
    text = json.dumps(stored)  # JSON-safe
    assert "hunter2" in text  # the store keeps the value; masking is for display
    assert stored["dt"] == "2024-05-01T10:00:00+02:00"
    assert stored["dur"] == "PT1H30M"
    assert stored["t"] == "10:30:00"
    assert type(stored["pw"]) is str
    assert stored["opt"] is None

    path.unlink()  # a replay must not need the original local file
    rebuilt = inputs_from_json(ROUND_TRIP_FLOW, json.loads(text))
    assert rebuilt == typed
    assert rebuilt["jtext"] == "just text"
    assert rebuilt["ytext"] == "123"
    assert isinstance(rebuilt["pw"], SecretValue)
    assert rebuilt["blob"] == b"\x00\xff"


def test_inputs_from_json_still_validates() -> None:
    flow = make_flow({"id": "n", "type": "INT", "max": 5})
    with pytest.raises(InputError, match="input 'n': 9 is greater than max 5"):
        inputs_from_json(flow, {"n": 9})


def test_input_to_json_values() -> None:
    assert input_to_json(datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == (
        "2024-01-01T00:00:00+01:00"
    )
    assert input_to_json(date(2024, 1, 1)) == "2024-01-01"
    assert input_to_json(timedelta(seconds=90)) == "PT1M30S"
    assert input_to_json((1, {"a": time(1)})) == [1, {"a": "01:00:00"}]
    assert input_to_json(SecretValue("x")) == "x"
    assert input_to_json(None) is None


# --------------------------------------------------------------------------- declarations


def test_declaration_problems() -> None:
    def problems(decl: dict[str, Any]) -> list[str]:
        return declaration_problems(Input.model_validate({"id": "x", **decl}))

    assert problems({"type": "INT", "min": 1, "max": 5, "defaults": 3}) == []
    assert problems({"type": "INT", "min": 5, "max": 1}) == ["min is greater than max"]
    assert problems({"type": "BOOLEAN", "max": 1}) == [
        "min/max are not supported for BOOLEAN inputs"
    ]
    assert problems({"type": "INT", "validator": "x"})[0].startswith(
        "validator does not apply to INT inputs"
    )
    assert problems({"type": "INT", "itemType": "INT"}) == ["itemType only applies to ARRAY inputs"]
    assert problems({"type": "INT", "defaults": "x"}) == ["invalid default: expected INT, got 'x'"]
    assert problems({"type": "ARRAY", "itemType": "ENUM"}) == [
        "itemType ENUM: a ENUM input needs a non-empty 'values' list"
    ]
    assert problems({"type": "ARRAY", "itemType": "MULTISELECT"}) == [
        "itemType MULTISELECT is not supported (use JSON)"
    ]
    assert problems({"type": "ARRAY", "itemType": "INT", "min": 0, "defaults": [1, "2"]}) == []
    assert problems({"type": "ARRAY", "itemType": "INT", "min": 0, "defaults": [-1]}) == [
        "invalid default: item 0: -1 is less than min 0"
    ]
    assert problems({"type": "FILE", "defaults": "/does/not/exist"}) == []
    assert problems({"type": "DATETIME", "min": "later"})[0].startswith(
        "invalid min in the declaration:"
    )
