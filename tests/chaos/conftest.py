"""An in-process server (runtime + HTTP API, with a token) for the chaos tests that need one."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import api_serving
from gateway._settings import Settings
from tests.servers import free_port


@dataclass(frozen=True)
class ChaosServer:
    url: str
    token: str
    runtime: Runtime

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )


@pytest.fixture(scope="package")
async def chaos_server(postgres_dsn: str, ray_cluster: Any) -> AsyncIterator[ChaosServer]:
    from tests.servers import create_database, drop_database, new_database_name

    name = new_database_name()
    dsn = create_database(postgres_dsn, name)
    token = uuid.uuid4().hex
    settings = Settings(
        db=dsn, host="127.0.0.1", port=free_port(), api_token=token, webhook_workers=1
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with api_serving(
            create_app(runtime, settings), settings, timeout_graceful_shutdown=2
        ):
            yield ChaosServer(f"http://127.0.0.1:{settings.port}", token, runtime)
    finally:
        await runtime.stop()
        drop_database(postgres_dsn, name)
