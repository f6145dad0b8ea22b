"""A real Kestrel server for the gateway tests: runtime, flows-folder sync, HTTP API.

One server (its own database, the session's Ray, a temporary flows folder, an API token)
serves every test in this package; each test works in its own namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import api_serving
from gateway._settings import Settings
from gateway._sync import FlowFolderSync
from tests.servers import RayCluster, create_database, drop_database, free_port, new_database_name

TOKEN = f"token-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class LiveServer:
    url: str
    token: str
    runtime: Runtime
    flows_dir: Path
    dsn: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@pytest.fixture(scope="package")
async def live_server(
    postgres_dsn: str, ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    name = new_database_name()
    dsn = await asyncio.to_thread(create_database, postgres_dsn, name)
    flows_dir = tmp_path_factory.mktemp("flows")
    settings = Settings(
        db=dsn,
        host="127.0.0.1",
        port=free_port(),
        flows=flows_dir,
        api_token=TOKEN,
        sync_interval_s=0.1,
        storage=str(tmp_path_factory.mktemp("storage")),
        kv_purge_interval_s=0.2,
    )
    runtime = Runtime(settings)
    await runtime.start()
    sync = FlowFolderSync(runtime, flows_dir, settings.sync_interval_s)
    await sync.start()
    try:
        async with api_serving(
            create_app(runtime, settings), settings, timeout_graceful_shutdown=2
        ):
            yield LiveServer(
                f"http://{settings.host}:{settings.port}", TOKEN, runtime, flows_dir, dsn
            )
    finally:
        await sync.stop()
        await runtime.stop()
        await asyncio.to_thread(drop_database, postgres_dsn, name)


@pytest.fixture
async def api(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server, with the API token."""
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.auth, timeout=30
    ) as client:
        yield client


@pytest.fixture
async def anonymous(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the live server without a token."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        yield client


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"test.gw{uuid.uuid4().hex[:10]}"
