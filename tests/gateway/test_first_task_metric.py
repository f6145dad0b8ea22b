"""The event → first-task latency reaches /metrics through the `FirstTaskLatency` interceptor.

Both paths: a webhook execution run in the server process, and a Schedule trigger's
executions run in a listener host.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.gateway._flows import deploy, wait_state
from tests.polling import eventually

pytestmark = pytest.mark.integration

METRIC = "kestrel_event_to_first_task_started_seconds_count"


def flow(namespace: str, trigger: str) -> str:
    return f"""\
id: timed
namespace: {namespace}
tasks:
  - {{id: hello, type: core.Log, message: hi}}
  - {{id: work, type: python.Function, function: "tests.runtime.flowfuncs:echo", kwargs: {{x: 1}}}}
triggers:
{trigger}
"""


async def count(api: httpx.AsyncClient, trigger: str) -> int:
    text = (await api.get("/metrics")).text
    found = re.search(rf'^{METRIC}{{trigger="{re.escape(trigger)}"}} (\d+)$', text, re.M)
    return int(found.group(1)) if found else 0


async def test_webhook_executions_report_their_first_task_latency(
    api: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(api, flow(namespace, "  - {id: hook, type: trigger.Webhook, key: timed-key}"))
    hooked = await api.post(f"/api/v1/executions/webhook/{namespace}/timed/timed-key", json={})
    assert hooked.status_code == 200, hooked.text
    assert (await wait_state(api, hooked.json()["id"]))["state"]["current"] == "SUCCESS"
    assert await count(api, f"{namespace}.timed/hook") == 1
    # An API-started execution has no trigger: it adds nothing.
    started = await api.post(f"/api/v1/executions/{namespace}/timed", json={})
    await wait_state(api, started.json()["id"])
    assert await count(api, f"{namespace}.timed/hook") == 1


async def test_trigger_executions_in_a_listener_host_report_it_too(
    api: httpx.AsyncClient, namespace: str
) -> None:
    schedule = '  - {id: tick, type: trigger.Schedule, cron: "*/1 * * * * *", withSeconds: true}'
    await deploy(api, flow(namespace, schedule))
    trigger = f"{namespace}.timed/tick"

    async def observed() -> bool:
        return await count(api, trigger) >= 2

    await eventually(observed, within=20, what="first-task latencies of the schedule")
    await api.delete(f"/api/v1/flows/{namespace}/timed")
