"""Pause and resume through the API and the CLI, as in Kestra: onResume inputs, the
pause route, and examples/approval-workflow.yaml end to end."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from tests.gateway._flows import deploy, pause_flow, sleepy_flow, wait_state
from tests.gateway.conftest import LiveServer
from tests.gateway.test_cli_client import kestrel
from tests.polling import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "approval-workflow.yaml"


class _Migrations(BaseHTTPRequestHandler):
    """A tiny migrations service: POST starts one, GET says it is DONE."""

    started: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.server.started.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self._answer(201, {"state": "RUNNING"})

    def do_GET(self) -> None:
        self._answer(200, {"state": "DONE", "name": self.path.rsplit("/", 1)[-1]})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def migrations_api() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Migrations)
    server.started = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/migrations", server.started  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _example(namespace: str) -> str:
    source = EXAMPLE.read_text()
    assert "    duration: PT10M\n" in source
    # Its own namespace, and a cooling-off a test can wait for.
    source = source.replace("namespace: kestrel.examples.approvals", f"namespace: {namespace}")
    return source.replace("    duration: PT10M\n", "    duration: PT0.05S\n")


def _task_run(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    return next(t for t in body["taskRunList"] if t["taskId"] == task_id)


async def test_approval_workflow_example_end_to_end(
    api: httpx.AsyncClient,
    namespace: str,
    nats_url: str,
    migrations_api: tuple[str, list[dict[str, Any]]],
) -> None:
    url, started = migrations_api
    await deploy(api, _example(namespace))
    connection = await nats.connect(nats_url)
    try:
        requests = await connection.subscribe("approvals.dba")
        created = await api.post(
            f"/api/v1/executions/{namespace}/database-migration",
            json={"natsUrl": nats_url, "migrationsApi": url},
        )
        assert created.status_code == 200, created.text
        execution_id = created.json()["id"]
        message = await requests.next_msg(timeout=30)
        assert json.loads(message.data)["execution"] == execution_id
    finally:
        await connection.close()
    await wait_state(api, execution_id, {"PAUSED"}, within=30)
    resume = f"/api/v1/executions/{execution_id}/resume"

    missing = await api.post(resume, json={"ticket": "DBA-42"})
    assert missing.status_code == 422, missing.text
    assert "approver" in missing.text
    unknown = await api.post(resume, json={"approver": "ada", "approved": True})
    assert unknown.status_code == 422 and "approved" in unknown.text, unknown.text
    assert (await api.get(f"/api/v1/executions/{execution_id}")).json()["state"][
        "current"
    ] == "PAUSED"

    resumed = await api.post(resume, json={"approver": "ada"})
    assert resumed.status_code == 200, resumed.text
    final = await wait_state(api, execution_id, within=60)
    logs = (await api.get(f"/api/v1/logs/{execution_id}")).json()
    assert final["state"]["current"] == "SUCCESS", [line["message"] for line in logs]
    assert _task_run(final, "wait-for-dba")["outputs"] == {
        "onResume": {"approver": "ada", "ticket": None}
    }
    assert started == [{"name": "2024_06_add_order_indexes", "approvedBy": "ada"}]


async def test_pause_route_pauses_a_running_execution(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT1S"))
    execution = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
    await wait_state(api, execution["id"], {"RUNNING"})
    paused = await api.post(f"/api/v1/executions/{execution['id']}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["state"]["current"] == "PAUSED"
    again = await api.post(f"/api/v1/executions/{execution['id']}/pause")
    assert again.status_code == 409, again.text

    async def nap_done() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(f"/api/v1/executions/{execution['id']}")).json()
        return body if _task_run(body, "nap")["state"]["current"] == "SUCCESS" else None

    body = await eventually(nap_done, within=30, what="the running task done")
    assert body["state"]["current"] == "PAUSED"
    assert "last" not in {t["taskId"] for t in body["taskRunList"]}  # nothing new started
    assert (await api.post(f"/api/v1/executions/{execution['id']}/resume")).status_code == 200
    final = await wait_state(api, execution["id"])
    assert final["state"]["current"] == "SUCCESS"
    ended = await api.post(f"/api/v1/executions/{execution['id']}/pause")
    assert ended.status_code == 409 and "RUNNING" in ended.json()["message"]
    assert (await api.post("/api/v1/executions/nope/pause")).status_code == 404


async def test_cli_resume_with_inputs(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    source = pause_flow(namespace).replace(
        "    type: flow.Pause\n",
        "    type: flow.Pause\n    onResume:\n      - {id: approver, type: STRING}\n",
    )
    await deploy(api, source)
    execution = (await api.post(f"/api/v1/executions/{namespace}/paused", json={})).json()
    await wait_state(api, execution["id"], {"PAUSED"})
    bad = await kestrel(live_server, "execution", "resume", execution["id"], "-i", "who=ada")
    assert bad.code != 0 and "who" in bad.err, bad
    ran = await kestrel(
        live_server, "execution", "resume", execution["id"], "-i", "approver=ada", "--json"
    )
    assert ran.code == 0, ran.err
    final = await wait_state(api, execution["id"])
    assert _task_run(final, "wait")["outputs"] == {"onResume": {"approver": "ada"}}
