"""Hot-path cost of rendering a runnable task's properties in the interpreter.

``python -m benchmarks.render_path [--n 10000]``: a typical runnable task (an HTTP call
with four templated properties, ``| tojson`` among them) rendered N times in the context
of a running execution, three ways, same run:

- ``inline (before)``: the interpreter's ``_rendered_task`` before renders could leave
  the event loop (dump, render with the engine, validate);
- ``router (after)``: `Templates.rendered_task`, which renders inline when every template
  is linear (`ExpressionEngine.is_linear`) and on the render threads otherwise;
- ``all on thread``: the old path sent whole to the render threads (what it would cost
  if every template left the loop);

plus the same three for a task with one ``{% for %}`` property (which the router sends
to the threads). Prints microseconds per task (context built each time, as the
interpreter does).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import textwrap
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from actors._interpreter import RunOptions
from actors._journal import RunJournal
from actors._recorders import MemoryRecorder
from actors._runstate import ExecutionState, TaskRunState
from actors._scope import Scope
from actors._store._ids import new_id
from actors._store._records import Execution, StateEntry, utcnow
from actors._templates import Templates, off_loop
from flows import ExpressionEngine, State, Task, contains_template, parse_flow

TYPICAL = """
id: render-bench
namespace: bench
variables: {channel: alerts}
tasks:
  - id: notify
    type: http.Request
    uri: "https://hooks.example.com/{{ vars.channel }}/{{ trigger.data.id }}"
    method: POST
    contentType: application/json
    body: "{{ trigger.data | tojson }}"
    headers:
      X-Execution: "{{ execution.id }}"
      X-Source: "{{ trigger.subject }}"
"""
LOOPING = TYPICAL.replace(
    'X-Source: "{{ trigger.subject }}"',
    'X-Source: "{% for i in trigger.data.items %}{{ i }}{% endfor %}"',
)


def _templates(source: str) -> tuple[Templates, Task, TaskRunState]:
    flow = parse_flow(textwrap.dedent(source))
    flow.revision = 1
    now = utcnow()
    execution = Execution(
        id=new_id(), namespace=flow.namespace, flow_id=flow.id, flow_revision=1,
        state=State.RUNNING, state_history=(), inputs={}, labels={}, outputs=None,
        trigger={"subject": "orders.eu", "data": {"id": 42, "items": list(range(20))}},
        original_id=None, parent_id=None, parent_task_run_id=None, dedupe_key=None,
        created_at=now, updated_at=now, ended_at=None,
    )  # fmt: skip
    state = ExecutionState(execution=execution)
    engine = ExpressionEngine()
    journal = RunJournal(state, MemoryRecorder(), engine, [])
    templates = Templates(flow, state, engine, RunOptions(envs={}), journal.logs)
    run = TaskRunState(
        id=new_id(), key="notify", task_id="notify", parent_id=None, values=(), iteration=None,
        history=[StateEntry(State.RUNNING, now)],
    )  # fmt: skip
    return templates, flow.tasks[0], run


async def _time(n: int, once: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(min(200, n)):
        await once()
    start = time.perf_counter()
    for _ in range(n):
        await once()
    return (time.perf_counter() - start) / n * 1e6


def _before(engine: ExpressionEngine, task: Task, context: Mapping[str, Any]) -> Task:
    """The interpreter's ``_rendered_task`` before renders could leave the loop."""
    raw = task.model_dump(
        by_alias=True, exclude_none=True, exclude={"id", "type", "retry", "timeout", "run_if"}
    )
    if not contains_template(raw):
        return task
    rendered = engine.render_value(raw, context, task=task.id)
    data = {**task.model_dump(by_alias=True, exclude_none=True), **rendered}
    return type(task).model_validate(data)


def _ways(source: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    templates, task, run = _templates(source)
    engine = templates.engine

    async def inline() -> Any:
        return _before(engine, task, templates.context(run, Scope()))

    async def router() -> Any:
        return await templates.rendered_task(task, templates.context(run, Scope()))

    async def thread() -> Any:
        return await off_loop(_before, engine, task, templates.context(run, Scope()))

    return {"inline (before)": inline, "router (after)": router, "all on thread": thread}


async def measure(n: int, rounds: int = 5) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, source in (("typical (linear)", TYPICAL), ("with a {% for %}", LOOPING)):
        ways = _ways(source)
        figures: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(rounds):  # interleaved, so load from elsewhere hits every way alike
            for way, once in ways.items():
                figures[way].append(await _time(n, once))
        results[name] = {way: statistics.median(values) for way, values in figures.items()}
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.render_path")
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.n))
    print(f"microseconds per task, median of 5 interleaved rounds of {args.n:,}")
    for name, figures in results.items():
        cells = "  ".join(f"{way}: {us:7.1f}" for way, us in figures.items())
        print(f"{name:18} {cells}")


if __name__ == "__main__":
    main()
