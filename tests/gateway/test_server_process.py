"""``kestrel server`` as a real process: starts its own Ray, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway._flows import webhook_flow
from tests.polling import eventually_sync
from tests.servers import create_database, drop_database, free_port, new_database_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "RAY_"))}
    env["KESTREL_API_TOKEN"] = TOKEN  # the environment works as well as the options
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "server",
                "--db",
                own_database,
                "--port",
                str(port),
                "--flows",
                str(flows),
                "--log-level",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:

            def healthy() -> bool:
                assert process.poll() is None, log.read_text()
                try:
                    return client.get("/health").status_code == 200
                except httpx.TransportError:
                    return False

            eventually_sync(healthy, 60, what="the server to serve /health", interval=0.1)

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
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = log.read_text()
    for expected in ("starting Kestrel", f"API on http://127.0.0.1:{port}", "shutting down", "bye"):
        assert expected in text, text
    assert "Traceback" not in text, text
