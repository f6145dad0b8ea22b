"""``kestrel server`` as a real process: starts its own Ray, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.gateway._flows import webhook_flow
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
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)

            assert client.get("/api/v1/flows/search").status_code == 401
            hook = client.post(f"/api/v1/executions/webhook/proc.test/hooked/{KEY}", json={"x": 5})
            assert hook.status_code == 200, hook.text
            execution_id = hook.json()["id"]
            auth = {"Authorization": f"Bearer {TOKEN}"}
            deadline = time.monotonic() + 20
            while True:
                body = client.get(f"/api/v1/executions/{execution_id}", headers=auth).json()
                if body["state"]["current"] == "SUCCESS":
                    break
                assert time.monotonic() < deadline, body
                time.sleep(0.05)
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
