"""Measure Kestrel against Kestra's own core test corpus.

Usage::

    .venv/bin/python tools/kestra_corpus.py KESTRA_CHECKOUT [--timeout 8] [-v]

The checkout is a directory holding Kestra's ``core/src/test/resources/flows`` (a clone of
kestra-io/kestra, or ``git archive HEAD core/src/test | tar -x -C DIR``). Nothing of it is
copied anywhere. Three figures are printed:

1. how many of the ``flows/valids`` flows Kestrel validates;
2. of those that can run on their own (no trigger, no required input without a default),
   how many end in the state Kestra's tests assert for them (`EXPECTED` below);
3. how many of the ``flows/invalids`` Kestrel refuses, each with its first message.

Flows using ``io.kestra.core.tasks.test.*`` or ``io.kestra.core.runners.test.*`` types
(defined only in Kestra's test code) are
listed apart and do not count against us. Remaining failures are grouped by cause.

Runs are in-process (like ``kestrel run`` without Postgres or Ray): the interpreter with an
in-memory recorder, runnable tasks executed on the local loop, subflows resolved among the
corpus flows. Each run gets ``--timeout`` seconds; a run still PAUSED then ends as PAUSED.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors import (
    Execution,
    ExecutionRun,
    ExecutionState,
    InProcessDispatcher,
    MemoryRecorder,
    RunOptions,
    TaskRunState,
)
from flows import (
    ExpressionEngine,
    Flow,
    FlowError,
    KestrelError,
    State,
    Subflow,
    TaskError,
    build_context,
    parse_flow,
    parse_inputs,
)

CORPUS = Path("core/src/test/resources/flows")
TEST_TYPES = ("io.kestra.core.tasks.test.", "io.kestra.core.runners.test.")

# Kestra's tests (core/src/test/java) assert these end states for a single run of the flow.
# A flow not listed is asserted SUCCESS (or only its outputs are asserted). Built by reading
# each test method that runs the flow (`@ExecuteFlow`, `runnerUtils.runOne`) and taking the
# first state it asserts on the execution; PAUSED means the run must reach PAUSED and wait.
EXPECTED: dict[str, tuple[str, str]] = {
    "each-null.yaml": ("FAILED", "EachSequentialTest"),
    "each-sequential.yaml": ("WARNING", "EachSequentialTest"),
    "exception-with-output.yaml": ("FAILED", "RunnableTaskExceptionTest"),
    "executable-fail.yml": ("FAILED", "BadExecutableTest"),
    "fail-on-switch.yaml": ("FAILED", "FailTest"),
    "failed-first.yaml": ("FAILED", "VariablesTest"),
    "flow-with-outputs-failed.yml": ("FAILED", "FlowOutputTest"),
    "flowable-fail.yaml": ("FAILED", "BadFlowableTest"),
    "flowable-with-parent-fail.yaml": ("FAILED", "BadFlowableTest"),
    "pause.yaml": ("PAUSED", "PauseTest.run"),
    "pause_no_tasks.yaml": ("PAUSED", "PauseTest.runEmptyTasks"),
    "pause_on_resume.yaml": ("PAUSED", "PauseTest.runOnResume"),
    "pause_on_resume_optional.yaml": ("PAUSED", "PauseTest.runOnResumeOptionalInputs"),
    "pause-delay.yaml": ("SUCCESS", "PauseTest.runDelay (PAUSED, then SUCCESS after 1 s)"),
    "pause-timeout.yaml": ("FAILED", "PauseTest.runTimeout (PAUSED, then FAILED after 1 s)"),
    "restart_always_failed.yaml": ("FAILED", "RestartCaseTest"),
    "restart_last_failed.yaml": ("FAILED", "RestartCaseTest"),
    "restart_local_errors.yaml": ("FAILED", "RestartCaseTest"),
    "each-parallel-subflow-notfound.yml": ("FAILED", "no test runs it; its subflows do not exist"),
    "restart_pause_last_failed.yaml": (
        "FAILED",
        "no test runs it; task c fails its first attempt by design",
    ),
    "restart-each.yaml": ("FAILED", "RestartCaseTest"),
    "sequential-with-global-errors.yaml": ("FAILED", "SequentialTest"),
    "sequential-with-local-errors.yaml": ("FAILED", "SequentialTest"),
    "sla-max-duration-fail.yaml": ("FAILED", "SLATestCase"),
    "switch-impossible.yaml": ("FAILED", "SwitchTest"),
    "task-allow-failure-executable-flow.yml": ("WARNING", "TaskWithAllowFailureTest"),
    "task-allow-failure-executable-foreachitem.yml": ("WARNING", "TaskWithAllowFailureTest"),
    "task-allow-failure-flowable.yml": ("WARNING", "TaskWithAllowFailureTest"),
    "task-allow-failure-runnable.yml": ("WARNING", "TaskWithAllowFailureTest"),
    "task-runif.yml": ("FAILED", "TaskWithRunIfTest"),
    "variables-invalid.yaml": ("FAILED", "VariablesTest"),
    "waitfor-max-duration.yaml": ("FAILED", "WaitForCaseTest"),
    "waitfor-max-iterations.yaml": ("FAILED", "WaitForCaseTest"),
    "waitfor-multiple-tasks-failed.yaml": ("FAILED", "WaitForCaseTest"),
    "disable-error.yaml": ("FAILED", "DisabledTest (task runs only; its first task is a Fail)"),
    "errors.yaml": ("FAILED", "FlowGraphTest (graph only; its first task is a Fail)"),
    "trigger-multiplecondition-flow-c.yaml": ("FAILED", "MultipleConditionTriggerCaseTest"),
    "retry-success.yaml": ("WARNING", "RetryCaseTest.retrySuccess (4 attempts)"),
    "retry-success-first-attempt.yaml": ("SUCCESS", "RetryCaseTest"),
    "retry-failed.yaml": ("FAILED", "RetryCaseTest.retryFailed (5 attempts)"),
    "retry-random.yaml": ("FAILED", "RetryCaseTest.retryRandom (3 attempts)"),
    "retry-expo.yaml": ("FAILED", "RetryCaseTest.retryExpo (3 attempts)"),
    "retry-fail.yaml": ("FAILED", "RetryCaseTest.retryFail (3 attempts)"),
    "retry-dynamic-task.yaml": ("FAILED", "RetryCaseTest.retryDynamicTask"),
    "retry-failed-task-attempts.yml": ("FAILED", "RetryCaseTest (4 attempts)"),
    "retry-failed-task-duration.yml": ("FAILED", "RetryCaseTest (3 attempts)"),
    "retry-failed-flow-attempts.yml": ("FAILED", "RetryCaseTest (4 attempts)"),
    "retry-failed-flow-duration.yml": ("FAILED", "RetryCaseTest (3 attempts)"),
    "retry-flowable.yaml": ("FAILED", "RetryCaseTest"),
    "retry-flowable-child.yaml": ("FAILED", "RetryCaseTest"),
    "retry-flowable-nested-child.yaml": ("FAILED", "RetryCaseTest"),
    "retry-flowable-parallel.yaml": ("FAILED", "RetryCaseTest"),
    "retry-subflow.yaml": ("FAILED", "RetryCaseTest"),
    "retry-new-execution-task-attempts.yml": (
        "RETRIED",
        "RetryCaseTest (RETRIED, RETRIED, FAILED)",
    ),
    "retry-new-execution-task-duration.yml": (
        "RETRIED",
        "RetryCaseTest (RETRIED, RETRIED, FAILED)",
    ),
    "retry-new-execution-flow-attempts.yml": (
        "RETRIED",
        "RetryCaseTest (RETRIED, RETRIED, FAILED)",
    ),
    "retry-new-execution-flow-duration.yml": (
        "RETRIED",
        "RetryCaseTest (RETRIED, RETRIED, FAILED)",
    ),
}
DEFAULT_EXPECTED = ("SUCCESS", "no other state asserted")

# What Kestra's test configuration gives its flows (envs ENV_TEST1/ENV_TEST2, globals).
KESTRA_TEST_ENVS = {"test1": "true", "test2": "Pass by env"}
KESTRA_TEST_GLOBALS = {"string": "string", "int": 1, "bool": True, "nested": {"int": 2}}


@dataclass
class Report:
    """What the corpus run found."""

    valid: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)
    test_types: list[str] = field(default_factory=list)
    not_runnable: dict[str, str] = field(default_factory=dict)
    matched: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- running


def _execution(flow: Flow, inputs: dict[str, Any], parent: str | None = None) -> Execution:
    now = dt.datetime.now(dt.UTC)
    return Execution(
        id=uuid.uuid4().hex[:22],
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=1,
        state=State.CREATED,
        state_history=(),
        inputs=inputs,
        trigger=None,
        labels={},
        outputs=None,
        original_id=None,
        parent_id=parent,
        parent_task_run_id=None,
        dedupe_key=None,
        created_at=now,
        updated_at=now,
        ended_at=None,
    )


class _Subflows:
    """Runs child executions in-process, finding their flow among the corpus."""

    def __init__(self, flows: dict[tuple[str, str], Flow], engine: ExpressionEngine) -> None:
        self._flows = flows
        self._engine = engine

    async def launch(
        self, parent: ExecutionRun, run: TaskRunState, task: Subflow, inputs: dict[str, Any]
    ) -> tuple[str, State, dict[str, Any]]:
        flow = self._flows.get((task.namespace, task.flow_id))
        if flow is None:
            raise TaskError(f"subflow {task.namespace}.{task.flow_id} not found", retriable=False)
        child = _execution(flow, parse_inputs(flow, inputs), parent.id)
        root = parent.state.execution
        child.labels["system.correlationId"] = root.labels.get("system.correlationId", root.id)
        state = ExecutionState(execution=child)
        recorder = MemoryRecorder()
        runner = ExecutionRun(
            flow, state, recorder, InProcessDispatcher(), self._engine, subflows=self
        )
        final = await runner.run()
        outputs: dict[str, Any] = {}
        if task.outputs:
            context = build_context(
                flow=flow, inputs=child.inputs, outputs=state.outputs_tree(), envs={}
            )
            outputs = dict(self._engine.render_value(task.outputs, context, task=task.id))
        return child.id, final, outputs


async def run_once(
    flow: Flow, flows: dict[tuple[str, str], Flow], seconds: float
) -> tuple[str, list[str]]:
    """Run `flow` with its default inputs; the end state and the ERROR log lines."""
    engine = ExpressionEngine()
    execution = _execution(flow, parse_inputs(flow, {}))
    state = ExecutionState(execution=execution)
    recorder = MemoryRecorder()
    runner = ExecutionRun(
        flow,
        state,
        recorder,
        InProcessDispatcher(),
        engine,
        subflows=_Subflows(flows, engine),
        options=RunOptions(
            envs=KESTRA_TEST_ENVS,
            globals=KESTRA_TEST_GLOBALS,
            new_execution=lambda delay, labels: None,  # one execution is measured
        ),
    )
    task = asyncio.ensure_future(runner.run())
    try:
        final = await asyncio.wait_for(asyncio.shield(task), seconds)
        end = final.value
    except TimeoutError:
        end = state.state.value if state.state is State.PAUSED else "TIMEOUT"
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):  # the run is abandoned
            await task
    errors = [line.message for line in recorder.logs if line.level == "ERROR"]
    return end, errors


def runnable_reason(flow: Flow) -> str | None:
    """Why the flow cannot run on its own, or None when it can."""
    if flow.triggers:
        return "has triggers"
    for spec in flow.inputs:
        if spec.required and spec.defaults is None:
            return f"required input '{spec.id}'"
    return None


# --------------------------------------------------------------------------- grouping


def cause(message: str) -> str:
    """A short, groupable cause: the problem's message without its place and excerpt."""
    text = message.split(": ", 2)[-1] if re.match(r"^\S+:\d+:\d+: ", message) else message
    return text.split(";")[0].split(" in '")[0].split(' in "')[0][:110]


