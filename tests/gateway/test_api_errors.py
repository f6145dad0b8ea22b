"""Errors a person can read: every route answers bad ids and bodies with a 4xx and one sentence.

No body or CLI line ever carries a traceback, a Ray frame (``ray::``) or an escape code,
errors raised inside Ray actors arrive as the typed error they are, and nothing answers 5xx.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.gateway._flows import deploy, sleepy_flow, wait_state, webhook_flow
from tests.gateway.conftest import LiveServer
from tests.gateway.test_cli_client import kestrel

pytestmark = pytest.mark.integration

LEAKS = re.compile(r"Traceback|ray::|\x1b\[|\\u001b")
MALFORMED = b'{"namespace": "x", "flowId": '


def assert_readable(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A 4xx in `statuses`, whose JSON message is one line without traceback or escapes."""
    where = f"{response.request.method} {response.request.url}"
    assert response.status_code in statuses, f"{where}: {response.status_code} {response.text}"
    assert not LEAKS.search(response.text), f"{where}: {response.text}"
    body: dict[str, Any] = response.json()
    assert body["message"] and "\n" not in body["message"], f"{where}: {body}"
    return body


async def test_replay_from_an_unknown_task_run_is_404_in_one_sentence(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    created = await api.post(f"/api/v1/executions/{namespace}/sleepy")
    done = await wait_state(api, created.json()["id"])
    replay = await api.post(f"/api/v1/executions/{done['id']}/replay", params={"taskRunId": "nope"})
    body = assert_readable(replay, 404)
    assert body["message"] == f"task run nope is not in execution {done['id']}"


async def test_restart_of_a_successful_execution_is_409(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    created = await api.post(f"/api/v1/executions/{namespace}/sleepy")
    done = await wait_state(api, created.json()["id"])
    assert done["state"]["current"] == "SUCCESS"
    restart = await api.post(f"/api/v1/executions/{done['id']}/restart")
    body = assert_readable(restart, 409)
    assert "SUCCESS" in body["message"] and "FAILED, KILLED and WARNING" in body["message"]
    again = await api.get(f"/api/v1/executions/{done['id']}")
    assert again.json()["state"]["current"] == "SUCCESS"


async def test_backfill_errors_name_the_flow_or_the_body(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    request = {"namespace": namespace, "flowId": "sleepy", "start": "2026-01-01T00:00:00Z"}
    no_schedule = await api.put("/api/v1/triggers/backfill", json=request)
    body = assert_readable(no_schedule, 404)
    assert body["message"] == f"flow {namespace}.sleepy has no Schedule trigger"
    malformed = await api.put(
        "/api/v1/triggers/backfill",
        content=MALFORMED,
        headers={"Content-Type": "application/json"},
    )
    body = assert_readable(malformed, 400)
    assert body["field"] == "body"
    missing = await api.put("/api/v1/triggers/backfill", json={"namespace": namespace})
    assert assert_readable(missing, 400)["field"] in {"flowId", "start"}


def _requests(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bool]]:
    """``(method, path, query, has_body)`` for every operation, with bad ids filled in."""
    out = []
    for template, operations in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "nope-0", template)
        for method, operation in operations.items():
            query = {
                p["name"]: "nope"
                for p in operation.get("parameters", [])
                if p["in"] == "query" and p.get("required")
            }
            out.append((method.upper(), path, query, "requestBody" in operation))
    return out


async def test_every_route_answers_bad_ids_and_bodies_without_5xx_or_traceback(
    api: httpx.AsyncClient, live_server: LiveServer
) -> None:
    spec = (await api.get("/api/v1/openapi.json")).json()
    requests = _requests(spec)
    assert len(requests) >= 25  # the walk covers the whole API, not a few routes
    for method, path, query, has_body in requests:
        bodies: list[tuple[bytes, str]] = [(b"", "application/json")]
        if has_body or method in {"POST", "PUT"}:
            bodies += [(MALFORMED, "application/json"), (b"[1, 2", "application/x-yaml")]
        for content, media in bodies:
            response = await api.request(
                method, path, params=query, content=content, headers={"Content-Type": media}
            )
            where = f"{method} {path} {content!r}"
            assert response.status_code < 500, f"{where}: {response.status_code} {response.text}"
            assert not LEAKS.search(response.text), f"{where}: {response.text}"
            if response.status_code >= 400:
                message = response.json()["message"]
                assert message and "\n" not in message, f"{where}: {message!r}"


async def test_cli_errors_are_one_line(live_server: LiveServer, namespace: str) -> None:
    for args in (
        ("execution", "get", "nope"),
        ("execution", "replay", "nope", "--task-run", "nope"),
        ("execution", "restart", "nope"),
        ("backfill", namespace, "nope", "--start", "2026-01-01T00:00:00Z"),
    ):
        ran = await kestrel(live_server, *args)
        assert ran.code != 0, args
        lines = [line for line in ran.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "not found" in lines[0], (args, ran.err)
        assert not LEAKS.search(ran.out + ran.err), (args, ran.err)


async def test_a_flow_with_several_problems_is_one_line_with_every_problem_listed(
    api: httpx.AsyncClient, namespace: str
) -> None:
    source = (
        f"id: bad\nnamespace: {namespace}\ntasks:\n"
        "  - {id: a, type: core.Nope}\n  - {id: a, type: core.Log}\n"
    )
    response = await api.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    body = assert_readable(response, 422)
    assert len(body["errors"]) >= 2
    for error in body["errors"]:  # the one line names every problem
        assert f"{error['line']}:{error['column']}: {error['path']}: " in body["message"]


async def test_a_nul_character_in_any_body_is_400_and_nothing_is_stored(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, namespace: str
) -> None:
    """Postgres text and jsonb cannot hold NUL: each of these answered 500 before."""
    key = "nul-key-0123456789"
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    await deploy(api, webhook_flow(namespace, key))
    nul_json = {
        "content": b'{"name": "a\\u0000b"}',
        "headers": {"Content-Type": "application/json"},
    }
    calls = [
        (api, "POST", f"/api/v1/executions/{namespace}/sleepy", nul_json, "inputs"),
        (
            api,
            "POST",
            f"/api/v1/executions/{namespace}/sleepy",
            {"data": {"name": "a\x00b"}},  # a form
            "inputs",
        ),
        (
            api,
            "POST",
            f"/api/v1/executions/{namespace}/sleepy",
            {"files": {"name": (None, "a\x00b")}},  # multipart text field
            "name",
        ),
        (
            anonymous,
            "POST",
            f"/api/v1/executions/webhook/{namespace}/hooked/{key}",
            nul_json,
            "body",
        ),
        (
            anonymous,
            "POST",
            f"/api/v1/executions/webhook/{namespace}/hooked/{key}",
            {"content": b"a\x00b", "headers": {"Content-Type": "text/plain"}},
            "body",
        ),
        (api, "PUT", f"/api/v1/namespaces/{namespace}/kv/k", nul_json, "value"),
        (
            api,
            "PUT",
            f"/api/v1/namespaces/{namespace}/kv/k",
            {"content": b"a\x00b", "headers": {"Content-Type": "text/plain"}},
            "body",
        ),
    ]
    for client, method, path, kwargs, field in calls:
        answer = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
        body = assert_readable(answer, 400)
        assert "NUL" in body["message"] and body["field"] == field, (path, body)
    backfill = await api.put(
        "/api/v1/triggers/backfill",
        json={"namespace": "a\x00", "flowId": "sleepy", "start": "2026-01-01T00:00:00Z"},
    )
    assert "NUL" in assert_readable(backfill, 400)["message"]
    listed = await api.get("/api/v1/executions/search", params={"namespace": namespace})
    assert listed.json()["total"] == 0
    assert (await api.get(f"/api/v1/namespaces/{namespace}/kv/k")).status_code == 404
