"""``kestrel server`` as a real process: starts its own Ray, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway._flows import webhook_flow
from tests.polling import eventually_sync
from tests.servers import (
    create_database,
    drop_database,
    new_database_name,
    start_kestrel_server,
)

pytestmark = pytest.mark.integration

KEY = "process-key-123456"
TOKEN = "process-token"


@pytest.fixture
def own_database(postgres_dsn: str) -> Iterator[str]:
    name = new_database_name()
    yield create_database(postgres_dsn, name)
    drop_database(postgres_dsn, name)


def test_server_process(own_database: str, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "hook.yaml").write_text(webhook_flow("proc.test", KEY), encoding="utf-8")
    log = tmp_path / "server.log"
    # The environment works as well as the options: the token comes from it.
    server = start_kestrel_server(
        own_database, flows, log, auth=(), within=60, KESTREL_API_TOKEN=TOKEN
    )
    port = int(server.base_url.rsplit(":", 1)[1])
    try:
        with server.client() as client:
            assert client.get("/api/v1/flows/search").status_code == 401
            hook = client.post(f"/api/v1/executions/webhook/proc.test/hooked/{KEY}", json={"x": 5})
            assert hook.status_code == 200, hook.text
            execution_id = hook.json()["id"]
            auth = {"Authorization": f"Bearer {TOKEN}"}

            def succeeded() -> bool:
                body = client.get(f"/api/v1/executions/{execution_id}", headers=auth).json()
                return bool(body["state"]["current"] == "SUCCESS")

            eventually_sync(succeeded, 20, what="the webhook execution to succeed", interval=0.05)
            logs = client.get(f"/api/v1/logs/{execution_id}", headers=auth).json()
            assert [line["message"] for line in logs] == ["got 5"]
        assert server.stop() == 0, log.read_text()  # SIGTERM: a clean exit
    finally:
        server.stop()
    text = log.read_text()
    for expected in ("starting Kestrel", f"API on http://127.0.0.1:{port}", "shutting down", "bye"):
        assert expected in text, text
    assert "Traceback" not in text, text
