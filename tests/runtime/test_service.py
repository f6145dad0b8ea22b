"""The execution service against a real Postgres: subflows, replay, restart, pause, kill."""

from __future__ import annotations

import datetime as dt
import itertools
import time

import pytest

from actors._service import ExecutionService
from actors._store._records import ExecutionDetail
from flows import State
from tests.runtime.support import until

pytestmark = pytest.mark.integration


async def detail(service: ExecutionService, execution_id: str) -> ExecutionDetail:
    found = await service.store.execution_detail(execution_id)
    assert found is not None
    return found


def runs(found: ExecutionDetail) -> list[tuple[str, str | None, State, int]]:
    return [
        (d.task_run.task_id, d.task_run.value, d.task_run.state, len(d.attempts))
        for d in found.task_runs
    ]


CHILD = """
id: child
namespace: tests.service
inputs:
  - {id: who, type: STRING}
tasks:
  - {id: hello, type: core.Return, value: "hi {{ inputs.who }}"}
outputs:
  - {id: greeting, type: STRING, value: "{{ outputs.hello.value }}"}
"""

PARENT = """
id: parent
namespace: tests.service
tasks:
  - id: call
    type: flow.Subflow
    namespace: tests.service
    flowId: child
    inputs: {who: parent}
  - {id: use, type: core.Return, value: "child said {{ outputs.call.outputs.greeting }}"}
"""


