"""The ``kestrel`` client commands, as real subprocesses against the live server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway._flows import (
    deploy,
    failing_flow,
    pause_flow,
    schedule_flow,
    sleepy_flow,
    wait_state,
)
from tests.gateway.conftest import LiveServer
from tests.servers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def kestrel(
    live_server: LiveServer | None, *args: str, token: bool = True, server: str | None = None
) -> Ran:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KESTREL_")}
    env["KESTREL_DATA_DIR"] = os.devnull  # no generated token of this machine's server
    if live_server is not None:
        env["KESTREL_SERVER"] = live_server.url
        if token:
            env["KESTREL_API_TOKEN"] = live_server.token
    argv = [sys.executable, "-m", "gateway.cli", *args]
    if server is not None:
        argv += ["--server", server]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


async def test_flow_commands(live_server: LiveServer, namespace: str, tmp_path: Path) -> None:
    one = tmp_path / "one.yaml"
    one.write_text(sleepy_flow(namespace, "one"))
    two = tmp_path / "two.yaml"
    two.write_text(sleepy_flow(namespace, "two"))
    ran = await kestrel(live_server, "flow", "deploy", str(one), str(two))
    assert ran.code == 0, ran.err
    assert f"{namespace}.one created (revision 1)" in ran.out
    ran = await kestrel(live_server, "flow", "deploy", str(one))
    assert ran.code == 0 and "unchanged (revision 1)" in ran.out
    one.write_text(sleepy_flow(namespace, "one", sleep="PT0S"))
    ran = await kestrel(live_server, "flow", "deploy", str(one), "--json")
    assert ran.code == 0, ran.err
    assert ran.json() == [
        {"file": str(one), "flow": f"{namespace}.one", "revision": 2, "outcome": "updated"}
    ]

    bad = tmp_path / "bad.yaml"
    bad.write_text(f"id: bad\nnamespace: {namespace}\ntasks:\n  - id: x\n    type: core.Nope\n")
    ran = await kestrel(live_server, "flow", "deploy", str(bad))
    assert ran.code == 1
    assert f"{bad}:5:" in ran.err and "core.Nope" in ran.err

    ran = await kestrel(live_server, "flow", "list", "--namespace", namespace)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "ID", "REVISION", "TRIGGERS", "STATUS", "UPDATED"]
    assert lines[1].split()[:3] == [namespace, "one", "2"]
    assert lines[2].split()[:3] == [namespace, "two", "1"]
    assert lines[1][lines[0].index("REVISION") :].startswith("2 ")  # aligned columns
    ran = await kestrel(live_server, "flow", "list", "--namespace", namespace, "--json")
    assert [f["id"] for f in ran.json()] == ["one", "two"]

    ran = await kestrel(live_server, "flow", "delete", namespace, "two")
    assert ran.code == 0 and "deleted" in ran.out
    ran = await kestrel(live_server, "flow", "delete", namespace, "two")
    assert ran.code == 1 and "not found" in ran.err


async def test_execution_commands(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    await deploy(api, sleepy_flow(namespace, sleep="PT0.3S"))
    await deploy(api, failing_flow(namespace))
    await deploy(api, pause_flow(namespace))
    running = (
        await api.post(f"/api/v1/executions/{namespace}/sleepy", json={"name": "cli"})
    ).json()

    follow = await kestrel(live_server, "execution", "logs", running["id"], "--follow")
    assert follow.code == 0, follow.err
    assert [line.split(None, 2)[2] for line in follow.out.splitlines()] == ["hello cli", "bye"]
    await wait_state(api, running["id"])

    ran = await kestrel(live_server, "execution", "logs", running["id"], "--json")
    assert [json.loads(line)["message"] for line in ran.out.splitlines()] == ["hello cli", "bye"]

    ran = await kestrel(live_server, "execution", "get", running["id"])
    assert ran.code == 0, ran.err
    assert f"execution {running['id']} of {namespace}.sleepy rev 1: SUCCESS" in ran.out
    assert "TASK RUN" in ran.out and "nap" in ran.out
    ran = await kestrel(live_server, "execution", "get", running["id"], "--json")
    assert ran.json()["id"] == running["id"] and len(ran.json()["taskRunList"]) == 3

    failed = (
        await api.post(f"/api/v1/executions/{namespace}/failing", params={"wait": "true"})
    ).json()
    ran = await kestrel(live_server, "execution", "list", "--namespace", namespace)
    assert ran.code == 0, ran.err
    rows = ran.out.splitlines()
    assert rows[0].split() == ["ID", "NAMESPACE", "FLOW", "REV", "STATE", "STARTED", "DURATION"]
    assert rows[1].split()[0] == failed["id"] and "FAILED" in rows[1]
    assert rows[-1] == "2 of 2 execution(s)"
    ran = await kestrel(
        live_server, "execution", "list", "--namespace", namespace, "--state", "failed", "--json"
    )
    assert [e["id"] for e in ran.json()["results"]] == [failed["id"]]

    ran = await kestrel(live_server, "execution", "replay", failed["id"], "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["originalId"] == failed["id"]
    boom = next(r for r in failed["taskRunList"] if r["taskId"] == "boom")
    ran = await kestrel(live_server, "execution", "replay", failed["id"], "--task-run", boom["id"])
    assert ran.code == 0 and f"replay of {failed['id']}" in ran.out
    ran = await kestrel(live_server, "execution", "restart", failed["id"])
    assert ran.code == 0, ran.err
    await wait_state(api, failed["id"])

    paused = (await api.post(f"/api/v1/executions/{namespace}/paused", json={})).json()
    await wait_state(api, paused["id"], {"PAUSED"})
    ran = await kestrel(live_server, "execution", "resume", paused["id"])
    assert ran.code == 0, ran.err
    assert (await wait_state(api, paused["id"]))["state"]["current"] == "SUCCESS"
    ran = await kestrel(live_server, "execution", "resume", paused["id"])
    assert ran.code == 1 and "not PAUSED" in ran.err

    await api.put(
        f"/api/v1/flows/{namespace}/sleepy",
        content=sleepy_flow(namespace, sleep="PT30S"),
        headers={"Content-Type": "application/x-yaml"},
    )
    long = (await api.post(f"/api/v1/executions/{namespace}/sleepy", json={})).json()
    await wait_state(api, long["id"], {"RUNNING"})
    ran = await kestrel(live_server, "execution", "kill", long["id"])
    assert ran.code == 0, ran.err
    assert (await wait_state(api, long["id"]))["state"]["current"] == "KILLED"

    ran = await kestrel(live_server, "execution", "get", "nope")
    assert ran.code == 1 and "execution nope not found" in ran.err


async def test_trigger_and_backfill_commands(
    api: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    await deploy(api, schedule_flow(namespace))
    ran = await kestrel(live_server, "trigger", "list")
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[0].split()[:5] == ["NAMESPACE", "FLOW", "TRIGGER", "TYPE", "STATUS"]
    assert any(
        line.split()[:3] == [namespace, "scheduled", "every"] for line in ran.out.splitlines()
    )
    ran = await kestrel(live_server, "trigger", "list", "--json")
    assert any(t["namespace"] == namespace for t in ran.json())

    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = (hour - dt.timedelta(hours=2)).isoformat()
    ran = await kestrel(
        live_server, "backfill", namespace, "scheduled", "--start", start, "--end", hour.isoformat()
    )
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[-1] == "2 execution(s) created"
    ran = await kestrel(live_server, "backfill", namespace, "nope", "--start", start, "--json")
    assert ran.code == 1 and "not found" in ran.err
    await api.delete(f"/api/v1/flows/{namespace}/scheduled")


async def test_client_errors(live_server: LiveServer) -> None:
    ran = await kestrel(live_server, "flow", "list", token=False)
    assert ran.code == 1 and "missing API token" in ran.err
    url = f"http://127.0.0.1:{free_port()}"
    ran = await kestrel(None, "execution", "list", server=url)
    assert ran.code == 1
    assert f"cannot reach the Kestrel server at {url}" in ran.err
    assert "Traceback" not in ran.err
