"""Kestra behaviours that need the execution service and a real Postgres."""

from __future__ import annotations

from actors._service import ExecutionService
from actors._store._records import Execution
from flows import State
from tests.polling import eventually

K = "io.kestra.plugin.core"

CHILD = f"""
id: kchild
namespace: tests.kestra
tasks:
  - {{id: made, type: {K}.debug.Return, format: "made it"}}
"""

PARENT = f"""
id: kparent
namespace: tests.kestra
inputs:
  - {{id: target, type: STRING, defaults: kchild}}
tasks:
  - id: call
    type: {K}.flow.Subflow
    namespace: tests.kestra
    flowId: "{{{{ inputs.target }}}}"
    outputs:
      extracted: "{{{{ outputs.made.value ?? outputs.missing.value }}}}"
  - {{id: use, type: {K}.debug.Return, format: "{{{{ outputs.call.outputs.extracted }}}}"}}
"""


async def test_subflow_outputs_are_rendered_in_the_child_and_flow_id_is_templated(
    service: ExecutionService,
) -> None:
    await service.deploy(CHILD)
    parent = await service.deploy(PARENT)
    created = await service.create(parent, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
    found = await service.store.execution_detail(created.execution.id)
    assert found is not None
    use = next(d for d in found.task_runs if d.task_run.task_id == "use")
    assert use.outputs == {"value": "made it"}
    call = next(d for d in found.task_runs if d.task_run.task_id == "call")
    assert call.outputs is not None
    child = await service.store.get_execution(call.outputs["executionId"])
    assert child is not None
    assert child.labels["system.correlationId"] == created.execution.id


FLAKY = f"""
id: again
namespace: tests.kestra
tasks:
  - id: fail
    type: {K}.execution.Fail
    retry:
      behavior: CREATE_NEW_EXECUTION
      type: constant
      maxAttempt: 3
      interval: PT0.05S
"""


async def test_create_new_execution_retries_in_new_executions(service: ExecutionService) -> None:
    flow = await service.deploy(FLAKY)
    created = await service.create(flow, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.RETRIED

    async def chain() -> list[Execution] | None:
        page = await service.store.search_executions(namespace="tests.kestra", flow_id="again")
        found = list(page.items)
        return found if len(found) == 3 and all(e.state.terminal for e in found) else None

    found = await eventually(chain, within=20, what="three terminal executions")
    assert sorted(e.state.value for e in found) == ["FAILED", "RETRIED", "RETRIED"]
    assert {e.labels.get("system.attemptNumber", "1") for e in found} == {"1", "2", "3"}
    assert {e.labels.get("system.correlationId", e.id) for e in found} == {created.execution.id}


KV = """
id: kvflow
namespace: tests.kestra
tasks:
  - {id: put, type: io.kestra.plugin.core.kv.Set, key: greeting, value: {"who": "Ada"}}
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('greeting').who }}|{{ kv('missing', errorOnMissing=false) ?? 'none' }}"
"""


async def test_kv_function_reads_the_store_in_templates(service: ExecutionService) -> None:
    flow = await service.deploy(KV)
    created = await service.create(flow, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
    found = await service.store.execution_detail(created.execution.id)
    assert found is not None
    read = next(d for d in found.task_runs if d.task_run.task_id == "read")
    assert read.outputs == {"value": "Ada|none"}


LABELS = """
id: labelled
namespace: tests.kestra
labels: {team: data}
tasks:
  - id: tag
    type: io.kestra.plugin.core.execution.Labels
    labels: {stage: "{{ 'done' }}"}
"""


async def test_labels_task_writes_the_execution_labels(service: ExecutionService) -> None:
    flow = await service.deploy(LABELS)
    created = await service.create(flow, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
    stored = await service.store.get_execution(created.execution.id)
    assert stored is not None
    assert stored.labels.get("stage") == "done"


STATE = """
id: stateful
namespace: tests.kestra
tasks:
  - {id: set, type: io.kestra.plugin.core.state.Set, name: counts, data: {seen: "1"}}
  - {id: more, type: io.kestra.plugin.core.state.Set, name: counts, data: {other: "2"}}
  - {id: get, type: io.kestra.plugin.core.state.Get, name: counts}
  - {id: delete, type: io.kestra.plugin.core.state.Delete, name: counts}
  - {id: again, type: io.kestra.plugin.core.state.Get, name: counts}
"""


async def test_state_store_tasks_keep_a_document_per_flow(service: ExecutionService) -> None:
    flow = await service.deploy(STATE)
    created = await service.create(flow, {})
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS
    found = await service.store.execution_detail(created.execution.id)
    assert found is not None
    outputs = {d.task_run.task_id: d.outputs for d in found.task_runs}
    assert outputs["get"] == {"count": 2, "data": {"seen": "1", "other": "2"}}
    assert outputs["delete"] == {"deleted": True}
    assert outputs["again"] == {"count": 0, "data": {}}
