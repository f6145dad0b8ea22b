"""A template that loops renders off the event loop: the process keeps serving meanwhile.

Issue 14 §3: a nested loop under the render time budget used to hold the event loop of
the process running the execution (the gateway for webhooks, a listener host for
realtime triggers) for the whole budget, so ``/health``, the API and every other trigger
waited. Such templates now render on the render threads (`actors/_templates.py`). The
tests assert only what happens while the render is still running, never how fast.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import nats
import pytest

from flows import _render_budget as budget
from tests.chaos.conftest import ChaosServer
from tests.polling import eventually

pytestmark = pytest.mark.integration

NAMESPACE = "tests.chaos.render"
KEY = "render-key"
# 10¹⁰ iterations: it ends only at the time budget.
BURN = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def webhook_flow(flow_id: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n"
        f'tasks:\n  - {{id: burn, type: core.Return, value: "{BURN}"}}\n'
        f"triggers:\n  - {{id: hook, type: trigger.Webhook, key: {KEY}}}\n"
    )


async def deploy(client: httpx.AsyncClient, source: str) -> None:
    created = await client.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert created.status_code == 201, created.text


async def detail(client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/executions/{execution_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def task_state(body: dict[str, Any], task_id: str) -> str | None:
    runs = [r for r in body.get("taskRunList") or [] if r["taskId"] == task_id]
    return runs[-1]["state"]["current"] if runs else None


async def test_the_api_answers_while_a_webhook_execution_renders_a_loop(
    chaos_server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server runs in this process: a longer budget leaves room to look meanwhile.
    monkeypatch.setattr(budget, "RENDER_TIMEOUT_S", 8.0)
    flow_id = f"burn-{uuid.uuid4().hex[:8]}"
    async with chaos_server.client() as client:
        await deploy(client, webhook_flow(flow_id))
        fired = await client.post(
            f"/api/v1/executions/webhook/{NAMESPACE}/{flow_id}/{KEY}", json={"x": 1}
        )
        assert fired.status_code == 200, fired.text
        execution_id = fired.json()["id"]

        async def rendering() -> bool:
            return task_state(await detail(client, execution_id), "burn") == "RUNNING"

        await eventually(rendering, what="the burn task run RUNNING (its render started)")
        health = await client.get("/health")
        assert health.status_code == 200, health.text
        during = await detail(client, execution_id)
        # Answered before the render finished: the task run has not ended yet.
        assert during["state"]["current"] == "RUNNING"
        assert task_state(during, "burn") == "RUNNING"

        async def ended() -> dict[str, Any] | None:
            body = await detail(client, execution_id)
            return body if body["state"]["current"] in ("SUCCESS", "FAILED") else None

        final = await eventually(ended, within=60, what="the execution ended")
        logs = await client.get(f"/api/v1/logs/{execution_id}")
    # The time budget still holds on the render thread.
    assert final["state"]["current"] == "FAILED"
    assert "rendering took longer than" in logs.text


def realtime_flow(flow_id: str, stream: str, url: str, tasks: str) -> str:
    subject = f"{stream.lower()}.{flow_id}"
    return (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n{tasks}"
        f"triggers:\n  - id: events\n    type: nats.RealtimeTrigger\n    url: {url}\n"
        f"    subject: '{subject}'\n    stream: {stream}\n    durableId: {flow_id}\n"
        "    deserializer: JSON\n"
    )


# The listener host is a Ray actor: its budget is the default (2 s) per render, so four
# renders in a row keep it busy for about 8 s.
BURNING_TASKS = (
    "tasks:\n  - id: each\n    type: flow.ForEach\n    values: [1, 2, 3, 4]\n"
    f'    tasks:\n      - {{id: burn, type: core.Return, allowFailure: true, value: "{BURN}"}}\n'
)
QUICK_TASKS = "tasks:\n  - {id: seen, type: core.Return, value: '{{ trigger.data.n }}'}\n"


async def executions(client: httpx.AsyncClient, flow_id: str) -> list[dict[str, Any]]:
    found = await client.get(
        "/api/v1/executions/search", params={"namespace": NAMESPACE, "flowId": flow_id}
    )
    assert found.status_code == 200, found.text
    results: list[dict[str, Any]] = found.json()["results"]
    return results


async def test_other_triggers_of_a_listener_host_run_while_one_renders_a_loop(
    chaos_server: ChaosServer, nats_url: str
) -> None:
    stream = f"RENDER{uuid.uuid4().hex[:8].upper()}"
    burning, quick = f"burning-{uuid.uuid4().hex[:6]}", f"quick-{uuid.uuid4().hex[:6]}"
    broker = await nats.connect(nats_url)
    js = broker.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    try:
        async with chaos_server.client() as client:
            await deploy(client, realtime_flow(burning, stream, nats_url, BURNING_TASKS))
            await deploy(client, realtime_flow(quick, stream, nats_url, QUICK_TASKS))
            await js.publish(f"{stream.lower()}.{burning}", json.dumps({"n": 0}).encode())

            async def burn_rendering() -> str | None:
                found = await executions(client, burning)
                if not found:
                    return None
                body = await detail(client, found[0]["id"])
                return found[0]["id"] if task_state(body, "burn") == "RUNNING" else None

            burning_id = await eventually(burn_rendering, what="a burn render running")
            for n in range(3):
                await js.publish(f"{stream.lower()}.{quick}", json.dumps({"n": n}).encode())

            async def quick_done() -> list[dict[str, Any]] | None:
                found = await executions(client, quick)
                done = [e for e in found if e["state"]["current"] == "SUCCESS"]
                return found if len(done) == 3 else None

            done = await eventually(quick_done, what="the other trigger's three executions")
            # They ran while the same host was still rendering the loops.
            during = await detail(client, burning_id)
            assert during["state"]["current"] == "RUNNING"
            assert len(done) == 3
    finally:
        await js.delete_stream(stream)
        await broker.close()


async def test_health_answers_while_a_webhook_condition_renders_a_loop(
    chaos_server: ChaosServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(budget, "RENDER_TIMEOUT_S", 8.0)
    flow_id = f"guard-{uuid.uuid4().hex[:8]}"
    source = (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n"
        "tasks:\n  - {id: said, type: core.Return, value: hi}\n"
        f"triggers:\n  - id: hook\n    type: trigger.Webhook\n    key: {KEY}\n"
        "    conditions:\n      - type: io.kestra.plugin.core.condition.ExpressionCondition\n"
        f'        expression: "{BURN}"\n'
    )
    async with chaos_server.client() as client:
        await deploy(client, source)
        url = f"/api/v1/executions/webhook/{NAMESPACE}/{flow_id}/{KEY}"
        fired = asyncio.create_task(client.post(url, json={"x": 1}))

        async def evaluating() -> bool:
            found = await client.get("/api/v1/triggers")
            hook = [t for t in found.json()["results"] if t.get("flowId") == flow_id]
            return bool(hook) and (hook[0].get("events") or 0) >= 1

        await eventually(evaluating, what="the webhook call counted (its conditions started)")
        health = await client.get("/health")
        assert health.status_code == 200, health.text
        # Answered while the condition was still rendering: the webhook call has no answer yet.
        assert not fired.done()
        answer = await asyncio.wait_for(fired, timeout=60)
    assert answer.status_code < 500, answer.text
    assert "Traceback" not in answer.text
