"""Flow sources and helpers shared by the gateway tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.polling import eventually

TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}


def sleepy_flow(namespace: str, flow_id: str = "sleepy", sleep: str = "PT0.5S") -> str:
    return f"""\
id: {flow_id}
namespace: {namespace}
description: Log, sleep, log
labels:
  team: data
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: first
    type: core.Log
    message: "hello {{{{ inputs.name }}}}"
  - id: nap
    type: flow.Sleep
    duration: {sleep}
  - id: last
    type: core.Log
    message: bye
"""


def typed_flow(namespace: str, flow_id: str = "typed") -> str:
    return f"""\
id: {flow_id}
namespace: {namespace}
inputs:
  - id: count
    type: INT
  - id: doc
    type: FILE
    required: false
tasks:
  - id: show
    type: core.Log
    message: "count={{{{ inputs.count }}}}"
"""


def webhook_flow(
    namespace: str, key: str, flow_id: str = "hooked", secret: str | None = None
) -> str:
    signature = f"\n    signature:\n      secret: {secret}" if secret else ""
    return f"""\
id: {flow_id}
namespace: {namespace}
tasks:
  - id: show
    type: core.Log
    message: "got {{{{ trigger.body.x }}}}"
triggers:
  - id: hook
    type: trigger.Webhook
    key: {key}{signature}
"""


def schedule_flow(
    namespace: str, flow_id: str = "scheduled", cron: str = "0 * * * *", with_seconds: bool = False
) -> str:
    seconds = "\n    withSeconds: true" if with_seconds else ""
    return f"""\
id: {flow_id}
namespace: {namespace}
tasks:
  - id: tick
    type: core.Log
    message: "tick {{{{ trigger.date }}}}"
triggers:
  - id: every
    type: trigger.Schedule
    cron: "{cron}"{seconds}
"""


def pause_flow(namespace: str, flow_id: str = "paused") -> str:
    return f"""\
id: {flow_id}
namespace: {namespace}
tasks:
  - id: wait
    type: flow.Pause
  - id: after
    type: core.Log
    message: resumed
"""


def failing_flow(namespace: str, flow_id: str = "failing") -> str:
    return f"""\
id: {flow_id}
namespace: {namespace}
tasks:
  - id: ok
    type: core.Log
    message: fine
  - id: boom
    type: flow.Fail
    errorMessage: boom
"""


async def deploy(api: httpx.AsyncClient, source: str) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/flows", content=source, headers={"Content-Type": "application/x-yaml"}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_state(
    api: httpx.AsyncClient, execution_id: str, states: set[str] = TERMINAL, within: float = 15
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        response = await api.get(f"/api/v1/executions/{execution_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body if body["state"]["current"] in states else None

    return await eventually(
        reached, within, what=f"{execution_id} in {sorted(states)}", interval=0.05
    )
