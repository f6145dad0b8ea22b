"""While a listener host restarts (its process died; Ray restarts it, as after its node
died), the triggers API answers 503 with ``Retry-After`` and one sentence, never a 500 or
a stack trace; once the host is back, its triggers are listed RUNNING again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import ray

from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import api_serving
from gateway._settings import Settings
from tests.polling import eventually
from tests.servers import RayCluster, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def served(
    fresh_database: str, ray_cluster: RayCluster, tmp_path: Path
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = Settings(
        db=fresh_database, port=free_port(), flows=tmp_path, listener_hosts=1, no_auth=True
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with (
            api_serving(create_app(runtime, settings), settings, timeout_graceful_shutdown=2),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as api,
        ):
            yield runtime, api
    finally:
        await runtime.stop()


async def test_triggers_api_answers_503_with_retry_after_while_a_host_restarts(
    served: tuple[Runtime, httpx.AsyncClient], nats_url: str
) -> None:
    runtime, api = served
    namespace = f"scale.restart{uuid.uuid4().hex[:8]}"
    subject = f"restart.{uuid.uuid4().hex[:8]}"
    await runtime.catalog.deploy(
        f"id: heard\nnamespace: {namespace}\n"
        "tasks:\n  - {id: say, type: core.Log, message: hi}\n"
        f"triggers:\n  - {{id: core, type: nats.RealtimeTrigger, url: {nats_url}, "
        f"subject: {subject}}}\n"
    )

    async def running() -> bool:
        answer = await api.get("/api/v1/triggers")
        mine = [t for t in answer.json()["results"] if t["namespace"] == namespace]
        return answer.status_code == 200 and [t["status"] for t in mine] == ["RUNNING"]

    await eventually(running, within=30, what="the trigger running")

    (host,) = runtime.hosts
    ray.kill(host, no_restart=False)  # its process dies; Ray restarts it
    killed_at = time.monotonic()
    answers: list[httpx.Response] = []

    async def refused() -> bool:
        answers.append(await api.get("/api/v1/triggers"))
        return answers[-1].status_code == 503

    await eventually(refused, within=30, what="a 503 while the host restarts")

    async def back() -> bool:
        answer = await api.get("/api/v1/triggers")
        answers.append(answer)
        return answer.status_code != 503 and await running()

    await eventually(back, within=60, what="the host and its trigger back")
    print(f"listener host restarted, trigger RUNNING {time.monotonic() - killed_at:.1f}s after")
    assert {a.status_code for a in answers} == {200, 503}  # never a 500
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["Retry-After"]) >= 1
            message = answer.json()["message"]  # one sentence, no stack trace
            assert message.startswith("a runtime actor is unavailable ("), message
            assert "\n" not in message
