"""Executions and logs: create (JSON, form, multipart), read, search, follow, control."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest

from tests.gateway._flows import (
    deploy,
    failing_flow,
    pause_flow,
    sleepy_flow,
    typed_flow,
    wait_state,
)
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def _events(api: httpx.AsyncClient, path: str, seen: list[tuple[float, Any]]) -> None:
    async with api.stream("GET", path, timeout=httpx.Timeout(30, read=30)) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                seen.append((time.monotonic(), json.loads(line[5:])))


async def test_create_with_wait_and_labels(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0.05S"))
    response = await api.post(
        f"/api/v1/executions/{namespace}/sleepy",
        json={"name": "Ada"},
        params={"wait": "true", "labels": ["env:test", "owner:me"]},
    )
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["namespace"] == namespace and execution["flowId"] == "sleepy"
    assert execution["flowRevision"] == 1
    assert execution["inputs"] == {"name": "Ada"}
    assert {"key": "env", "value": "test"} in execution["labels"]
    states = [h["state"] for h in execution["state"]["histories"]]
    assert states[0] == "CREATED" and states[-1] == "SUCCESS"
    assert execution["state"]["startDate"] and execution["state"]["endDate"]
    assert execution["state"]["duration"].startswith("PT")
    runs = execution["taskRunList"]
    assert [r["taskId"] for r in runs] == ["first", "nap", "last"]
    assert runs[0]["attempts"][0]["state"]["current"] == "SUCCESS"
    assert runs[0]["executionId"] == execution["id"]

    got = await api.get(f"/api/v1/executions/{execution['id']}")
    assert got.status_code == 200 and got.json()["id"] == execution["id"]

    logs = (await api.get(f"/api/v1/logs/{execution['id']}")).json()
    assert [line["message"] for line in logs] == ["hello Ada", "bye"]
    line = logs[0]
    assert line["level"] == "INFO" and line["taskRunId"] == runs[0]["id"]
    assert line["attemptNumber"] == 1 and line["timestamp"]
    errors_only = await api.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "ERROR"})
    assert errors_only.json() == []
    bad_level = await api.get(f"/api/v1/logs/{execution['id']}", params={"minLevel": "LOUD"})
    assert bad_level.status_code == 400 and bad_level.json()["field"] == "minLevel"


async def test_execution_errors(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, typed_flow(namespace))
    missing = await api.get("/api/v1/executions/doesnotexist")
    assert missing.status_code == 404 and "not found" in missing.json()["message"]
    assert (await api.get("/api/v1/logs/doesnotexist")).status_code == 404
    assert (await api.get("/api/v1/logs/doesnotexist/follow")).status_code == 404
    assert (await api.get("/api/v1/executions/doesnotexist/follow")).status_code == 404
    no_flow = await api.post(f"/api/v1/executions/{namespace}/nope", json={})
    assert no_flow.status_code == 404

    bad = await api.post(f"/api/v1/executions/{namespace}/typed", json={"count": "many"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "count"
    assert bad.json()["errors"][0]["field"] == "count"
    assert "Traceback" not in bad.text and "ray::" not in bad.text

    not_object = await api.post(f"/api/v1/executions/{namespace}/typed", json=[1, 2])
    assert not_object.status_code == 400 and not_object.json()["field"] == "inputs"
    broken = await api.post(
        f"/api/v1/executions/{namespace}/typed",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    bad_label = await api.post(
        f"/api/v1/executions/{namespace}/typed", json={"count": 1}, params={"labels": "novalue"}
    )
    assert bad_label.status_code == 400 and bad_label.json()["field"] == "labels"
    server_path = await api.post(
        f"/api/v1/executions/{namespace}/typed", json={"count": 1, "doc": "/etc/hostname"}
    )
    assert server_path.status_code == 422 and server_path.json()["field"] == "doc"
    unsupported = await api.post(
        f"/api/v1/executions/{namespace}/typed",
        content=b"x",
        headers={"Content-Type": "application/xml"},
    )
    assert unsupported.status_code == 415


async def test_create_with_form_and_file(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, typed_flow(namespace))
    content = b"\x00\x01binary\r\n--not-a-boundary\r\n\xff"
    response = await api.post(
        f"/api/v1/executions/{namespace}/typed",
        data={"count": "7"},
        files={"doc": ("data.bin", content, "application/octet-stream")},
        params={"wait": "true"},
    )
    assert response.status_code == 200, response.text
    execution = response.json()
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["inputs"]["count"] == 7
    stored = execution["inputs"]["doc"]
    ns_path = namespace.replace(".", "/")
    assert stored == f"kestra:///{ns_path}/typed/executions/{execution['id']}/inputs/doc/data.bin"
    download = await api.get(f"/api/v1/executions/{execution['id']}/file", params={"path": stored})
    assert download.status_code == 200 and download.content == content

    form = await api.post(
        f"/api/v1/executions/{namespace}/typed",
        content=b"count=3",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        params={"wait": "true"},
    )
    assert form.status_code == 200, form.text
    assert form.json()["inputs"]["count"] == 3


async def test_search_executions(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0S"))
    await deploy(api, failing_flow(namespace))
    ids = []
    for i in range(3):
        response = await api.post(
            f"/api/v1/executions/{namespace}/sleepy",
            json={},
            params={"wait": "true", "labels": f"batch:{i % 2}"},
        )
        ids.append(response.json()["id"])
    failed = (
        await api.post(f"/api/v1/executions/{namespace}/failing", params={"wait": "true"})
    ).json()
    assert failed["state"]["current"] == "FAILED"

    everything = (
        await api.get("/api/v1/executions/search", params={"namespace": namespace})
    ).json()
    assert everything["total"] == 4
    assert everything["results"][0]["id"] == failed["id"]  # newest first
    assert everything["results"][0]["taskRunList"] is None

    by_flow = await api.get(
        "/api/v1/executions/search", params={"namespace": namespace, "flowId": "sleepy"}
    )
    assert {e["id"] for e in by_flow.json()["results"]} == set(ids)
    by_state = await api.get(
        "/api/v1/executions/search",
        params=[("namespace", namespace), ("state", "FAILED"), ("state", "KILLED")],
    )
    assert [e["id"] for e in by_state.json()["results"]] == [failed["id"]]
    by_label = await api.get(
        "/api/v1/executions/search", params={"namespace": namespace, "labels": "batch:1"}
    )
    assert [e["id"] for e in by_label.json()["results"]] == [ids[1]]
    page = await api.get(
        "/api/v1/executions/search", params={"namespace": namespace, "size": 2, "page": 2}
    )
    assert page.json()["total"] == 4 and len(page.json()["results"]) == 2
    future = await api.get(
        "/api/v1/executions/search",
        params={"namespace": namespace, "startDate": "2999-01-01T00:00:00Z"},
    )
    assert future.json()["total"] == 0
    until = await api.get(
        "/api/v1/executions/search",
        params={"namespace": namespace, "endDate": "2999-01-01T00:00:00"},
    )
    assert until.json()["total"] == 4

    bad_state = await api.get("/api/v1/executions/search", params={"state": "ASLEEP"})
    assert bad_state.status_code == 400 and bad_state.json()["field"].startswith("state")
    bad_date = await api.get("/api/v1/executions/search", params={"startDate": "yesterday"})
    assert bad_date.status_code == 400 and bad_date.json()["field"] == "startDate"


async def test_follow_execution_and_logs_live(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0.5S"))
    execution = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
    states: list[tuple[float, Any]] = []
    lines: list[tuple[float, Any]] = []
    await asyncio.wait_for(
        asyncio.gather(
            _events(api, f"/api/v1/executions/{execution['id']}/follow", states),
            _events(api, f"/api/v1/logs/{execution['id']}/follow", lines),
        ),
        timeout=20,
    )
    messages = [body["message"] for _, body in lines]
    assert messages == ["hello world", "bye"]
    # Live: the first line arrived while the execution was still sleeping.
    assert lines[1][0] - lines[0][0] > 0.3
    assert [body["seq"] for _, body in lines] == sorted(body["seq"] for _, body in lines)

    currents = [body["state"]["current"] for _, body in states]
    assert currents[-1] == "SUCCESS"
    assert "RUNNING" in currents
    assert currents[0] in ("CREATED", "RUNNING")
    assert states[-1][0] - states[0][0] > 0.3  # sent live, not all at the end
    assert states[-1][1]["taskRunList"][-1]["state"]["current"] == "SUCCESS"
    assert lines[0][0] < states[-1][0] - 0.3

    # Resuming from a cursor sends only what came after it.
    first_seq = lines[0][1]["seq"]
    rest: list[tuple[float, Any]] = []
    await _events(api, f"/api/v1/logs/{execution['id']}/follow?since={first_seq}", rest)
    assert [body["message"] for _, body in rest] == ["bye"]
    # A finished execution: one event, then the stream ends.
    done: list[tuple[float, Any]] = []
    await _events(api, f"/api/v1/executions/{execution['id']}/follow", done)
    assert len(done) == 1 and done[0][1]["state"]["current"] == "SUCCESS"


async def test_replay_and_restart(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, failing_flow(namespace))
    failed = (
        await api.post(f"/api/v1/executions/{namespace}/failing", params={"wait": "true"})
    ).json()
    assert failed["state"]["current"] == "FAILED"
    boom = next(r for r in failed["taskRunList"] if r["taskId"] == "boom")

    replay = await api.post(
        f"/api/v1/executions/{failed['id']}/replay", params={"taskRunId": boom["id"]}
    )
    assert replay.status_code == 200, replay.text
    replayed = replay.json()
    assert replayed["id"] != failed["id"] and replayed["originalId"] == failed["id"]
    replayed = await wait_state(api, replayed["id"])
    assert replayed["state"]["current"] == "FAILED"
    ok_runs = [r for r in replayed["taskRunList"] if r["taskId"] == "ok"]
    assert ok_runs and ok_runs[0]["state"]["current"] == "SUCCESS"

    whole = await api.post(f"/api/v1/executions/{failed['id']}/replay")
    assert whole.status_code == 200 and whole.json()["originalId"] == failed["id"]
    unknown_run = await api.post(
        f"/api/v1/executions/{failed['id']}/replay", params={"taskRunId": "nope"}
    )
    assert unknown_run.status_code == 404
    assert (await api.post("/api/v1/executions/nope/replay")).status_code == 404

    restart = await api.post(f"/api/v1/executions/{failed['id']}/restart")
    assert restart.status_code == 200, restart.text
    moved = restart.json()["state"]["histories"]
    assert len(moved) > len(failed["state"]["histories"])  # it left FAILED before the answer
    restarted = await wait_state(api, failed["id"])
    assert restarted["state"]["current"] == "FAILED"
    assert restarted["state"]["histories"][-1]["date"] > failed["state"]["histories"][-1]["date"]
    assert (await api.post("/api/v1/executions/nope/restart")).status_code == 404


async def test_kill(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT30S"))
    for method in ("DELETE", "POST"):
        execution = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
        await wait_state(api, execution["id"], {"RUNNING"})
        killed = await api.request(method, f"/api/v1/executions/{execution['id']}/kill")
        assert killed.status_code == 200, killed.text
        final = await wait_state(api, execution["id"])
        assert final["state"]["current"] == "KILLED"
        again = await api.request(method, f"/api/v1/executions/{execution['id']}/kill")
        assert again.status_code == 409
    running = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
    await wait_state(api, running["id"], {"RUNNING"})
    busy = await api.post(f"/api/v1/executions/{running['id']}/restart")
    assert busy.status_code == 409
    await api.delete(f"/api/v1/executions/{running['id']}/kill")
    assert (await api.delete("/api/v1/executions/nope/kill")).status_code == 404


async def test_resume(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, pause_flow(namespace))
    execution = (await api.post(f"/api/v1/executions/{namespace}/paused", json={})).json()
    await wait_state(api, execution["id"], {"PAUSED"})
    resumed = await api.post(f"/api/v1/executions/{execution['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    final = await wait_state(api, execution["id"])
    assert final["state"]["current"] == "SUCCESS"
    again = await api.post(f"/api/v1/executions/{execution['id']}/resume")
    assert again.status_code == 409 and "not PAUSED" in again.json()["message"]
    assert (await api.post("/api/v1/executions/nope/resume")).status_code == 404


async def test_follow_stops_when_the_client_leaves(api: httpx.AsyncClient, namespace: str) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT30S"))
    execution = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
    await wait_state(api, execution["id"], {"RUNNING"})
    before = asyncio.all_tasks()
    for path in (
        f"/api/v1/executions/{execution['id']}/follow",
        f"/api/v1/logs/{execution['id']}/follow",
    ):
        async with (
            httpx.AsyncClient(base_url=str(api.base_url), headers=dict(api.headers)) as client,
            client.stream("GET", path) as response,
        ):
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    break

    def streams_left() -> bool:  # every task the two streams started has ended
        return all(t.done() for t in asyncio.all_tasks() - before)

    await eventually(streams_left, within=3, what="the streams to stop after their client left")
    await api.delete(f"/api/v1/executions/{execution['id']}/kill")
