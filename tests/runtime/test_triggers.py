"""Trigger runners and hosts against a real Postgres: schedules, flow triggers, dead letters,
reconnection with backoff, redeploys. Connector listeners have their own tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from actors._listener_host import TriggerHost
from actors._schedule import backfill, ticks_between
from actors._service import ExecutionService
from actors._store._records import TriggerState
from actors._triggers import Backoff, RunnerContext, TriggerStatus
from flows import (
    ConnectorError,
    Delivery,
    Event,
    Flow,
    Listener,
    PoisonMessage,
    State,
    Trigger,
)
from flows._triggers_core import Schedule
from tests.runtime.support import until

pytestmark = pytest.mark.integration


async def executions(service: ExecutionService, flow_id: str, **kw: Any) -> list[Any]:
    page = await service.store.search_executions(
        namespace="tests.triggers", flow_id=flow_id, limit=500, **kw
    )
    return list(page.items)


def flow_text(flow_id: str, triggers: str, extra: str = "") -> str:
    return (
        f"id: {flow_id}\nnamespace: tests.triggers\n{extra}"
        "tasks:\n  - {id: log, type: core.Log, message: 'tick {{ trigger | tojson }}'}\n"
        f"triggers:\n{triggers}"
    )


async def test_six_field_cron_fires_every_second(service: ExecutionService) -> None:
    flow = await service.deploy(
        flow_text("every-second", "  - {id: tick, type: trigger.Schedule, cron: '* * * * * *'}\n")
    )
    async with TriggerHost(service) as host:
        await host.deploy(flow)
        found = await until(lambda: _at_least(service, "every-second", 2), within=15)
    dates = [e.trigger["date"] for e in found]
    assert len(set(dates)) == len(dates)
    for e in found:
        assert set(e.trigger) == {"date", "next", "previous"}
        assert e.labels["kestrel.trigger"] == "tick"
        tick = dt.datetime.fromisoformat(e.trigger["date"])
        assert tick.microsecond == 0
        assert dt.datetime.fromisoformat(e.trigger["next"]) - tick == dt.timedelta(seconds=1)


async def _at_least(service: ExecutionService, flow_id: str, n: int) -> list[Any] | None:
    found = await executions(service, flow_id)
    return found if len(found) >= n else None


@pytest.mark.parametrize(("policy", "expected"), [("ALL", 10), ("LAST", 1), ("NONE", 0)])
async def test_missed_schedules_after_a_stop(
    service: ExecutionService, policy: str, expected: int
) -> None:
    flow_id = f"nightly-{policy.lower()}"
    flow = await service.deploy(
        flow_text(
            flow_id,
            f"  - {{id: nightly, type: trigger.Schedule, cron: '0 3 * * *', recoverMissedSchedules: {policy}}}\n",
        )
    )
    trigger = flow.triggers[0]
    assert isinstance(trigger, Schedule)
    now = dt.datetime.now(dt.UTC)
    # The last tick recorded before a stop of ten days: ten ticks were missed.
    last = list(ticks_between(trigger, now - dt.timedelta(days=11), now))[-11]
    await service.store.save_trigger_state(
        TriggerState(
            namespace="tests.triggers",
            flow_id=flow_id,
            trigger_id="nightly",
            cursor={"last": last.isoformat()},
        )
    )
    async with TriggerHost(service) as host:
        await host.deploy(flow)
        runner = host.runner("tests.triggers", flow_id, "nightly")
        assert runner is not None
        await until(lambda: _running(runner))
        if expected:
            await until(lambda: _at_least(service, flow_id, expected))
        state = await until(lambda: _cursor_after(service, flow_id, last, expected))
    found = await executions(service, flow_id)
    assert len(found) == expected
    missed = list(ticks_between(trigger, last + dt.timedelta(seconds=1), now))
    assert len(missed) == 10
    assert sorted(e.trigger["date"] for e in found) == [
        t.isoformat() for t in missed[len(missed) - expected :]
    ]
    assert state.cursor["last"] == (missed[-1].isoformat() if expected else last.isoformat())


async def _running(runner: Any) -> bool:
    return bool(runner.status is TriggerStatus.RUNNING)


async def _cursor_after(
    service: ExecutionService, flow_id: str, last: dt.datetime, expected: int
) -> Any:
    state = await service.store.get_trigger_state("tests.triggers", flow_id, "nightly")
    if state is None or not isinstance(state.cursor, dict):
        return None
    moved = dt.datetime.fromisoformat(state.cursor["last"]) > last
    return state if moved == bool(expected) else None


async def test_backfill_over_ten_intervals_creates_ten_once(service: ExecutionService) -> None:
    flow = await service.deploy(
        flow_text("backfilled", "  - {id: daily, type: trigger.Schedule, cron: '@daily'}\n")
    )
    trigger = flow.triggers[0]
    assert isinstance(trigger, Schedule)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=10)
    ids = await backfill(service, flow, trigger, start, end)
    assert len(set(ids)) == 10
    again = await backfill(service, flow, trigger, start, end)
    assert again == ids
    for execution_id in ids:
        assert (await service.wait(execution_id, within=20)).state is State.SUCCESS
    found = await executions(service, "backfilled")
    assert sorted(e.trigger["date"] for e in found) == [
        (start + dt.timedelta(days=d)).isoformat() for d in range(10)
    ]


async def test_flow_trigger_starts_on_upstream_end(service: ExecutionService) -> None:
    upstream = await service.deploy(
        "id: upstream\nnamespace: tests.triggers.up\ntasks:\n  - {id: x, type: core.Log, message: up}\n"
    )
    downstream = await service.deploy(
        flow_text(
            "downstream",
            "  - {id: after-up, type: trigger.Flow, namespace: tests.triggers, flowId: upstream, states: [SUCCESS]}\n",
        )
    )
    async with TriggerHost(service) as host:
        await host.deploy(downstream)
        runner = host.runner("tests.triggers", "downstream", "after-up")
        assert runner is not None
        await until(lambda: _running(runner))
        created = await service.create(upstream, {})
        assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
        found = await until(lambda: _at_least(service, "downstream", 1))
    assert found[0].trigger == {
        "executionId": created.execution.id,
        "namespace": "tests.triggers.up",
        "flowId": "upstream",
        "flowRevision": upstream.revision,
        "state": "SUCCESS",
    }


class ScriptedListener(Listener):
    """A listener that plays a script: connection failures first, then deliveries."""

    def __init__(self, deliveries: list[Delivery], fail_connects: int = 0) -> None:
        self.deliveries = deliveries
        self.fail_connects = fail_connects
        self.connects = 0
        self.acked: list[Delivery] = []

    async def connect(self) -> None:
        self.connects += 1
        if self.connects <= self.fail_connects:
            raise ConnectorError(f"refused (attempt {self.connects})")

    async def events(self) -> AsyncIterator[Delivery]:
        for delivery in self.deliveries:
            if delivery not in self.acked:
                yield delivery
        await asyncio.Event().wait()  # a quiet source

    async def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery)

    async def close(self) -> None:
        return None


def scripted_host(service: ExecutionService, listener: ScriptedListener) -> TriggerHost:
    def factory(trigger: Trigger, ctx: RunnerContext) -> Listener:
        return listener

    return TriggerHost(service, {"trigger.Schedule": factory}, Backoff(initial_s=0.05, max_s=0.2))


async def deploy_scripted(service: ExecutionService, flow_id: str, inputs: str = "") -> Flow:
    return await service.deploy(
        flow_text(
            flow_id,
            f"  - {{id: src, type: trigger.Schedule, cron: '0 0 1 1 *'{inputs}}}\n",
            extra="inputs:\n  - {id: n, type: INT, required: false}\n",
        )
    )


def event(n: int) -> Event:
    return Event(
        dedupe_key=f"test:{n}", variables={"n": n}, raw=str(n).encode(), source=f"test@{n}"
    )


async def test_poison_goes_to_dead_letters_and_the_rest_is_processed(
    service: ExecutionService,
) -> None:
    poison = PoisonMessage(
        reason="value is not JSON: Expecting value", raw=b"{oops", source="test@1"
    )
    listener = ScriptedListener([event(0), poison, event(2)])
    flow = await deploy_scripted(service, "with-poison")
    async with scripted_host(service, listener) as host:
        await host.deploy(flow)
        await until(lambda: _acked(listener, 3))
    letters = await service.store.list_dead_letters(flow_id="with-poison")
    assert [(d.reason, d.payload, d.trigger_id) for d in letters] == [
        (poison.reason, b"{oops", "src")
    ]
    found = await executions(service, "with-poison")
    assert sorted(e.trigger["n"] for e in found) == [0, 2]


async def _acked(listener: ScriptedListener, n: int) -> bool:
    return len(listener.acked) >= n


async def test_execution_that_cannot_be_created_is_dead_lettered(service: ExecutionService) -> None:
    listener = ScriptedListener([event(0)])
    flow = await deploy_scripted(service, "bad-inputs", inputs=", inputs: {n: not-a-number}")
    async with scripted_host(service, listener) as host:
        await host.deploy(flow)
        await until(lambda: _acked(listener, 1))
    (letter,) = await service.store.list_dead_letters(flow_id="bad-inputs")
    assert "input 'n'" in letter.reason
    assert letter.payload == b"0"
    assert await executions(service, "bad-inputs") == []


async def test_reconnects_with_backoff_and_redelivery_is_deduplicated(
    service: ExecutionService,
) -> None:
    listener = ScriptedListener([event(0), event(1)], fail_connects=2)
    flow = await deploy_scripted(service, "flaky-source")
    async with scripted_host(service, listener) as host:
        await host.deploy(flow)
        await until(lambda: _acked(listener, 2))
        (info,) = host.infos()
        assert info.status is TriggerStatus.RUNNING
        assert info.reconnects == 2
        assert listener.connects == 3
        listener.acked.clear()  # the source forgets the acks: everything comes again
        await host.undeploy("tests.triggers", "flaky-source")
        await host.deploy(flow)
        await until(lambda: _acked(listener, 2))
        (info,) = host.infos()
        assert info.duplicates == 2 and info.created == 0
    assert len(await executions(service, "flaky-source")) == 2


async def test_redeploy_restarts_only_changed_flows(service: ExecutionService) -> None:
    listener = ScriptedListener([])
    flow = await deploy_scripted(service, "redeployed")
    async with scripted_host(service, listener) as host:
        await host.deploy(flow)
        first = host.runner("tests.triggers", "redeployed", "src")
        await host.deploy(flow)
        assert host.runner("tests.triggers", "redeployed", "src") is first
        changed = await service.deploy(
            flow_text(
                "redeployed",
                "  - {id: src, type: trigger.Schedule, cron: '0 0 2 1 *'}\n",
                extra="inputs:\n  - {id: n, type: INT, required: false}\n",
            )
        )
        assert changed.revision == (flow.revision or 0) + 1
        await host.deploy(changed)
        second = host.runner("tests.triggers", "redeployed", "src")
        assert second is not first and second is not None
        assert second.flow.revision == changed.revision
        assert first is not None and first.status is TriggerStatus.STOPPED


def test_trigger_properties_are_rendered_with_secrets_but_not_event_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from actors._triggers import rendered_trigger
    from flows import ExpressionError, parse_flow

    monkeypatch.setenv("KESTREL_SECRET_NATS_PASSWORD", "s3cret")
    flow = parse_flow(
        "id: f\nnamespace: tests.triggers\nvariables: {host: 127.0.0.1}\n"
        "tasks:\n  - {id: t, type: core.Log, message: x}\n"
        "triggers:\n  - id: src\n    type: nats.RealtimeTrigger\n    url: 'nats://{{ vars.host }}:4222'\n"
        "    subject: orders\n    username: app\n    password: \"{{ secret('NATS_PASSWORD') }}\"\n"
    )
    trigger = rendered_trigger(flow, flow.triggers[0])
    assert trigger.password == "s3cret"  # type: ignore[attr-defined]
    assert trigger.url == "nats://127.0.0.1:4222"  # type: ignore[attr-defined]
    leaky = parse_flow(
        "id: g\nnamespace: tests.triggers\ntasks:\n  - {id: t, type: core.Log, message: x}\n"
        'triggers:\n  - {id: src, type: nats.RealtimeTrigger, subject: orders, token: "{{ trigger.value }}"}\n'
    )
    with pytest.raises(ExpressionError, match="trigger"):
        rendered_trigger(leaky, leaky.triggers[0])


async def test_schedules_never_overlap(service: ExecutionService) -> None:
    source = (
        "id: slow-tick\nnamespace: tests.triggers\n"
        "tasks:\n  - {id: nap, type: flow.Sleep, duration: PT1.6S}\n"
        "triggers:\n  - {id: tick, type: trigger.Schedule, cron: '* * * * * *'}\n"
    )
    flow = await service.deploy(source)
    async with TriggerHost(service) as host:
        await host.deploy(flow)
        await until(lambda: _ended_at_least(service, "slow-tick", 2), within=20)
    found = sorted(await executions(service, "slow-tick"), key=lambda e: e.created_at)
    ended = [e for e in found if e.ended_at is not None]
    for before, after in itertools.pairwise(ended):
        assert after.created_at >= before.ended_at  # the next run started after the previous ended
    ticks = [dt.datetime.fromisoformat(e.trigger["date"]) for e in found]
    assert min(b - a for a, b in itertools.pairwise(ticks)) >= dt.timedelta(seconds=2)


async def _ended_at_least(service: ExecutionService, flow_id: str, n: int) -> bool:
    found = await executions(service, flow_id)
    return sum(e.ended_at is not None for e in found) >= n