# --------------------------------------------------------------------------- main


def measure(root: Path, timeout: float, verbose: bool) -> Report:
    """Validate, run and refuse the corpus under `root`; see the module docstring."""
    report = Report()
    valids = sorted((root / CORPUS / "valids").glob("*.y*ml"))
    invalids = sorted((root / CORPUS / "invalids").glob("*.y*ml"))
    parsed: dict[str, Flow] = {}
    for path in valids:
        text = path.read_text(encoding="utf-8")
        if any(prefix in text for prefix in TEST_TYPES):
            report.test_types.append(path.name)
            continue
        try:
            parsed[path.name] = parse_flow(text, path.name)
            report.valid.append(path.name)
        except FlowError as exc:
            report.invalid[path.name] = str(exc.problems[0]) if exc.problems else str(exc)
    by_uid = {(f.namespace, f.id): f for f in parsed.values()}
    for name, flow in parsed.items():
        why = runnable_reason(flow)
        if why is not None:
            report.not_runnable[name] = why
            continue
        expected = EXPECTED.get(name, DEFAULT_EXPECTED)[0]
        try:
            end, errors = asyncio.run(run_once(flow, by_uid, timeout))
        except KestrelError as exc:
            end, errors = "ERROR", [str(exc)]
        if end == expected:
            report.matched.append(name)
            if expected != "SUCCESS":
                report.why[name] = f"{end}: {errors[0] if errors else 'no error logged'}"
        else:
            detail = errors[0] if errors else "no error logged"
            report.mismatched[name] = f"ended {end}, expected {expected}: {detail}"
        if verbose:
            print(f"  {name}: {end} (expected {expected})", file=sys.stderr)
    for path in invalids:
        try:
            parse_flow(path.read_text(encoding="utf-8"), path.name)
            report.accepted.append(path.name)
        except FlowError as exc:
            report.refused[path.name] = str(exc.problems[0]) if exc.problems else str(exc)
    report.valid_total = len(valids)  # type: ignore[attr-defined]
    report.invalid_total = len(invalids)  # type: ignore[attr-defined]
    return report


