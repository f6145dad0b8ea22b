"""Every problem of a flow in one pass, each with file:line:col (duplicate ids included
when the flow's structure is invalid too)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flows import validate_flow_text

BROKEN = """\
id: broken
namespace: tests.problems
tasks:
  - id: first
    type: core.Nope
  - id: second
    type: core.Log
  - id: branch
    type: flow.If
    condition: "{{ true }}"
    then:
      - id: first
        type: core.Log
        message: again
triggers:
  - {id: t, type: trigger.Schedule, cron: "* * * * *"}
  - {id: t, type: trigger.Schedule, cron: "* * * * *"}
"""


def test_unknown_type_missing_property_and_duplicate_id_in_one_pass() -> None:
    problems = validate_flow_text(BROKEN, "broken.yaml")
    lines = [str(p) for p in problems]
    assert len(problems) == 4, lines
    by_path = {p.path: p for p in problems}
    assert "core.Nope" in by_path["tasks[0].type"].message
    assert (by_path["tasks[0].type"].line, by_path["tasks[0].type"].column) == (5, 11)
    assert by_path["tasks[1]"].message == "missing required property 'message'"
    duplicate = by_path["tasks[2].then[0].id"]
    assert duplicate.message == "duplicate task id 'first' (also at tasks[0])"
    assert (duplicate.file, duplicate.line, duplicate.column) == ("broken.yaml", 12, 9)
    assert by_path["triggers[1].id"].message == "duplicate trigger id 't'"
    assert all(p.file == "broken.yaml" and p.line > 0 and p.column > 0 for p in problems)


def test_kestrel_validate_prints_every_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    ran = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1
    lines = ran.stdout.splitlines()
    assert len(lines) == 4, lines
    assert f"{path}:12:9: tasks[2].then[0].id: duplicate task id 'first'" in ran.stdout
    assert all(line.startswith(f"{path}:") for line in lines)