async def test_subflow_waits_and_passes_outputs(service: ExecutionService) -> None:
    await service.deploy(CHILD)
    parent = await service.deploy(PARENT)
    created = await service.create(parent, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
    found = await detail(service, created.execution.id)
    call = next(d for d in found.task_runs if d.task_run.task_id == "call")
    assert call.outputs is not None and call.outputs["state"] == "SUCCESS"
    child = await service.store.get_execution(call.outputs["executionId"])
    assert child is not None
    assert child.parent_id == created.execution.id
    assert child.parent_task_run_id == call.task_run.id
    assert child.outputs == {"greeting": "hi parent"}
    use = next(d for d in found.task_runs if d.task_run.task_id == "use")
    assert use.outputs == {"value": "child said hi parent"}


async def test_failed_subflow_fails_the_parent_unless_told_otherwise(
    service: ExecutionService,
) -> None:
    await service.deploy(
        "id: broken\nnamespace: tests.service\ntasks:\n  - {id: f, type: flow.Fail}\n"
    )
    strict = await service.deploy(
        "id: strict\nnamespace: tests.service\ntasks:\n  - {id: call, type: flow.Subflow, namespace: tests.service, flowId: broken}\n"
    )
    lenient = await service.deploy(
        "id: lenient\nnamespace: tests.service\ntasks:\n  - {id: call, type: flow.Subflow, namespace: tests.service, flowId: broken, transmitFailed: false}\n"
    )
    first = await service.create(strict, {})
    second = await service.create(lenient, {})
    assert (await service.wait(first.execution.id, within=20)).state is State.FAILED
    assert (await service.wait(second.execution.id, within=20)).state is State.WARNING


async def test_kill_cascades_to_subflows(service: ExecutionService) -> None:
    await service.deploy(
        "id: sleepy\nnamespace: tests.service\ntasks:\n  - {id: nap, type: flow.Sleep, duration: PT30S}\n"
    )
    parent = await service.deploy(
        "id: waits\nnamespace: tests.service\ntasks:\n  - {id: call, type: flow.Subflow, namespace: tests.service, flowId: sleepy}\n"
    )
    created = await service.create(parent, {})

    async def child_running() -> str | None:
        page = await service.store.search_executions(namespace="tests.service", flow_id="sleepy")
        running = [e for e in page.items if e.state is State.RUNNING]
        return running[0].id if running else None

    child_id = await until(child_running)
    assert service.kill(created.execution.id)
    assert (await service.wait(created.execution.id, within=20)).state is State.KILLED
    assert (await service.wait(child_id, within=20)).state is State.KILLED


REPLAYED = """
id: pipeline
namespace: tests.service
inputs:
  - {id: n, type: INT}
tasks:
  - {id: extract, type: core.Return, value: "{{ inputs.n * 2 }}"}
  - id: each
    type: flow.ForEach
    values: [a, b]
    tasks:
      - {id: transform, type: core.Return, value: "{{ taskrun.value }}-{{ outputs.extract.value }}"}
  - {id: load, type: core.Return, value: "{{ outputs.transform['b'].value }}"}
  - {id: report, type: core.Log, message: "loaded {{ outputs.load.value }}"}
"""


async def test_replay_from_a_middle_task_reuses_earlier_outputs(service: ExecutionService) -> None:
    flow = await service.deploy(REPLAYED)
    created = await service.create(flow, {"n": 21}, trigger={"source": "test"})
    original_id = created.execution.id
    assert (await service.wait(original_id, within=20)).state is State.SUCCESS
    original = await detail(service, original_id)
    load = next(d for d in original.task_runs if d.task_run.task_id == "load")
    new_id = await service.replay(original_id, load.task_run.id)
    assert (await service.wait(new_id, within=20)).state is State.SUCCESS
    replay = await detail(service, new_id)
    assert replay.execution.original_id == original_id
    assert replay.execution.inputs == original.execution.inputs
    assert replay.execution.trigger == {"source": "test"}
    assert replay.execution.flow_revision == original.execution.flow_revision
    assert [r[:3] for r in runs(replay)] == [r[:3] for r in runs(original)]
    copied = {d.task_run.task_id: d for d in replay.task_runs}
    # Task runs before `load` were copied (same outputs, their attempts carried over) ...
    assert copied["extract"].outputs == {"value": 42}
    assert copied["extract"].attempts[0].started_at == original.task_runs[0].attempts[0].started_at
    # ... and `load` onwards ran again, in the new execution.
    assert copied["load"].outputs == {"value": "b-42"}
    assert copied["load"].attempts[0].started_at > load.attempts[0].started_at
    assert [line.message for line in replay.logs] == ["loaded b-42"]


async def test_restart_reruns_only_the_failed_task_runs(service: ExecutionService) -> None:
    key = f"restart-{time.monotonic_ns()}"
    flow = await service.deploy(
        f"""
id: restartable
namespace: tests.service
tasks:
  - {{id: first, type: python.Function, function: "tests.runtime.flowfuncs:count", kwargs: {{key: {key}-first}}}}
  - {{id: flaky, type: python.Function, function: "tests.runtime.flowfuncs:fail_times", kwargs: {{key: {key}, times: 1}}}}
  - {{id: last, type: core.Log, message: done}}
"""
    )
    created = await service.create(flow, {})
    eid = created.execution.id
    assert (await service.wait(eid, within=20)).state is State.FAILED
    assert await service.restart(eid)
    assert (await service.wait(eid, within=20)).state is State.SUCCESS
    found = await detail(service, eid)
    assert runs(found) == [
        ("first", None, State.SUCCESS, 1),
        ("flaky", None, State.SUCCESS, 2),
        ("last", None, State.SUCCESS, 1),
    ]
    history = [e.state for e in found.execution.state_history]
    assert history.count(State.FAILED) == 1 and history[-1] is State.SUCCESS


async def test_pause_and_resume_through_the_service(service: ExecutionService) -> None:
    flow = await service.deploy(
        "id: approval\nnamespace: tests.service\ntasks:\n  - {id: wait, type: flow.Pause}\n  - {id: go, type: core.Log, message: approved}\n"
    )
    created = await service.create(flow, {})
    eid = created.execution.id

    async def paused() -> bool:
        found = await service.store.get_execution(eid)
        return found is not None and found.state is State.PAUSED

    await until(paused)
    assert service.resume(eid)
    assert (await service.wait(eid, within=20)).state is State.SUCCESS


def concurrency_flow(flow_id: str, behavior: str) -> str:
    return (
        f"id: {flow_id}\nnamespace: tests.service\nconcurrency: {{limit: 1, behavior: {behavior}}}\n"
        "tasks:\n  - {id: nap, type: flow.Sleep, duration: PT0.3S}\n"
    )


async def test_concurrency_queue_runs_one_at_a_time(service: ExecutionService) -> None:
    flow = await service.deploy(concurrency_flow("queued", "QUEUE"))
    ids = [(await service.create(flow, {})).execution.id for _ in range(3)]
    for eid in ids:
        assert (await service.wait(eid, within=30)).state is State.SUCCESS
    spans = []
    queued = 0
    for eid in ids:
        found = await detail(service, eid)
        states = [e.state for e in found.execution.state_history]
        start = next(e.date for e in found.execution.state_history if e.state is State.RUNNING)
        spans.append((start, found.execution.ended_at))
        assert states[-1] is State.SUCCESS
        queued += State.QUEUED in states
    assert queued == 2
    spans.sort()
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and start >= end - dt.timedelta(milliseconds=50)


@pytest.mark.parametrize(
    ("behavior", "state"), [("CANCEL", State.CANCELLED), ("FAIL", State.FAILED)]
)
async def test_concurrency_cancel_and_fail(
    service: ExecutionService, behavior: str, state: State
) -> None:
    flow = await service.deploy(concurrency_flow(f"limited-{behavior.lower()}", behavior))
    first = (await service.create(flow, {})).execution.id
    second = (await service.create(flow, {})).execution.id
    assert (await service.wait(second, within=30)).state is state
    assert (await service.wait(first, within=30)).state is State.SUCCESS
