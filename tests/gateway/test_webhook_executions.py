"""Webhook executions run in the server process: owned there, controlled, and recovered.

The server answers a webhook once the execution is durably created under its own lease;
kill and resume reach it through the API, a lapsed lease hands it to a pool actor, and
the flow it runs is always the current revision.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.gateway._flows import TERMINAL, deploy, wait_state
from tests.gateway.conftest import LiveServer
from tests.polling import eventually

pytestmark = pytest.mark.integration

KEY = "hook-key-0123456789"


def hooked(namespace: str, flow_id: str, tasks: str, extra: str = "", trigger: str = "") -> str:
    return f"""\
id: {flow_id}
namespace: {namespace}
{extra}tasks:
{tasks}
triggers:
  - id: hook
    type: trigger.Webhook
    key: {KEY}
{trigger}"""


SLEEP_TASKS = """\
  - id: first
    type: core.Log
    message: hello
  - id: nap
    type: flow.Sleep
    duration: {sleep}
  - id: last
    type: core.Log
    message: bye
"""


async def fire(client: httpx.AsyncClient, namespace: str, flow_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/api/v1/executions/webhook/{namespace}/{flow_id}/{KEY}", json={"x": 1}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def lease_owner(live_server: LiveServer, execution_id: str) -> str:
    lease = await live_server.runtime.store.get_lease("execution", execution_id)
    assert lease is not None
    return lease.owner


async def until(check: Any, within: float = 20, what: str = "condition") -> None:
    await eventually(check, within, what=what, interval=0.05)


async def test_webhook_execution_is_owned_by_the_server_and_killed_through_the_api(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    await deploy(api, hooked(namespace, "slow", SLEEP_TASKS.format(sleep="PT30S")))
    execution = await fire(anonymous, namespace, "slow")
    assert execution["state"]["current"] in {"CREATED", "RUNNING"}
    assert await lease_owner(live_server, execution["id"]) == live_server.runtime.local.owner
    assert execution["id"] in live_server.runtime.local.running_ids()
    await wait_state(api, execution["id"], {"RUNNING"})
    killed = await api.delete(f"/api/v1/executions/{execution['id']}/kill")
    assert killed.status_code == 200, killed.text
    final = await wait_state(api, execution["id"])
    assert final["state"]["current"] == "KILLED"
    nap = next(r for r in final["taskRunList"] if r["taskId"] == "nap")
    assert nap["state"]["current"] == "KILLED"


async def test_webhook_execution_paused_and_resumed_through_the_api(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    tasks = (
        "  - id: wait\n    type: flow.Pause\n  - id: after\n    type: core.Log\n    message: go\n"
    )
    await deploy(api, hooked(namespace, "gated", tasks))
    execution = await fire(anonymous, namespace, "gated")
    await wait_state(api, execution["id"], {"PAUSED"})
    assert await lease_owner(live_server, execution["id"]) == live_server.runtime.local.owner
    resumed = await api.post(f"/api/v1/executions/{execution['id']}/resume")
    assert resumed.status_code == 200, resumed.text
    assert (await wait_state(api, execution["id"]))["state"]["current"] == "SUCCESS"


async def test_lapsed_server_lease_is_resumed_by_a_pool_actor(
    api: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    live_server: LiveServer,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = live_server.runtime
    await deploy(api, hooked(namespace, "orphan", SLEEP_TASKS.format(sleep="PT5S")))
    execution = await fire(anonymous, namespace, "orphan")
    lease = await runtime.store.get_lease("execution", execution["id"])
    assert lease is not None and lease.owner == runtime.local.owner
    # The server stalls past its lease (as if it hung or died): it renews no more, and
    # the lease lapses now rather than in a TTL.
    store = runtime.local.store
    renew = store.renew_leases

    async def renew_all_but_this(leases: list[Any], ttl: Any) -> Any:
        return await renew([held for held in leases if held.key != execution["id"]], ttl)

    monkeypatch.setattr(store, "renew_leases", renew_all_but_this)
    assert await runtime.store.release_lease(lease)
    final = await wait_state(api, execution["id"], within=30)
    assert final["state"]["current"] == "SUCCESS"
    owner = await lease_owner(live_server, execution["id"])
    assert owner != runtime.local.owner  # a pool actor (or a listener host) took it over
    assert runtime.pool.handle_for_owner(owner) is not None or "-host-" in owner

    async def dropped_here() -> bool:
        return execution["id"] not in runtime.local.running_ids()

    await until(dropped_here, what="the stale run dropped by the server")
    after = await api.get(f"/api/v1/executions/{execution['id']}")
    assert after.json()["state"]["current"] == "SUCCESS"  # the stale owner's writes were fenced


async def test_webhook_uses_the_current_revision_after_each_change(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    def version(n: int) -> str:
        return hooked(
            namespace, "versioned", f"  - id: say\n    type: core.Log\n    message: v{n}\n"
        )

    await deploy(api, version(1))
    first = await fire(anonymous, namespace, "versioned")
    assert first["flowRevision"] == 1
    updated = await api.put(
        f"/api/v1/flows/{namespace}/versioned",
        content=version(2),
        headers={"Content-Type": "application/x-yaml"},
    )
    assert updated.status_code == 200, updated.text
    second = await fire(anonymous, namespace, "versioned")
    assert second["flowRevision"] == 2
    await wait_state(api, second["id"])
    logs = (await api.get(f"/api/v1/logs/{second['id']}")).json()
    assert [line["message"] for line in logs] == ["v2"]

    # Through the flows folder (the same runtime call): the next webhook sees it at once.
    path = live_server.flows_dir / f"{namespace}.yaml"
    path.write_text(version(3), encoding="utf-8")

    async def at_revision_3() -> bool:
        found = await api.get(f"/api/v1/flows/{namespace}/versioned")
        return found.status_code == 200 and found.json()["revision"] == 3

    try:
        await until(at_revision_3, what="the flows folder sync")
        assert (await fire(anonymous, namespace, "versioned"))["flowRevision"] == 3
    finally:
        path.unlink()

    async def deleted() -> bool:
        return (await api.get(f"/api/v1/flows/{namespace}/versioned")).status_code == 404

    await until(deleted, what="the flow deleted with its file")
    gone = await anonymous.post(f"/api/v1/executions/webhook/{namespace}/versioned/{KEY}", json={})
    assert gone.status_code == 404


async def test_webhook_wait_and_return_outputs(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, namespace: str
) -> None:
    tasks = '  - id: echo\n    type: core.Return\n    value: "got {{ trigger.body.x }}"\n'
    outputs = 'outputs:\n  - {id: said, type: STRING, value: "{{ outputs.echo.value }}"}\n'
    await deploy(
        api,
        hooked(namespace, "answering", tasks, trigger="    wait: true\n    returnOutputs: true\n")
        + outputs,
    )
    response = await anonymous.post(
        f"/api/v1/executions/webhook/{namespace}/answering/{KEY}", json={"x": 5}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"said": "got 5"}

    await deploy(api, hooked(namespace, "waiting", tasks, trigger="    wait: true\n"))
    waited = await fire(anonymous, namespace, "waiting")
    assert waited["state"]["current"] == "SUCCESS"


async def test_webhook_concurrency_limit_and_pool_overflow(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, live_server: LiveServer, namespace: str
) -> None:
    limited = "concurrency:\n  limit: 1\n  behavior: CANCEL\n"
    await deploy(api, hooked(namespace, "single", SLEEP_TASKS.format(sleep="PT30S"), limited))
    running = await fire(anonymous, namespace, "single")
    await wait_state(api, running["id"], {"RUNNING"})
    refused = await fire(anonymous, namespace, "single")
    assert refused["state"]["current"] == "CANCELLED"
    await api.delete(f"/api/v1/executions/{running['id']}/kill")
    assert (await wait_state(api, running["id"]))["state"]["current"] in TERMINAL

    # Over the server's own limit, webhook executions go to the pool.
    await deploy(api, hooked(namespace, "overflow", SLEEP_TASKS.format(sleep="PT0.1S")))
    settings = live_server.runtime.settings
    limit, settings.webhook_executions = settings.webhook_executions, 0
    try:
        elsewhere = await fire(anonymous, namespace, "overflow")
    finally:
        settings.webhook_executions = limit
    owner = await lease_owner(live_server, elsewhere["id"])
    assert live_server.runtime.pool.handle_for_owner(owner) is not None
    assert (await wait_state(api, elsewhere["id"]))["state"]["current"] == "SUCCESS"


async def test_webhook_latencies_and_counters_in_metrics(
    api: httpx.AsyncClient, anonymous: httpx.AsyncClient, namespace: str
) -> None:
    await deploy(
        api, hooked(namespace, "measured", "  - id: say\n    type: core.Log\n    message: hi\n")
    )
    for _ in range(2):
        await fire(anonymous, namespace, "measured")
    text = (await api.get("/metrics")).text
    trigger = f"{namespace}.measured/hook"
    assert f'kestrel_event_to_execution_created_seconds_count{{trigger="{trigger}"}} 2' in text
    assert f'kestrel_trigger_events_total{{trigger="{trigger}"}} 2' in text
    assert f'kestrel_trigger_executions_created_total{{trigger="{trigger}"}} 2' in text