def print_report(report: Report) -> None:
    """The three figures, then every failure grouped by cause."""
    total = report.valid_total  # type: ignore[attr-defined]
    runnable = len(report.matched) + len(report.mismatched)
    print(f"validated: {len(report.valid)}/{total}")
    print(f"runnable and ending in the asserted state: {len(report.matched)}/{runnable}")
    print(f"invalids refused: {len(report.refused)}/{report.invalid_total}")  # type: ignore[attr-defined]
    tested = total - len(report.test_types)
    print(f"  (of the {tested} not using test-only types: {len(report.valid)}/{tested})")
    print(
        f"\nusing test-only types {', '.join(TEST_TYPES)} (not counted against us): "
        f"{len(report.test_types)}"
    )
    for name in report.test_types:
        print(f"  {name}")
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for name, message in report.invalid.items():
        groups[cause(message)].append(name)
    print(f"\nnot validated: {len(report.invalid)}, by cause")
    for reason, names in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"  {len(names):3}  {reason}\n       {', '.join(names)}")
    print(f"\nran but ended elsewhere: {len(report.mismatched)}")
    for name, message in sorted(report.mismatched.items()):
        print(f"  {name}: {message[:220]}")
    print(f"\nnot runnable on their own: {len(report.not_runnable)}")
    print("\nmatched a state other than SUCCESS, and why (check it is the intended reason):")
    for name, message in sorted(report.why.items()):
        print(f"  {name}: {message[:200]}")
    print("\ninvalids accepted: " + (", ".join(report.accepted) or "none"))
    for name, message in sorted(report.refused.items()):
        print(f"  refused {name}: {message[:160]}")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kestra", type=Path, help="a checkout of kestra-io/kestra")
    parser.add_argument("--timeout", type=float, default=8.0, help="seconds per run")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not (args.kestra / CORPUS / "valids").is_dir():
        parser.error(f"{args.kestra / CORPUS / 'valids'} is not a directory")
    print_report(measure(args.kestra, args.timeout, args.verbose))
    return 0


if __name__ == "__main__":
    sys.exit(main())
