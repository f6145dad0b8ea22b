"""Hostile YAML is refused with one clear problem, at once, by the loader, the CLI and the API.

A ~400-byte "billion laughs" would expand to 10⁹ values; 10,000 levels of nesting used to
end in a RecursionError; an alias inside itself loops; a Python tag would run code.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from flows import FlowError, parse_flow, validate_flow_text
from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HEAD = "id: bomb\nnamespace: tests.chaos\n"
TASKS = "tasks:\n  - {id: log, type: core.Log, message: hi}\n"


def billion_laughs(depth: int = 9) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, depth):
        name, previous = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return HEAD + "variables:\n" + "".join(f"  {line}\n" for line in lines) + TASKS


DEEP_SEQUENCE = HEAD + TASKS + "variables: {deep: " + "[" * 10_000 + "]" * 10_000 + "}\n"
DEEP_MAPPING = HEAD + TASKS + "variables: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"
SELF_ALIAS = HEAD + TASKS + "variables: &v {again: *v}\n"
PYTHON_TAG = HEAD + TASKS + "variables: {x: !!python/object/apply:os.system ['true']}\n"

CASES = {
    "billion laughs": (billion_laughs(), "expands to more than"),
    "deep sequence": (DEEP_SEQUENCE, "nested deeper than"),
    "deep mapping": (DEEP_MAPPING, "nested deeper than"),
    "self alias": (SELF_ALIAS, "refers to a value that contains it"),
    "python tag": (PYTHON_TAG, "could not determine a constructor"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_loader_refuses_with_one_problem(name: str) -> None:
    source, expected = CASES[name]
    [problem] = validate_flow_text(source, "bomb.yaml")
    assert expected in problem.message
    assert problem.file == "bomb.yaml" and problem.line >= 1


def test_honest_anchors_still_work() -> None:
    source = HEAD + "variables: {base: &b {region: eu}, copy: *b}\n" + TASKS
    flow = parse_flow(source)
    assert flow.variables == {"base": {"region": "eu"}, "copy": {"region": "eu"}}


def test_cli_validate_prints_one_line_per_bomb(tmp_path: Path) -> None:
    for name, (source, _) in CASES.items():
        (tmp_path / f"{name.replace(' ', '-')}.yaml").write_text(source)
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == len(CASES), result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "RecursionError" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["billion laughs", "deep sequence", "self alias"])
async def test_api_answers_422_with_one_error(name: str) -> None:
    token = uuid.uuid4().hex
    settings = Settings(api_token=token)
    app = create_app(Runtime(settings), settings)  # parsing comes before any store access
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kestrel") as client:
        for path in ("/api/v1/flows", "/api/v1/flows/validate"):
            response = await client.post(
                path,
                content=CASES[name][0],
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-yaml"},
            )
            assert response.status_code in (200, 422), response.text
            assert "Traceback" not in response.text
            problems = response.json() if path.endswith("validate") else response.json()["errors"]
            assert len(problems) == 1 and CASES[name][1] in problems[0]["message"]
    with pytest.raises(FlowError):
        parse_flow(CASES[name][0])
