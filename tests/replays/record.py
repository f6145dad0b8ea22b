"""Record executions as JSON histories (``python -m tests.replays.record``).

A history keeps the flow, its inputs and trigger, and the task-run sequence the runtime
produced. `test_recorded_histories` replays each against today's code: the sequence
must not change unless the change is meant (then re-record and review the diff).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.runtime.harness import run_text

HERE = Path(__file__).parent

SOURCES: dict[str, dict[str, Any]] = {
    "order-routing": {
        "inputs": {"threshold": 100},
        "trigger": {"value": {"id": "o-17", "total": 250, "items": ["book", "pen", "lamp"]}},
        "flow": """\
id: order-routing
namespace: tests.replays
inputs:
  - {id: threshold, type: INT}
tasks:
  - id: big
    type: flow.If
    condition: "{{ trigger.value.total > inputs.threshold }}"
    then:
      - {id: flag, type: core.Return, value: "big order {{ trigger.value.id }}"}
    else:
      - {id: small, type: core.Log, message: small}
  - id: per-item
    type: flow.ForEach
    values: "{{ trigger.value['items'] }}"
    tasks:
      - id: both
        type: flow.Parallel
        tasks:
          - {id: price, type: core.Return, value: "{{ taskrun.value | length * 3 }}"}
          - {id: label, type: core.Return, value: "{{ taskrun.value | upper }}"}
  - id: route
    type: flow.Switch
    value: "{{ trigger.value['items'] | length }}"
    cases:
      "3": [{id: three, type: core.Log, message: three items}]
    defaults: [{id: other, type: core.Log, message: other}]
""",
    },
    "etl-with-errors": {
        "inputs": {},
        "trigger": None,
        "flow": """\
id: etl-with-errors
namespace: tests.replays
tasks:
  - id: dag
    type: flow.Dag
    tasks:
      - task: {id: extract, type: core.Return, value: rows}
      - task: {id: check, type: flow.Fail, condition: "{{ outputs.extract.value == 'rows' }}", errorMessage: bad rows, allowFailure: true}
        dependsOn: [extract]
      - task: {id: load, type: core.Log, message: "loading {{ outputs.extract.value }}"}
        dependsOn: [check]
  - {id: explode, type: flow.Fail, errorMessage: boom}
  - {id: never, type: core.Log, message: never}
errors:
  - {id: alert, type: core.Log, message: "failed {{ execution.id }}"}
finally:
  - {id: cleanup, type: core.Log, message: cleanup}
""",
    },
}


async def record(name: str, source: dict[str, Any]) -> dict[str, Any]:
    """Run one flow and return its history."""
    ran = await run_text(source["flow"], inputs=source["inputs"], trigger=source["trigger"])
    return {
        "name": name,
        "flow": source["flow"],
        "inputs": source["inputs"],
        "trigger": source["trigger"],
        "state": ran.state.value,
        "taskRuns": sequence(ran),
        "executionId": ran.run.id,
        "writes": writes(ran),
    }


def writes(ran: Any) -> list[list[Any]]:
    """What the run wrote, in order, as the store received it (see `stored.detail_after`).

    ``[created, id, taskId, parentId, value, iteration]``, ``[state, id, state]``,
    ``[attempt, id, number, state]``, ``[outputs, id, outputs]``, ``[execution, state]``.
    """
    runs = ran.run.state.task_runs
    out: list[list[Any]] = []
    for event in ran.recorder.events:
        run = runs.get(event.task_run_id) if event.task_run_id else None
        if event.kind == "created":
            out.append(["created", run.id, run.task_id, run.parent_id, run.value, run.iteration])
        elif event.kind == "state":
            out.append(["state", event.task_run_id, event.detail[1].value])
        elif event.kind == "attempt":
            out.append(
                ["attempt", event.task_run_id, event.detail.number, event.detail.state.value]
            )
        elif event.kind == "outputs":
            out.append(["outputs", event.task_run_id, event.detail])
        elif event.kind == "execution":
            out.append(["execution", event.detail[0].value])
    return out


def sequence(ran: Any) -> list[list[Any]]:
    """Task runs in creation order: [taskId, value, final state, outputs]."""
    return [
        [run.task_id, run.value, run.state.value, run.outputs]
        for run in ran.run.state.task_runs.values()
    ]


async def main() -> None:
    for name, source in SOURCES.items():
        history = await record(name, source)
        (HERE / f"{name}.json").write_text(json.dumps(history, indent=2) + "\n")
        print(f"recorded {name}: {len(history['taskRuns'])} task runs, {history['state']}")


if __name__ == "__main__":
    asyncio.run(main())
