"""Webhooks while the database is unreachable: 503 with Retry-After, never a 500.

The server reaches Postgres through a TCP proxy the test cuts and heals. Every webhook
answered 200 has exactly one execution, and they all finish; every other answer during
the outage is a 503 naming when to retry.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from actors import Store
from flows import State
from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import api_serving
from gateway._settings import Settings
from tests.chaos.test_store_outage import through
from tests.e2e.proxy import TcpProxy
from tests.polling import eventually
from tests.servers import free_port

pytestmark = pytest.mark.integration

TOKEN = f"token-{uuid.uuid4().hex}"
NAMESPACE = "tests.chaos.webhooks"
KEY = "chaos-key"


def webhook_flow(flow_id: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: {NAMESPACE}\n"
        "tasks:\n  - {id: seen, type: core.Return, value: '{{ trigger.body.n }}'}\n"
        f"triggers:\n  - {{id: hook, type: trigger.Webhook, key: {KEY}}}\n"
    )


@pytest.fixture
async def server_behind_proxy(
    fresh_database: str, ray_cluster: Any
) -> AsyncIterator[tuple[str, TcpProxy]]:
    proxy = TcpProxy()
    settings = Settings(
        db=through(proxy, fresh_database),
        host="127.0.0.1",
        port=free_port(),
        api_token=TOKEN,
        webhook_workers=1,
    )
    await proxy.start()
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with api_serving(
            create_app(runtime, settings), settings, timeout_graceful_shutdown=2
        ):
            yield f"http://127.0.0.1:{settings.port}", proxy
            proxy.restore()
    finally:
        await runtime.stop()
        await proxy.stop()


async def test_webhooks_answer_503_while_the_store_is_down(
    server_behind_proxy: tuple[str, TcpProxy], fresh_database: str
) -> None:
    url, proxy = server_behind_proxy
    flow_id = f"hook-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        deployed = await client.post(
            "/api/v1/flows",
            content=webhook_flow(flow_id),
            headers={**headers, "Content-Type": "application/x-yaml"},
        )
        assert deployed.status_code in (200, 201), deployed.text
        path = f"/api/v1/executions/webhook/{NAMESPACE}/{flow_id}/{KEY}"

        async def fire(n: int) -> httpx.Response:
            return await client.post(path, json={"n": n})

        before = [await fire(n) for n in range(10)]
        assert [r.status_code for r in before] == [200] * 10
        proxy.cut()
        during = await asyncio.gather(*(fire(n) for n in range(10, 30)))
        codes = {r.status_code for r in during}
        assert codes <= {200, 503}, [r.text for r in during if r.status_code not in (200, 503)]
        refused = [r for r in during if r.status_code == 503]
        assert refused, "the outage must refuse webhooks"
        for response in refused:
            assert int(response.headers["Retry-After"]) >= 1
            assert "unreachable" in response.json()["message"]
            assert "Traceback" not in response.text
        proxy.restore()
        after = await eventually(
            lambda: _accepted(fire(30)), what="webhooks accepted again after the outage"
        )
        assert after.status_code == 200

    assert all(r.json()["id"] for r in before)  # the answers carried their executions
    expected = 10 + sum(r.status_code == 200 for r in during) + 1
    async with Store(fresh_database) as store:

        async def all_ended() -> list[Any]:
            page = await store.search_executions(namespace=NAMESPACE, flow_id=flow_id, limit=100)
            items = list(page.items)
            return items if len(items) == expected and all(e.state.terminal for e in items) else []

        items = await eventually(all_ended, within=60, what=f"{expected} executions ended")
    assert {e.state for e in items} == {State.SUCCESS}


async def _accepted(request: Any) -> httpx.Response | None:
    response: httpx.Response = await request
    return response if response.status_code == 200 else None
