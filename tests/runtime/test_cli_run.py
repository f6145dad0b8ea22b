"""`kestrel run FLOW.yaml`: one execution to its end, a table or JSON, and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def kestrel_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=180,
    )


def test_hello_example_runs_and_prints_json(fresh_database: str) -> None:
    result = kestrel_run("examples/hello.yaml", "--db", fresh_database, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "SUCCESS"
    assert out["flow"] == {"namespace": "kestrel.examples", "id": "hello", "revision": 1}
    assert [(t["taskId"], t["state"], t["attempts"]) for t in out["taskRuns"]] == [
        ("greet", "SUCCESS", 1),
        ("answer", "SUCCESS", 1),
    ]
    assert out["taskRuns"][1]["outputs"] == {"value": "hello, world"}
    assert set(out) == {"id", "state", "flow", "outputs", "taskRuns"}


def test_table_output_and_failure_exit_code(fresh_database: str, tmp_path: Path) -> None:
    flow = tmp_path / "failing.yaml"
    flow.write_text(
        "id: failing\nnamespace: tests.cli\ninputs:\n  - {id: who, type: STRING}\n"
        "tasks:\n  - {id: hi, type: core.Log, message: 'hi {{ inputs.who }}'}\n"
        "  - {id: stop, type: flow.Fail, errorMessage: planned}\n"
    )
    result = kestrel_run(str(flow), "--db", fresh_database, "--input", "who=Ada")
    assert result.returncode == 1
    assert "hi Ada" in result.stdout
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TASK"))
    assert lines[header].split() == ["TASK", "STATE", "ATTEMPTS", "DURATION"]
    assert lines[header + 1].split()[:3] == ["hi", "SUCCESS", "1"]
    assert lines[header + 2].split()[:2] == ["stop", "FAILED"]  # flowable: no attempts
    assert ": FAILED" in result.stdout


def test_bad_input_and_bad_flow_exit_two(fresh_database: str, tmp_path: Path) -> None:
    flow = tmp_path / "typed.yaml"
    flow.write_text(
        "id: typed\nnamespace: tests.cli\ninputs:\n  - {id: n, type: INT}\n"
        "tasks:\n  - {id: hi, type: core.Log, message: 'n={{ inputs.n }}'}\n"
    )
    result = kestrel_run(str(flow), "--db", fresh_database, "--input", "n=twelve")
    assert result.returncode == 2
    assert "input 'n'" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\nnamespace: tests.cli\ntasks:\n  - {id: x, type: core.Nope}\n")
    result = kestrel_run(str(broken), "--db", fresh_database)
    assert result.returncode == 2
    assert f"{broken}:4:" in result.stderr
    assert "Traceback" not in result.stderr
