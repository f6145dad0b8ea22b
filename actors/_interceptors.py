"""Interceptors: cross-cutting concerns (metrics, tracing) hooked into the execution path.

Temporal's shape: each hook receives a typed input and ``next``, the rest of the chain;
an interceptor may act before and after calling ``next(input)``, or hand on a changed
input. Hooks are plain (synchronous) calls: they run on the event path, so they must be
quick and must not block. An `ExecutionService` calls them:

- `Interceptor.execution_created` once the execution row is durable (before it runs);
- `Interceptor.attempt_started` / `Interceptor.attempt_finished` around every attempt;
- `Interceptor.execution_ended` when its run ends here (finished, killed, or dropped).

A hook that raises is logged and skipped: an interceptor's bug never fails an execution.
Only hooks an interceptor overrides cost anything on the path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from flows import Flow, State

from ._invocation import TaskOutcome
from ._store._records import Execution

_log = logging.getLogger(__name__)

InputT = TypeVar("InputT")
Next = Callable[[InputT], None]
"""The rest of the chain for one hook."""


@dataclass(frozen=True, slots=True)
class ExecutionCreated:
    """An execution was created durably (or found by its dedupe key).

    Attributes:
        flow: The flow revision it runs.
        execution: The execution as created.
        created: False when its dedupe key matched an existing execution.
        event_at: When the source event happened (epoch seconds), when it came from one.
    """

    flow: Flow
    execution: Execution
    created: bool
    event_at: float | None


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """An attempt of a task run is about to start.

    Attributes:
        execution_id: Its execution.
        task_run_id: Its task run.
        task_id: The task's id.
        attempt: 1 for the first attempt.
    """

    execution_id: str
    task_run_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """An attempt ended.

    Attributes:
        execution_id: Its execution.
        task_run_id: Its task run.
        task_id: The task's id.
        attempt: 1 for the first attempt.
        outcome: How it ended.
        on_worker: Its body ran on a worker (a dispatched runnable task), not inline in
            the execution's process (Log, Return) nor refused before dispatch.
    """

    execution_id: str
    task_run_id: str
    task_id: str
    attempt: int
    outcome: TaskOutcome
    on_worker: bool


@dataclass(frozen=True, slots=True)
class ExecutionEnded:
    """An execution's run ended in this process.

    Attributes:
        flow: Its flow revision.
        execution_id: The execution.
        state: Its state when the run ended (KILLED when dropped for a lost lease).
    """

    flow: Flow
    execution_id: str
    state: State


class Interceptor:
    """Base of interceptors: every hook hands its input on unchanged; override some."""

    def execution_created(self, input: ExecutionCreated, next: Next[ExecutionCreated]) -> None:
        """An execution was created; call ``next(input)`` to go on."""
        next(input)

    def attempt_started(self, input: AttemptStarted, next: Next[AttemptStarted]) -> None:
        """An attempt starts; call ``next(input)`` to go on."""
        next(input)

    def attempt_finished(self, input: AttemptFinished, next: Next[AttemptFinished]) -> None:
        """An attempt ended; call ``next(input)`` to go on."""
        next(input)

    def execution_ended(self, input: ExecutionEnded, next: Next[ExecutionEnded]) -> None:
        """An execution's run ended; call ``next(input)`` to go on."""
        next(input)


_HOOKS = ("execution_created", "attempt_started", "attempt_finished", "execution_ended")


