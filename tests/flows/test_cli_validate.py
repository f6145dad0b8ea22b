"""`kestrel validate` and `kestrel schema` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from flows import iter_flow_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def kestrel(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_validate_examples_exits_zero() -> None:
    result = kestrel("validate", "examples/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 invalid" in result.stderr


def test_validate_reports_one_line_per_error_and_exits_one(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("id: g\nnamespace: n\ntasks:\n  - {id: l, type: core.Log, message: m}\n")
    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("id: s\nnamespace: n\ntasks: [\n")
    typo = tmp_path / "typo.yml"
    typo.write_text("id: t\nnamespace: n\ntasks:\n  - id: l\n    type: core.Lag\n    message: m\n")
    missing = tmp_path / "missing.yaml"
    missing.write_text("id: m\nnamespace: n\ntasks:\n  - id: s\n    type: flow.Sleep\n")
    result = kestrel("validate", str(tmp_path))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"{missing}:4:5: tasks[0]: missing required property 'duration'")
    assert lines[1].startswith(f"{syntax}:4:1: invalid YAML")
    assert lines[2].startswith(f"{typo}:5:11: tasks[0].type: unknown task type 'core.Lag'")
    assert "1 valid, 3 invalid" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_validate_missing_path_is_an_error(tmp_path: Path) -> None:
    result = kestrel("validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "no such file" in result.stdout


@pytest.fixture(scope="module")
def schema() -> dict[str, object]:
    result = kestrel("schema")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def test_schema_is_a_valid_json_schema(schema: dict[str, object]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(
    "path", sorted(iter_flow_files([EXAMPLES])), ids=lambda p: str(p.relative_to(EXAMPLES))
)
def test_schema_validates_every_example(schema: dict[str, object], path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    jsonschema.Draft202012Validator(schema).validate(document)


def test_schema_rejects_an_unknown_type(schema: dict[str, object]) -> None:
    document = {"id": "a", "namespace": "n", "tasks": [{"id": "x", "type": "core.Nope"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(document)
