"""KV, triggers and backfill, dead letters and metrics."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import httpx
import pytest

from actors import DeadLetter
from gateway import _backfills as backfills
from tests.gateway._flows import deploy, schedule_flow, wait_state
from tests.gateway.conftest import LiveServer
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def test_kv(api: httpx.AsyncClient, namespace: str) -> None:
    base = f"/api/v1/namespaces/{namespace}/kv"
    put = await api.put(f"{base}/answer", json=42)
    assert put.status_code == 200, put.text
    assert put.json()["type"] == "NUMBER" and put.json()["value"] == 42
    assert (await api.get(f"{base}/answer")).json() == {"type": "NUMBER", "value": 42}

    await api.put(f"{base}/text", content=b"plain words", headers={"Content-Type": "text/plain"})
    assert (await api.get(f"{base}/text")).json() == {"type": "STRING", "value": "plain words"}
    await api.put(f"{base}/doc", json={"a": [1, 2]})
    assert (await api.get(f"{base}/doc")).json() == {"type": "JSON", "value": {"a": [1, 2]}}
    await api.put(f"{base}/flag", json=True)
    assert (await api.get(f"{base}/flag")).json()["type"] == "BOOLEAN"
    await api.put(f"{base}/wait", json="PT5M", params={"type": "DURATION"})
    assert (await api.get(f"{base}/wait")).json() == {"type": "DURATION", "value": "PT5M"}
    await api.put(f"{base}/when", json="2024-01-02T03:04:05+00:00", params={"type": "DATETIME"})
    assert (await api.get(f"{base}/when")).json()["value"].startswith("2024-01-02T03:04:05")

    keys = (await api.get(base)).json()
    assert [k["key"] for k in keys] == ["answer", "doc", "flag", "text", "wait", "when"]
    assert keys[0]["type"] == "NUMBER" and "value" not in keys[0]

    short = await api.put(f"{base}/brief", json="soon gone", params={"ttl": "PT0.2S"})
    assert short.json()["expirationDate"] is not None
    assert (await api.get(f"{base}/brief")).status_code == 200

    async def expired() -> bool:
        return (await api.get(f"{base}/brief")).status_code == 404

    await eventually(expired, within=10, what="the KV entry to expire")

    assert (await api.delete(f"{base}/answer")).status_code == 204
    gone = await api.get(f"{base}/answer")
    assert gone.status_code == 404 and "answer" in gone.json()["message"]
    assert (await api.delete(f"{base}/answer")).status_code == 404

    invalid = await api.put(
        f"{base}/x", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert invalid.status_code == 400 and invalid.json()["field"] == "value"
    bad_ttl = await api.put(f"{base}/x", json=1, params={"ttl": "soon"})
    assert bad_ttl.status_code == 400 and bad_ttl.json()["field"] == "ttl"
    bad_type = await api.put(f"{base}/x", json="abc", params={"type": "NUMBER"})
    assert bad_type.status_code == 400 and bad_type.json()["field"] == "value"
    unknown_type = await api.put(f"{base}/x", json=1, params={"type": "BLOB"})
    assert unknown_type.status_code == 400 and unknown_type.json()["field"] == "type"
    bad_key = await api.put(f"{base}/-x", json=1)
    assert bad_key.status_code == 400 and bad_key.json()["field"] == "key"
    bad_ns = await api.get("/api/v1/namespaces/Bad NS/kv")
    assert bad_ns.status_code == 400 and bad_ns.json()["field"] == "namespace"


async def test_triggers_and_backfill(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, schedule_flow(namespace))

    async def running() -> dict[str, Any] | None:
        found = (await api.get("/api/v1/triggers")).json()
        mine = [t for t in found["results"] if t["namespace"] == namespace]
        return mine[0] if mine and mine[0]["status"] == "RUNNING" else None

    trigger = await eventually(running, within=10, what="the trigger to run", interval=0.1)
    assert trigger["flowId"] == "scheduled" and trigger["triggerId"] == "every"
    assert trigger["type"] == "trigger.Schedule" and trigger["revision"] == 1
    assert {"events", "executionsCreated", "duplicates", "deadLetters", "reconnects"} <= set(
        trigger
    )
    assert "lastError" in trigger and "lastEventDate" in trigger

    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = (hour - dt.timedelta(hours=3)).isoformat()
    end = (hour - dt.timedelta(hours=1)).isoformat()
    body = {"namespace": namespace, "flowId": "scheduled", "start": start, "end": end}
    response = await api.put("/api/v1/triggers/backfill", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["total"] == 2 and job["capped"] is False and job["cap"] == 10_000

    async def finished() -> dict[str, Any]:
        found = (await api.get(f"/api/v1/triggers/backfill/{job['id']}")).json()
        return found if found["state"] != "RUNNING" else {}

    done = await eventually(finished, what="backfill finished")
    assert done["state"] == "SUCCESS" and done["done"] == done["total"] == 2
    ids = done["executions"]
    assert len(ids) == 2
    for execution_id in ids:
        execution = await wait_state(api, execution_id)
        assert execution["state"]["current"] == "SUCCESS"
        assert execution["trigger"]["variables"]["date"]

    unknown = await api.put("/api/v1/triggers/backfill", json={**body, "flowId": "nope"})
    assert unknown.status_code == 404
    backwards = await api.put(
        "/api/v1/triggers/backfill", json={**body, "end": "2000-01-01T00:00:00Z"}
    )
    assert backwards.status_code == 400 and backwards.json()["field"] == "end"
    no_start = await api.put(
        "/api/v1/triggers/backfill", json={"namespace": namespace, "flowId": "scheduled"}
    )
    assert no_start.status_code == 400 and no_start.json()["field"] == "start"
    await api.delete(f"/api/v1/flows/{namespace}/scheduled")


async def test_dead_letters(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    payload = b"\xff\xfe not json at all"
    await live_server.runtime.store.write_dead_letter(
        DeadLetter(
            source=f"test:{namespace}",
            payload=payload,
            reason="cannot decode",
            attempts=3,
            metadata={"key": "k1"},
            namespace=namespace,
            flow_id="f",
            trigger_id="t",
        )
    )
    found = (await api.get("/api/v1/deadletters", params={"namespace": namespace})).json()
    assert found["total"] == 1
    letter = found["results"][0]
    assert base64.b64decode(letter["payload"]) == payload
    assert letter["payloadPreview"].endswith("not json at all")
    assert letter["reason"] == "cannot decode" and letter["attempts"] == 3
    assert (
        letter["flowId"] == "f"
        and letter["triggerId"] == "t"
        and letter["metadata"] == {"key": "k1"}
    )
    assert letter["createdDate"]
    other = (await api.get("/api/v1/deadletters", params={"namespace": f"{namespace}x"})).json()
    assert other == {"results": [], "total": 0}


async def test_metrics(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, schedule_flow(namespace, "fast", cron="*/1 * * * * *", with_seconds=True))
    trigger = f"{namespace}.fast/every"

    async def counted() -> httpx.Response | None:
        response = await api.get("/metrics")
        assert response.status_code == 200
        count = f'kestrel_event_to_execution_created_seconds_count{{trigger="{trigger}"}}'
        return response if count in response.text else None

    response = await eventually(counted, within=10, what="the trigger's metrics", interval=0.2)
    text = response.text
    await api.delete(f"/api/v1/flows/{namespace}/fast")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# TYPE kestrel_event_to_execution_created_seconds histogram" in text
    assert (
        f'kestrel_event_to_execution_created_seconds_bucket{{trigger="{trigger}",le="0.001"}}'
        in text
    )
    assert (
        f'kestrel_event_to_execution_created_seconds_bucket{{trigger="{trigger}",le="+Inf"}}'
        in text
    )
    assert f'kestrel_trigger_events_total{{trigger="{trigger}"}}' in text
    assert 'kestrel_executions_total{state="SUCCESS"}' in text
    for line in text.splitlines():
        if line and not line.startswith("#"):
            _, value = line.rsplit(" ", 1)
            float(value)


async def test_backfill_cap_is_stated_and_progress_shown(
    api: httpx.AsyncClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfills, "MAX_BACKFILL_TICKS", 3)
    monkeypatch.setattr(backfills, "CHUNK_TICKS", 1)  # progress moves tick by tick
    await deploy(api, schedule_flow(namespace))
    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    body = {
        "namespace": namespace,
        "flowId": "scheduled",
        "start": (hour - dt.timedelta(hours=10)).isoformat(),
        "end": (hour - dt.timedelta(hours=5)).isoformat(),
    }
    started = await api.put("/api/v1/triggers/backfill", json=body)
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["total"], job["cap"], job["capped"]) == (3, 3, True)
    assert job["coveredUntil"].startswith((hour - dt.timedelta(hours=8)).isoformat()[:19])
    assert "more than 3 ticks" in job["message"] and "\n" not in job["message"]
    seen: set[int] = set()

    async def finished() -> dict[str, Any]:
        found = (await api.get(f"/api/v1/triggers/backfill/{job['id']}")).json()
        seen.add(found["done"])
        return found if found["state"] != "RUNNING" else {}

    done = await eventually(finished, what="backfill finished")
    assert done["state"] == "SUCCESS" and done["done"] == 3 and len(done["executions"]) == 3
    assert seen <= {0, 1, 2, 3}
    missing = await api.get("/api/v1/triggers/backfill/nope")
    assert missing.status_code == 404 and missing.json()["message"] == "backfill nope not found"
    await api.delete(f"/api/v1/flows/{namespace}/scheduled")
