"""Flows: create, read, update, delete, revisions, validate, search; health and docs."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway._flows import deploy, sleepy_flow

pytestmark = pytest.mark.integration

YAML = {"Content-Type": "application/x-yaml"}


async def test_health_needs_no_token(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}


async def test_openapi_docs(api: httpx.AsyncClient) -> None:
    docs = await api.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await api.get("/api/v1/openapi.json")).json()
    for path in (
        "/api/v1/flows",
        "/api/v1/executions/{namespace}/{flow_id}",
        "/api/v1/executions/webhook/{namespace}/{flow_id}/{key}",
        "/api/v1/logs/{execution_id}/follow",
        "/api/v1/namespaces/{namespace}/kv/{key}",
        "/api/v1/triggers/backfill",
        "/api/v1/deadletters",
        "/metrics",
    ):
        assert path in spec["paths"], path


async def test_flow_lifecycle(api: httpx.AsyncClient, namespace: str) -> None:
    created = await deploy(api, sleepy_flow(namespace, "life"))
    assert created["id"] == "life" and created["namespace"] == namespace
    assert created["revision"] == 1
    assert created["labels"] == [{"key": "team", "value": "data"}]
    assert "flow.Sleep" in created["source"]
    assert created["tasks"][0]["type"] == "core.Log"

    again = await api.post("/api/v1/flows", content=sleepy_flow(namespace, "life"), headers=YAML)
    assert again.status_code == 409
    assert "already exists" in again.json()["message"]

    got = (await api.get(f"/api/v1/flows/{namespace}/life")).json()
    assert got["revision"] == 1 and got["source"] == sleepy_flow(namespace, "life")

    changed = sleepy_flow(namespace, "life", sleep="PT0.1S")
    updated = await api.put(f"/api/v1/flows/{namespace}/life", content=changed, headers=YAML)
    assert updated.status_code == 200, updated.text
    assert updated.json()["revision"] == 2
    same = await api.put(f"/api/v1/flows/{namespace}/life", content=changed, headers=YAML)
    assert same.json()["revision"] == 2

    old = (await api.get(f"/api/v1/flows/{namespace}/life", params={"revision": 1})).json()
    assert old["revision"] == 1 and "PT0.5S" in old["source"]

    revisions = (await api.get(f"/api/v1/flows/{namespace}/life/revisions")).json()
    assert [r["revision"] for r in revisions] == [1, 2]
    assert all(len(r["checksum"]) == 64 for r in revisions)

    mismatched = await api.put(f"/api/v1/flows/{namespace}/other", content=changed, headers=YAML)
    assert mismatched.status_code == 422
    assert mismatched.json()["errors"][0]["path"] == "id"

    missing = sleepy_flow(namespace, "nothere")
    absent = await api.put(f"/api/v1/flows/{namespace}/nothere", content=missing, headers=YAML)
    assert absent.status_code == 404

    deleted = await api.delete(f"/api/v1/flows/{namespace}/life")
    assert deleted.status_code == 204
    assert (await api.get(f"/api/v1/flows/{namespace}/life")).status_code == 404
    assert (await api.delete(f"/api/v1/flows/{namespace}/life")).status_code == 404
    assert (await api.get(f"/api/v1/flows/{namespace}/nothere/revisions")).status_code == 404


async def test_invalid_flow_is_422_with_positions(api: httpx.AsyncClient, namespace: str) -> None:
    source = f"id: bad\nnamespace: {namespace}\ntasks:\n  - id: x\n    type: core.Nope\n"
    response = await api.post("/api/v1/flows", content=source, headers=YAML)
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith("invalid flow")
    error = body["errors"][0]
    assert set(error) == {"file", "line", "column", "path", "message"}
    assert error["line"] == 5 and error["column"] > 0
    assert "tasks[0]" in error["path"]

    broken = await api.post("/api/v1/flows", content="id: [unclosed\n", headers=YAML)
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["line"] >= 1

    empty = await api.post("/api/v1/flows", content="", headers=YAML)
    assert empty.status_code == 400


async def test_validate_always_answers_200(api: httpx.AsyncClient, namespace: str) -> None:
    good = await api.post("/api/v1/flows/validate", content=sleepy_flow(namespace), headers=YAML)
    assert good.status_code == 200 and good.json() == []
    source = f"id: bad\nnamespace: {namespace}\ntasks: []\nbogus: 1\n"
    bad = await api.post("/api/v1/flows/validate", content=source, headers=YAML)
    assert bad.status_code == 200
    problems = bad.json()
    assert len(problems) >= 2
    assert {p["path"] for p in problems} >= {"tasks", "bogus"}
    assert all(p["line"] >= 1 for p in problems)


async def test_search_flows(api: httpx.AsyncClient, namespace: str) -> None:
    for name in ("alpha", "beta", "gamma"):
        await deploy(api, sleepy_flow(namespace, name))
    await deploy(api, sleepy_flow(f"{namespace}.child", "delta"))
    found = (await api.get("/api/v1/flows/search", params={"namespace": namespace})).json()
    assert found["total"] == 4
    assert [f["id"] for f in found["results"]] == ["alpha", "beta", "gamma", "delta"]
    first = found["results"][0]
    assert first["revision"] == 1 and first["description"] == "Log, sleep, log"
    assert first["labels"] == [{"key": "team", "value": "data"}]

    paged = await api.get(
        "/api/v1/flows/search", params={"namespace": namespace, "size": 2, "page": 2}
    )
    assert [f["id"] for f in paged.json()["results"]] == ["gamma", "delta"]
    text = await api.get("/api/v1/flows/search", params={"namespace": namespace, "q": "BET"})
    assert [f["id"] for f in text.json()["results"]] == ["beta"]

    bad = await api.get("/api/v1/flows/search", params={"size": 0})
    assert bad.status_code == 400 and bad.json()["field"] == "size"


async def test_unknown_route_is_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/nothing")
    assert response.status_code == 404
    assert "message" in response.json()
