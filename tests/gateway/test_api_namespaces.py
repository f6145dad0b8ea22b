"""``GET /api/v1/namespaces`` and ``GET /api/v1/flows/{namespace}``."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway._flows import deploy, failing_flow, sleepy_flow, wait_state

pytestmark = pytest.mark.integration


async def test_namespaces_and_flows_of_one(api: httpx.AsyncClient, namespace: str) -> None:
    child = f"{namespace}.child"
    await deploy(api, sleepy_flow(namespace, "a", sleep="PT0S"))
    await deploy(api, failing_flow(namespace, "b"))
    await deploy(api, sleepy_flow(child, "c", sleep="PT0S"))
    started = await api.post(f"/api/v1/executions/{namespace}/b")
    await wait_state(api, started.json()["id"])

    found = (await api.get("/api/v1/namespaces")).json()
    mine = [n for n in found["results"] if n["id"].startswith(namespace)]
    assert mine == [{"id": namespace, "flowCount": 2}, {"id": child, "flowCount": 1}]
    assert found["total"] == len(found["results"])
    only = (await api.get("/api/v1/namespaces", params={"q": child})).json()
    assert [n["id"] for n in only["results"]] == [child]

    flows = (await api.get(f"/api/v1/flows/{namespace}")).json()
    assert [(f["id"], f["lastExecutionState"]) for f in flows] == [("a", None), ("b", "FAILED")]
    search = (await api.get("/api/v1/flows/search", params={"namespace": namespace})).json()
    assert {f["id"]: f["lastExecutionState"] for f in search["results"]}["b"] == "FAILED"

    missing = await api.get("/api/v1/flows/test.nothing.here")
    assert missing.status_code == 404
    assert missing.json()["message"] == "namespace test.nothing.here has no flows"
    spec = (await api.get("/api/v1/openapi.json")).json()
    assert "404" in spec["paths"]["/api/v1/flows/{namespace}"]["get"]["responses"]
    assert "NamespacePage" in str(spec["paths"]["/api/v1/namespaces"]["get"]["responses"])
