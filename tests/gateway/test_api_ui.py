"""The endpoints the web UI adds: static assets, the flow schema, dashboard stats,
latency per trigger and dead letters (read, re-drive once, delete)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from actors import DeadLetter
from flows import ConflictError, flow_json_schema
from gateway._api._redrive import decode_payload
from gateway._api._stats import histogram, percentile
from gateway._api._ui import DIST, asset_path
from tests.gateway._flows import deploy, sleepy_flow, wait_state, webhook_flow
from tests.gateway.conftest import LiveServer

pytestmark = pytest.mark.integration


def nats_flow(namespace: str, nats_url: str, subject: str, serde: str) -> str:
    return f"""\
id: listener
namespace: {namespace}
tasks:
  - id: show
    type: core.Log
    message: "got {{{{ trigger.data }}}}"
triggers:
  - id: inbox
    type: nats.RealtimeTrigger
    url: {nats_url}
    subject: {subject}
    deserializer: {serde}
"""


# ---- pure helpers ----


def test_percentile_and_histogram() -> None:
    values = [0.001 * i for i in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(0.050)
    assert percentile(values, 99) == pytest.approx(0.099)
    assert percentile([], 50) is None
    counts = histogram([0.0005, 0.002, 0.002, 20.0], (0.001, 0.0025))
    assert counts == [1, 2, 1]


def test_decode_payload_by_format() -> None:
    assert decode_payload(b'{"a": 1}', "JSON") == {"a": 1}
    assert decode_payload(b"plain", "string") == "plain"
    assert decode_payload(b"\x00\x01", "BYTES") == "AAE="
    with pytest.raises(ConflictError, match="still not JSON"):
        decode_payload(b"not json", "JSON")
    with pytest.raises(ConflictError, match="not UTF-8"):
        decode_payload(b"\xff", "STRING")


def test_asset_paths_stay_inside_the_build(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "a.js").write_text("x")
    (tmp_path.parent / "secret.txt").write_text("no")
    assert asset_path("assets/a.js", tmp_path) == (tmp_path / "assets" / "a.js").resolve()
    assert asset_path("../secret.txt", tmp_path) is None
    assert asset_path("executions/123", tmp_path) is None
    assert asset_path("", tmp_path) is None


# ---- against the live server ----


async def test_ui_is_served_without_a_token_with_deep_links(anonymous: httpx.AsyncClient) -> None:
    root = await anonymous.get("/")
    assert root.status_code == 307
    assert root.headers["location"] == "/ui/"
    for path in ("/ui/", "/ui/executions/abc123", "/ui/flows/a.b/c"):
        page = await anonymous.get(path)
        assert page.status_code == 200, path
        assert '<div id="root">' in page.text
        assert page.headers["cache-control"] == "no-cache"
    asset = next((DIST / "assets").glob("index-*.js"))
    got = await anonymous.get(f"/ui/assets/{asset.name}")
    assert got.status_code == 200
    assert "immutable" in got.headers["cache-control"]
    assert got.content == asset.read_bytes()
    assert (await anonymous.get("/ui/assets/missing.js")).status_code == 404
    assert (await anonymous.get("/ui/%2e%2e/%2e%2e/pyproject.toml")).status_code == 400
    # the data still needs the token
    assert (await anonymous.get("/api/v1/flows/search")).status_code == 401
    assert (await anonymous.post("/ui/anything")).status_code in (401, 405)


async def test_flow_schema_endpoint(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/v1/flows/schema")
    assert response.status_code == 200
    assert response.json() == flow_json_schema()
    paths = (await api.get("/api/v1/openapi.json")).json()["paths"]
    for path in (
        "/api/v1/flows/schema",
        "/api/v1/stats/executions",
        "/api/v1/triggers/latency",
        "/api/v1/deadletters/{letter_id}/redrive",
        "/api/v1/deadletters/{letter_id}",
    ):
        assert path in paths, path


async def test_execution_stats_per_minute(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    for _ in range(2):
        started = await api.post(f"/api/v1/executions/{namespace}/sleepy?wait=true", json={})
        assert started.json()["state"]["current"] == "SUCCESS"
    stats = (await api.get(f"/api/v1/stats/executions?namespace={namespace}")).json()
    assert [(m["state"], m["count"]) for m in stats["perMinute"]] in (
        [("SUCCESS", 2)],
        [("SUCCESS", 1), ("SUCCESS", 1)],  # two minutes when the clock turned between them
    )
    assert stats["success"] == 2
    assert stats["failed"] == 0
    assert stats["successRate"] == 1.0
    assert stats["running"] == 0
    assert (await api.get("/api/v1/stats/executions?minutes=0")).status_code == 400


async def test_latency_per_trigger(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, webhook_flow(namespace, "latency-key-123"))
    for x in range(3):
        hook = await api.post(
            f"/api/v1/executions/webhook/{namespace}/hooked/latency-key-123", json={"x": x}
        )
        assert hook.status_code == 200, hook.text
    found = (await api.get("/api/v1/triggers/latency?kind=created")).json()
    mine = next(t for t in found if t["trigger"] == f"{namespace}.hooked/hook")
    assert mine["count"] == 3
    assert sum(mine["counts"]) == 3
    assert len(mine["counts"]) == len(mine["buckets"]) + 1
    assert 0 < mine["p50"] <= mine["p99"]
    assert (await api.get("/api/v1/triggers/latency?kind=nope")).status_code == 400


async def test_dead_letter_redrive_once_after_the_flow_is_fixed(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str, nats_url: str
) -> None:
    subject = f"ui.{uuid.uuid4().hex}"
    await deploy(api, nats_flow(namespace, nats_url, subject, "JSON"))
    letter = await live_server.runtime.store.write_dead_letter(
        DeadLetter(
            source=f"nats:{subject}",
            payload=b"hello, not json",
            reason="JSON deserializer: bad",
            metadata={"subject": subject, "headers": {}},
            namespace=namespace,
            flow_id="listener",
            trigger_id="inbox",
        )
    )
    one = await api.get(f"/api/v1/deadletters/{letter.id}")
    assert one.status_code == 200
    assert one.json()["payloadPreview"] == "hello, not json"
    assert one.json()["redrivenExecutionId"] is None

    refused = await api.post(f"/api/v1/deadletters/{letter.id}/redrive")
    assert refused.status_code == 409
    assert "still not JSON" in refused.json()["message"]

    fixed = nats_flow(namespace, nats_url, subject, "STRING")
    put = await api.put(
        f"/api/v1/flows/{namespace}/listener",
        content=fixed,
        headers={"Content-Type": "application/x-yaml"},
    )
    assert put.status_code == 200, put.text
    first = await api.post(f"/api/v1/deadletters/{letter.id}/redrive")
    assert first.status_code == 200, first.text
    execution = first.json()
    assert execution["trigger"]["id"] == "inbox"
    assert execution["trigger"]["variables"]["data"] == "hello, not json"
    assert execution["trigger"]["variables"]["subject"] == subject
    again = await api.post(f"/api/v1/deadletters/{letter.id}/redrive")
    assert again.json()["id"] == execution["id"]  # once only
    listed = (await api.get(f"/api/v1/deadletters?namespace={namespace}")).json()["results"]
    assert [d["redrivenExecutionId"] for d in listed] == [execution["id"]]
    one = (await api.get(f"/api/v1/deadletters/{letter.id}")).json()
    assert one["redrivenExecutionId"] == execution["id"]
    done = await wait_state(api, execution["id"])
    assert done["state"]["current"] == "SUCCESS"
    logs = (await api.get(f"/api/v1/logs/{execution['id']}")).json()
    assert any(line["message"] == "got hello, not json" for line in logs)

    assert (await api.delete(f"/api/v1/deadletters/{letter.id}")).status_code == 204
    assert (await api.get(f"/api/v1/deadletters/{letter.id}")).status_code == 404
    assert (await api.delete(f"/api/v1/deadletters/{letter.id}")).status_code == 404
    assert (await api.post("/api/v1/deadletters/nope/redrive")).status_code == 404
