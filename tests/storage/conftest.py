"""A real Kestrel server per storage backend (local folder, then the S3 server).

Every test that uses `files_server` runs against both backends (one server each for the
package); every test works in its own namespace.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from actors import ObjectStorage, StorageConfig, open_storage
from gateway._api import create_app
from gateway._runtime import Runtime
from gateway._server import api_serving
from gateway._settings import Settings
from tests.servers import RayCluster, create_database, drop_database, free_port, new_database_name

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FilesServer:
    url: str
    runtime: Runtime
    storage: ObjectStorage
    backend: str


@pytest.fixture(scope="package", params=["local", "s3"])
async def files_server(
    request: pytest.FixtureRequest,
    postgres_dsn: str,
    ray_cluster: RayCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FilesServer]:
    if request.param == "local":
        config = StorageConfig.local(tmp_path_factory.mktemp("storage"))
    else:
        s3 = request.getfixturevalue("s3")
        config = StorageConfig.parse(f"s3://kestrel-test/{uuid.uuid4().hex}", env=s3.env())
    name = new_database_name()
    dsn = await asyncio.to_thread(create_database, postgres_dsn, name)
    settings = Settings(
        db=dsn,
        host="127.0.0.1",
        port=free_port(),
        flows=Path(tmp_path_factory.mktemp("flows")),
        max_file_bytes=MAX_FILE_BYTES,
        no_auth=True,  # these tests are about files; auth has its own
    )
    runtime = Runtime(settings, storage=config)
    await runtime.start()
    try:
        async with api_serving(
            create_app(runtime, settings), settings, timeout_graceful_shutdown=2
        ):
            yield FilesServer(
                f"http://{settings.host}:{settings.port}",
                runtime,
                open_storage(config),
                request.param,
            )
    finally:
        await runtime.stop()
        await asyncio.to_thread(drop_database, postgres_dsn, name)


@pytest.fixture
async def api(files_server: FilesServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=files_server.url, timeout=60) as client:
        yield client


@pytest.fixture
def namespace() -> str:
    return f"test.files{uuid.uuid4().hex[:10]}"


async def deploy(api: httpx.AsyncClient, source: str) -> None:
    response = await api.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code in (200, 201), response.text