class Interceptors:
    """An ordered chain of interceptors; the first added is the outermost.

    Args:
        interceptors: The interceptors, outermost first.
    """

    def __init__(self, interceptors: Sequence[Interceptor] = ()) -> None:
        self._all: list[Interceptor] = []
        self._by_hook: dict[str, list[Interceptor]] = {hook: [] for hook in _HOOKS}
        for interceptor in interceptors:
            self.add(interceptor)

    def add(self, interceptor: Interceptor) -> None:
        """Append `interceptor` (innermost so far)."""
        self._all.append(interceptor)
        for hook in _HOOKS:
            if getattr(type(interceptor), hook) is not getattr(Interceptor, hook):
                self._by_hook[hook].append(interceptor)

    def wants(self, hook: str) -> bool:
        """True when some interceptor overrides `hook` (else calling it is a no-op)."""
        return bool(self._by_hook[hook])

    def execution_created(self, input: ExecutionCreated) -> None:
        """Run the ``execution_created`` chain."""
        self._run("execution_created", input)

    def attempt_started(self, input: AttemptStarted) -> None:
        """Run the ``attempt_started`` chain."""
        self._run("attempt_started", input)

    def attempt_finished(self, input: AttemptFinished) -> None:
        """Run the ``attempt_finished`` chain."""
        self._run("attempt_finished", input)

    def execution_ended(self, input: ExecutionEnded) -> None:
        """Run the ``execution_ended`` chain."""
        self._run("execution_ended", input)

    def _run(self, hook: str, input: Any) -> None:
        chain = self._by_hook[hook]
        if not chain:
            return

        def call(index: int, value: Any) -> None:
            if index == len(chain):
                return
            interceptor = chain[index]
            try:
                getattr(interceptor, hook)(value, lambda v: call(index + 1, v))
            except Exception:
                _log.exception("interceptor %s failed in %s", type(interceptor).__name__, hook)

        call(0, input)


Lookup = Callable[[str, str, str], Any]
"""``(namespace, flow_id, trigger_id)`` → the trigger's `TriggerStats`, or None."""


class FirstTaskLatency(Interceptor):
    """The event → first-runnable-task-started latency of executions started by triggers.

    On `execution_created` (a new execution from an event, whose trigger `lookup` knows),
    it remembers when the event happened; the first attempt that ran on a worker gives the
    time its body started, and the difference goes to the trigger's stats. Nothing is
    kept past `execution_ended`.

    Args:
        lookup: Finds the stats of ``(namespace, flow_id, trigger_id)``.
        label: The execution label that names the trigger.
    """

    def __init__(self, lookup: Lookup, label: str) -> None:
        self._lookup = lookup
        self._label = label
        self._pending: dict[str, tuple[Any, float]] = {}

    @property
    def pending(self) -> int:
        """How many executions still wait for their first task."""
        return len(self._pending)

    def execution_created(self, input: ExecutionCreated, next: Next[ExecutionCreated]) -> None:
        """Remember the event time of a new execution from a known trigger."""
        trigger_id = input.execution.labels.get(self._label)
        if input.created and input.event_at is not None and trigger_id is not None:
            flow = input.flow
            stats = self._lookup(flow.namespace, flow.id, trigger_id)
            if stats is not None:
                self._pending[input.execution.id] = (stats, input.event_at)
        next(input)

    def attempt_finished(self, input: AttemptFinished, next: Next[AttemptFinished]) -> None:
        """Observe the first attempt that ran on a worker."""
        if input.on_worker and input.execution_id in self._pending:
            stats, event_at = self._pending.pop(input.execution_id)
            stats.observe_first_task(input.outcome.started_at.timestamp() - event_at)
        next(input)

    def execution_ended(self, input: ExecutionEnded, next: Next[ExecutionEnded]) -> None:
        """Forget an execution that ended before any task ran on a worker."""
        self._pending.pop(input.execution_id, None)
        next(input)


def opentelemetry_interceptor(
    endpoint: str | None = None, tracer_provider: Any | None = None
) -> Interceptor:
    """An interceptor that traces executions with OpenTelemetry (the ``otel`` extra).

    Args:
        endpoint: An OTLP/HTTP traces URL to export to (``http://host:4318/v1/traces``).
        tracer_provider: A provider to use instead (tests give one with an in-memory
            exporter); the global provider when neither is given.

    Raises:
        ImportError: ``opentelemetry-sdk`` is not installed (``pip install kestrel-flow[otel]``).
    """
    from ._otel import OpenTelemetryInterceptor, otlp_tracer_provider

    if tracer_provider is None and endpoint:
        tracer_provider = otlp_tracer_provider(endpoint)
    return OpenTelemetryInterceptor(tracer_provider)
