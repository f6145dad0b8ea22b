"""Switching triggers off and on: ``PUT /api/v1/triggers/{namespace}/{flowId}/{triggerId}``.

The listener really stops (a NOTIFY sent while it is off starts nothing, a webhook call
answers 404) and starts again; the choice lives in Postgres and outlives a restart.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway._runtime import Runtime
from gateway._settings import Settings
from tests.gateway._flows import deploy, webhook_flow
from tests.gateway.conftest import LiveServer
from tests.polling import eventually
from tests.servers import RayCluster

pytestmark = pytest.mark.integration


def notify_flow(namespace: str, dsn: str, channel: str) -> str:
    return f"""\
id: reacting
namespace: {namespace}
tasks:
  - id: show
    type: core.Log
    message: "got {{{{ trigger.payload }}}}"
triggers:
  - id: notified
    type: postgres.RealtimeTrigger
    url: "{dsn}"
    channel: {channel}
  - id: off-in-source
    type: trigger.Schedule
    cron: "0 0 1 1 *"
    disabled: true
"""


async def _trigger(api: httpx.AsyncClient, namespace: str, trigger_id: str) -> dict[str, Any]:
    found = (await api.get("/api/v1/triggers")).json()["results"]
    mine = [t for t in found if t["namespace"] == namespace and t["triggerId"] == trigger_id]
    return mine[0] if mine else {}


async def _payloads(api: httpx.AsyncClient, namespace: str) -> list[str]:
    page = (await api.get("/api/v1/executions/search", params={"namespace": namespace})).json()
    return sorted(str(e["trigger"]["variables"]["payload"]) for e in page["results"])


async def test_disable_stops_the_listener_and_enable_starts_it(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    channel = f"ch_{uuid.uuid4().hex[:12]}"
    await deploy(api, notify_flow(namespace, live_server.dsn, channel))
    url = f"/api/v1/triggers/{namespace}/reacting/notified"

    async def running() -> bool:
        return (await _trigger(api, namespace, "notified")).get("status") == "RUNNING"

    conn = await asyncpg.connect(live_server.dsn)
    try:
        await eventually(running, what="trigger RUNNING")
        await conn.execute("SELECT pg_notify($1, 'before')", channel)
        await eventually(lambda: _payloads(api, namespace), what="execution from 'before'")

        off = await api.put(url, json={"disabled": True})
        assert off.status_code == 200, off.text
        assert off.json()["disabled"] is True and off.json()["status"] == "STOPPED"
        listed = await _trigger(api, namespace, "notified")
        assert listed["disabled"] is True and listed["status"] == "STOPPED"
        await conn.execute("SELECT pg_notify($1, 'while-off')", channel)

        on = await api.put(url, json={"disabled": False})
        assert on.status_code == 200, on.text
        assert on.json()["disabled"] is False
        await eventually(running, what="trigger RUNNING again")
        await conn.execute("SELECT pg_notify($1, 'after')", channel)

        async def after_seen() -> list[str]:
            found = await _payloads(api, namespace)
            return found if "after" in found else []

        # NOTIFY is delivered in order to a live listener: had it kept running,
        # 'while-off' would have started an execution before 'after' did.
        assert await eventually(after_seen, what="execution from 'after'") == ["after", "before"]
    finally:
        await conn.close()


async def test_webhook_disabled_answers_404_until_enabled(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, webhook_flow(namespace, "k3y-long-enough"))
    hook = f"/api/v1/executions/webhook/{namespace}/hooked/k3y-long-enough"
    url = f"/api/v1/triggers/{namespace}/hooked/hook"
    assert (await api.post(hook, json={"x": 1})).status_code == 200
    listed = await _trigger(api, namespace, "hook")
    assert listed["events"] == 1 and listed["lastEventDate"] is not None

    assert (await api.put(url, json={"disabled": True})).json()["disabled"] is True
    assert (await api.post(hook, json={"x": 2})).status_code == 404
    assert (await _trigger(api, namespace, "hook"))["status"] == "STOPPED"
    assert (await api.put(url, json={"disabled": False})).json()["status"] == "RUNNING"
    assert (await api.post(hook, json={"x": 3})).status_code == 200


async def test_trigger_update_errors(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    await deploy(api, notify_flow(namespace, live_server.dsn, f"ch_{uuid.uuid4().hex[:12]}"))
    cases = [
        (f"{namespace}/nope/notified", {"disabled": True}, 404),
        (f"{namespace}/reacting/nope", {"disabled": True}, 404),
        (f"{namespace}/reacting/off-in-source", {"disabled": False}, 409),
        (f"{namespace}/reacting/notified", {"disabled": "maybe"}, 400),
        (f"{namespace}/reacting/notified", {}, 400),
    ]
    for path, body, status in cases:
        response = await api.put(f"/api/v1/triggers/{path}", json=body)
        assert response.status_code == status, (path, body, response.text)
        message = response.json()["message"]
        assert message and "\n" not in message and "Traceback" not in message
    spec = (await api.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/triggers/{namespace}/{flow_id}/{trigger_id}"]["put"]
    assert {"200", "400", "404", "409"} <= set(operation["responses"])


async def test_disabled_survives_a_server_restart(
    fresh_database: str, ray_cluster: RayCluster, namespace: str
) -> None:
    settings = Settings(db=fresh_database, execution_actors=1, max_execution_actors=1)
    source = notify_flow(namespace, fresh_database, f"ch_{uuid.uuid4().hex[:12]}")
    first = Runtime(settings)
    async with first:
        await first.catalog.deploy(source)
        await first.trigger_view.set_disabled(namespace, "reacting", "notified", True)
    second = Runtime(settings)
    async with second:
        infos = [i for i in await second.trigger_view.triggers() if i.trigger_id == "notified"]
        assert [(i.disabled, i.status.value) for i in infos] == [(True, "STOPPED")]
        info = await second.trigger_view.set_disabled(namespace, "reacting", "notified", False)
        assert not info.disabled

        async def running() -> bool:
            infos = [i for i in await second.trigger_view.triggers() if i.trigger_id == "notified"]
            return [i.status.value for i in infos] == ["RUNNING"]

        await eventually(running, what="trigger RUNNING after enable")
