"""The ``kestrel`` commands added for the first hour: flow get, execution start, trigger
disable/enable, backfill with progress, kv and dead letters (real subprocesses)."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest

from actors import DeadLetter
from tests.gateway._flows import deploy, schedule_flow, sleepy_flow
from tests.gateway.conftest import LiveServer
from tests.gateway.test_cli_client import kestrel

pytestmark = pytest.mark.integration

ISO_DURATION = re.compile(r"\bP(T|\d)")


async def test_flow_get_execution_start_and_people_durations(
    live_server: LiveServer, api: httpx.AsyncClient, namespace: str
) -> None:
    source = sleepy_flow(namespace, "greet", sleep="PT0S")
    await deploy(api, source)
    ran = await kestrel(live_server, "flow", "get", namespace, "greet")
    assert ran.code == 0, ran.err
    assert ran.out == source

    ran = await kestrel(live_server, "flow", "list", "--namespace", namespace)
    assert ran.out.splitlines()[1].split()[4] == "-"  # never ran

    ran = await kestrel(
        live_server, "execution", "start", namespace, "greet", "-i", "name=ada", "--wait"
    )
    assert ran.code == 0, ran.err
    assert ": SUCCESS" in ran.out.splitlines()[0]
    assert not ISO_DURATION.search(ran.out), ran.out  # durations are for people
    assert re.search(r"duration \d+(\.\d)? (ms|s)\b", ran.out), ran.out
    execution_id = ran.out.split()[1]
    detail = (await api.get(f"/api/v1/executions/{execution_id}")).json()
    assert detail["inputs"] == {"name": "ada"}

    ran = await kestrel(live_server, "execution", "get", execution_id)
    assert not ISO_DURATION.search(ran.out) and "-PT" not in ran.out, ran.out
    ran = await kestrel(live_server, "flow", "list", "--namespace", namespace)
    header, row = ran.out.splitlines()[:2]
    assert header.split()[4] == "STATUS" and row.split()[4] == "SUCCESS"

    ran = await kestrel(live_server, "execution", "start", namespace, "greet", "-i", "oops")
    assert ran.code == 1 and "--input 'oops': expected NAME=VALUE" in ran.err
    ran = await kestrel(live_server, "flow", "get", namespace, "nope")
    assert ran.code == 1 and "not found" in ran.err


async def test_trigger_disable_enable_and_backfill_progress(
    live_server: LiveServer, api: httpx.AsyncClient, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws its bar as on a terminal
    await deploy(api, schedule_flow(namespace))
    ran = await kestrel(live_server, "trigger", "disable", namespace, "scheduled", "every")
    assert ran.code == 0, ran.err
    assert ran.out.strip() == f"trigger {namespace}.scheduled/every disabled (STOPPED)"
    found = (await api.get("/api/v1/triggers")).json()["results"]
    assert [t["disabled"] for t in found if t["namespace"] == namespace] == [True]
    ran = await kestrel(live_server, "trigger", "list")
    mine = [line for line in ran.out.splitlines() if line.startswith(f"{namespace} ")]
    assert len(mine) == 1 and "STOPPED (disabled)" in mine[0], ran.out
    ran = await kestrel(live_server, "trigger", "enable", namespace, "scheduled", "every")
    assert ran.code == 0 and "enabled" in ran.out, ran.err
    ran = await kestrel(live_server, "trigger", "enable", namespace, "scheduled", "nope")
    assert ran.code == 1 and "has no trigger 'nope'" in ran.err

    hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    start = (hour - dt.timedelta(hours=3)).isoformat()
    ran = await kestrel(
        live_server, "backfill", namespace, "scheduled", "--start", start, "--end", hour.isoformat()
    )
    assert ran.code == 0, ran.err
    assert ran.out.splitlines()[-1] == "3 execution(s) created"
    assert "backfill" in ran.err and "/3" in ran.err, ran.err  # the progress bar, on stderr
    ran = await kestrel(live_server, "backfill", namespace, "scheduled", "--start", start, "--json")
    job = ran.json()
    assert job["state"] == "SUCCESS" and job["done"] == job["total"] >= 3


async def test_kv_commands(live_server: LiveServer, namespace: str) -> None:
    ran = await kestrel(live_server, "kv", "set", namespace, "answer", "42")
    assert ran.code == 0 and "(NUMBER)" in ran.out, ran.err
    ran = await kestrel(live_server, "kv", "set", namespace, "name", "ada", "--ttl", "PT1H")
    assert ran.code == 0 and "(STRING)" in ran.out, ran.err
    ran = await kestrel(live_server, "kv", "get", namespace, "answer")
    assert ran.out.strip() == "42"
    ran = await kestrel(live_server, "kv", "list", namespace)
    rows = [line.split()[:2] for line in ran.out.splitlines()[1:]]
    assert rows == [["answer", "NUMBER"], ["name", "STRING"]]
    ran = await kestrel(live_server, "kv", "delete", namespace, "answer")
    assert ran.code == 0, ran.err
    ran = await kestrel(live_server, "kv", "get", namespace, "answer")
    assert ran.code == 1 and "no key 'answer'" in ran.err


async def test_deadletters_commands(live_server: LiveServer, namespace: str) -> None:
    letter = await live_server.runtime.store.write_dead_letter(
        DeadLetter(
            source=f"test:{namespace}",
            payload=b"not json {",
            reason="cannot decode the payload as JSON",
            attempts=3,
            namespace=namespace,
            flow_id="orders",
            trigger_id="src",
        )
    )
    ran = await kestrel(live_server, "deadletters", "list", "--namespace", namespace)
    assert ran.code == 0, ran.err
    row = ran.out.splitlines()[1]
    assert row.startswith(letter.id) and f"{namespace}.orders/src" in row and "cannot decode" in row
    ran = await kestrel(live_server, "deadletters", "show", letter.id)
    assert ran.code == 0, ran.err
    assert "reason:   cannot decode the payload as JSON" in ran.out
    assert ran.out.rstrip().endswith("not json {")
