"""Every state history is in time order: a property checked over many real executions.

Task runs used to be dated CREATED when their creation was written (behind, batched),
after they had already entered RUNNING: negative durations (``-PT0.000772S``). Here many
executions of flows with inline, runnable, looping, parallel, failing and retried tasks
run through the real server, and for every execution and every task run the history's
dates never go back, it starts with CREATED, and no duration is negative.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest

from tests.gateway._flows import deploy, wait_state

pytestmark = pytest.mark.integration

RUNS_PER_FLOW = 12


def shapes(namespace: str) -> dict[str, str]:
    return {
        "mixed": f"""\
id: mixed
namespace: {namespace}
tasks:
  - {{id: first, type: core.Log, message: start}}
  - id: work
    type: python.Function
    function: tests.runtime.flowfuncs:echo
    kwargs: {{n: 1}}
  - id: each
    type: flow.ForEach
    values: [a, b, c]
    tasks:
      - {{id: inner, type: core.Return, value: "{{{{ taskrun.value }}}}"}}
  - id: both
    type: flow.Parallel
    tasks:
      - {{id: left, type: core.Log, message: left}}
      - {{id: right, type: core.Return, value: right}}
""",
        "failing": f"""\
id: failing
namespace: {namespace}
tasks:
  - id: boom
    type: flow.Fail
    errorMessage: boom
    retry: {{type: constant, interval: PT0S, maxAttempts: 2}}
errors:
  - {{id: handler, type: core.Log, message: handled}}
""",
    }


def _dates(history: list[dict[str, Any]]) -> list[dt.datetime]:
    return [dt.datetime.fromisoformat(h["date"]) for h in history]


def assert_ordered(where: str, state: dict[str, Any]) -> None:
    history = state["histories"]
    dates = _dates(history)
    assert dates == sorted(dates), f"{where}: history out of order: {history}"
    assert not str(state.get("duration") or "").startswith("-"), f"{where}: {state}"


async def test_every_state_history_is_monotonic(api: httpx.AsyncClient, namespace: str) -> None:
    for source in shapes(namespace).values():
        await deploy(api, source)

    async def start(flow_id: str) -> str:
        response = await api.post(f"/api/v1/executions/{namespace}/{flow_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    ids = await asyncio.gather(
        *(start(flow_id) for flow_id in shapes(namespace) for _ in range(RUNS_PER_FLOW))
    )
    task_runs = 0
    for execution_id in ids:
        execution = await wait_state(api, execution_id, within=60)
        assert_ordered(f"execution {execution_id}", execution["state"])
        for run in execution["taskRunList"]:
            where = f"task run {run['taskId']} of {execution_id}"
            assert_ordered(where, run["state"])
            assert run["state"]["histories"][0]["state"] == "CREATED", where
            task_runs += 1
    assert task_runs >= RUNS_PER_FLOW * 10
