"""The execution interpreter: walks a flow with Kestra's semantics, one execution at a time.

Flowable tasks (Sequential, Parallel, If, ...) and trivial ones (Log, Return) run here, as
coroutines; runnable tasks go to a `Dispatcher` (a Ray task or a warm worker). Every state
change goes to a `Recorder` in order. Task runs that a previous owner already finished are
found by their derived ids and not run again: that is how recovery, restart and replay
resume an execution.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flows import (
    ERROR_LOGS,
    KV_LOOKUP,
    AllowFailure,
    Dag,
    EachParallel,
    EachSequential,
    Echo,
    ExpressionEngine,
    ExpressionError,
    Fail,
    Fetch,
    Flow,
    FlowableTask,
    ForEach,
    ForEachItem,
    If,
    InputError,
    Labels,
    Log,
    LoopUntil,
    NotFoundError,
    OutputValues,
    Parallel,
    Pause,
    PauseBehavior,
    Retry,
    RetryType,
    Return,
    RunnableTask,
    SecretMask,
    Sequential,
    Sleep,
    State,
    Subflow,
    Switch,
    Task,
    TaskError,
    WaitFor,
    WorkingDirectory,
    build_context,
    contains_template,
    input_to_json,
    parse_duration,
    parse_inputs,
    walk_tasks,
)

from ._failure import TaskFailure
from ._foreach_item import run_foreach_item
from ._interceptors import AttemptFinished, AttemptStarted, Interceptors
from ._invocation import INLINE_WORKER, TaskInvocation, TaskOutcome
from ._large_outputs import store_if_large
from ._runstate import ExecutionState, TaskRunState, child_key, successful
from ._storage import StorageConfig
from ._store._records import Attempt, LogLine, StateEntry, utcnow

LOOP_TYPES: tuple[type[Task], ...] = (ForEach, LoopUntil, EachSequential, EachParallel)
_INLINE: tuple[type[Task], ...] = (Log, Return, Echo, OutputValues, Labels, Fetch)
_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_DONE = frozenset({State.SUCCESS, State.WARNING, State.SKIPPED})
_INTERRUPTED = "interrupted"


class Recorder(Protocol):
    """Where the interpreter writes state changes, in order (the store, batched)."""

    def task_run_created(self, run: TaskRunState) -> None:
        """A task run now exists."""

    def task_run_state(self, run: TaskRunState, state: State, at: dt.datetime) -> None:
        """A task run entered `state`."""

    def attempt(self, run: TaskRunState, attempt: Attempt) -> None:
        """An attempt of a task run started or ended."""

    def outputs(self, run: TaskRunState, outputs: Mapping[str, Any]) -> None:
        """A task run's outputs (already masked)."""

    def log(self, line: LogLine) -> None:
        """A log line (already masked)."""

    def labels(self, labels: Mapping[str, str]) -> None:
        """Labels merged into the execution's (execution.Labels, SLA labels)."""

    def execution_state(
        self, state: State, at: dt.datetime, outputs: Mapping[str, Any] | None
    ) -> None:
        """The execution entered `state` (with the flow outputs when it ends)."""

    async def flush(self) -> None:
        """Return once everything recorded so far is durable."""


class Dispatcher(Protocol):
    """Runs a runnable task attempt somewhere (a Ray task, a warm worker)."""

    async def run(self, invocation: TaskInvocation) -> TaskOutcome:
        """Run one attempt; cancellation must cancel the remote work."""


class SubflowLauncher(Protocol):
    """Starts a child execution for `flow.Subflow`."""

    async def launch(
        self,
        parent: ExecutionRun,
        run: TaskRunState,
        task: Subflow,
        inputs: dict[str, Any],
        *,
        key: str | None = None,
    ) -> tuple[str, State, dict[str, Any]]:
        """Create the child execution and, when ``task.wait``, wait for it to end.

        Returns:
            The child's id, its state (RUNNING when not waited for) and its outputs.
        """


@dataclass
class RunOptions:
    """How an `ExecutionRun` treats what is already recorded.

    Attributes:
        restart: Re-run task runs that FAILED (and the flowable tasks around them).
        dsn: The store's DSN, handed to runnable tasks for KV access.
        envs: ``envs`` for templates; the process environment when None.
        storage: The internal storage, handed to runnable tasks.
        globals: Kestra's ``globals`` for templates (empty when None).
        kv_snapshot: Reads a KV namespace (key -> value) for ``kv()`` in templates; it is
            read before each task of a flow whose templates call ``kv(``, never otherwise.
        new_execution: Starts a new execution of the flow after a delay (seconds) with the
            given extra labels: retry ``behavior: CREATE_NEW_EXECUTION``. Without it, such
            a policy is not applied and the execution ends FAILED.
    """

    restart: bool = False
    dsn: str | None = None
    envs: Mapping[str, str] | None = None
    globals: Mapping[str, Any] | None = None
    new_execution: Callable[[float, dict[str, str]], None] | None = None
    kv_snapshot: Callable[[str], Awaitable[dict[str, Any]]] | None = None
    storage: StorageConfig | None = None


@dataclass
class _Scope:
    """Where a task runs: its parent task run and the enclosing loop iterations."""

    parent: TaskRunState | None = None
    values: tuple[str, ...] = ()
    iteration: int | None = None
    value_here: str | None = None  # set only for the direct children of a loop iteration
    parents: tuple[dict[str, Any], ...] = field(default_factory=tuple)


class _Killed(Exception):
    """Raised inside the run when the execution is killed."""


class ExecutionRun:
    """One execution being run (or resumed) by this process.

    Args:
        flow: The flow revision the execution runs.
        state: The execution and any task runs already recorded.
        recorder: Where state changes go.
        dispatcher: Where runnable tasks run.
        engine: The expression engine (shared per process).
        subflows: Starts child executions; None refuses `flow.Subflow`.
        options: Restart mode, DSN for KV, envs.
        interceptors: Told when attempts start and finish (see `Interceptors`).
    """

    def __init__(
        self,
        flow: Flow,
        state: ExecutionState,
        recorder: Recorder,
        dispatcher: Dispatcher,
        engine: ExpressionEngine,
        *,
        subflows: SubflowLauncher | None = None,
        options: RunOptions | None = None,
        interceptors: Interceptors | None = None,
    ) -> None:
        self.flow = flow
        self.state = state
        self._rec = recorder
        self._dispatch = dispatcher
        self._engine = engine
        self._subflows = subflows
        self._options = options or RunOptions()
        self._interceptors = interceptors
        self._killed = False
        self._cancelled = False
        self._resume_events: dict[str, asyncio.Event] = {}
        self._resume_inputs: dict[str, Mapping[str, Any]] = {}
        self._hold: asyncio.Event | None = None  # set while paused from outside
        self._main: asyncio.Task[Any] | None = None
        self._by_key: dict[str, TaskRunState] = {}
        # Every history stays in order even if the wall clock steps back: a new entry is
        # never dated before the one it follows.
        history = state.execution.state_history
        self._execution_at = history[-1].date if history else state.execution.created_at
        self._loop_ids = frozenset(t.id for _, t in walk_tasks(flow) if isinstance(t, LOOP_TYPES))
        self._task_types: dict[str, str] = flow.derived("task_types", _task_types)
        self._waitfor_children: frozenset[str] = flow.derived("waitfor", _waitfor_children)
        self._logs: list[tuple[str | None, str, str]] = []  # (task id, level, message)
        self._kv_namespaces = (
            flow.derived("kv_namespaces", _kv_namespaces) if self._options.kv_snapshot else ()
        )
        self._kv: dict[str, dict[str, Any]] = {}
        self._rerun: set[str] = set()  # keys of flowable task runs being retried
        # This execution's SECRET inputs are masked here only: the engine is shared by
        # every execution of the process and would keep each value forever.
        self._secrets = SecretMask(_secret_inputs(flow, state.execution.inputs))

    def _mask(self, text: str) -> str:
        """`text` with the engine's secrets and this execution's secret inputs masked."""
        text = self._engine.mask(text)
        return self._secrets.mask(text) if self._secrets else text

    def _mask_value(self, value: Any) -> Any:
        value = self._engine.mask_value(value)
        return self._secrets.mask_value(value) if self._secrets else value

    # ---- control from outside ----

    @property
    def id(self) -> str:
        """The execution's id."""
        return self.state.id

    async def flush(self) -> None:
        """Wait until every change recorded so far is durable (write-behind caught up)."""
        await self._rec.flush()

    def kill(self) -> None:
        """Kill the execution: running tasks are cancelled, their task runs end KILLED."""
        self._killed = True
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def pause(self) -> bool:
        """Pause a RUNNING execution: running tasks finish, no task starts until `resume`.

        Returns:
            False when it is not RUNNING (already paused, or ended).
        """
        if self._hold is not None or self.state.state is not State.RUNNING:
            return False
        self._hold = asyncio.Event()
        self._set_execution(State.PAUSED)
        return True

    def resume(
        self, task_run_id: str | None = None, inputs: Mapping[str, Any] | None = None
    ) -> bool:
        """Resume the execution; False if nothing waits.

        Args:
            task_run_id: The paused `Pause` task run (the only one when None). An
                execution paused from outside (`pause`) is released first.
            inputs: The ``onResume`` values, already validated, for the `Pause` outputs.
        """
        if self._hold is not None and task_run_id is None:
            hold, self._hold = self._hold, None
            self._set_execution(State.RUNNING)
            hold.set()
            return True
        if task_run_id is None:
            waiting = [k for k, e in self._resume_events.items() if not e.is_set()]
            if not waiting:
                return False
            task_run_id = waiting[0]
        event = self._resume_events.get(task_run_id)
        if event is None:
            return False
        if inputs is not None:
            self._resume_inputs[task_run_id] = dict(inputs)
        event.set()
        return True

    # ---- the run ----

    async def run(self) -> State:
        """Run (or resume) the execution to a terminal state and return it."""
        self._main = asyncio.current_task()
        if self.state.state.terminal and not self._options.restart:
            return self.state.state
        if self.state.state is not State.RUNNING or self._options.restart:
            self._set_execution(State.RUNNING)
        try:
            final = await self._run_with_sla()
        except asyncio.CancelledError:
            if not self._killed:
                raise
            final = State.KILLED
        if self._cancelled:
            final = State.CANCELLED
        outputs = self._flow_outputs() if final in _DONE else None
        if outputs is None and final is not State.KILLED and self.flow.outputs:
            final = final if final is not State.SUCCESS else State.FAILED
        if final in _DONE and self.flow.sla:
            final = self._assertions(final)
        again = self._new_execution() if final is State.FAILED and not self._killed else None
        if again is not None:
            final = State.RETRIED
            self._log(None, "WARN", f"failed: a new execution starts in {again[0]:.3g} s")
        self._set_execution(final, outputs)
        if self.flow.after_execution and not self._killed:
            await self._run_list(self.flow.after_execution, _Scope())
        await self._rec.flush()
        if again is not None and self._options.new_execution is not None:
            self._options.new_execution(*again)
        return final

    def _assertions(self, final: State) -> State:
        """Kestra's EXECUTION_ASSERTION SLAs, checked when the execution ends.

        A false assertion adds its labels and, by its behavior, fails (FAIL) or cancels
        (CANCEL) the execution; NONE only labels it.
        """
        context = self._context(None, _Scope())
        for sla in self.flow.sla:
            if sla.type != "EXECUTION_ASSERTION" or sla.assert_ is None:
                continue
            try:
                held = self._engine.evaluate_condition(sla.assert_, context, prop=f"sla.{sla.id}")
            except ExpressionError as exc:
                self._log(None, "ERROR", str(exc))
                held = False
            if held:
                continue
            labels = sla.labels if isinstance(sla.labels, dict) else {}
            if labels:
                added = {str(k): _text(v) for k, v in labels.items()}
                self.state.execution.labels.update(added)
                self._rec.labels(added)
            self._log(None, "WARN", f"SLA '{sla.id}' violated: {sla.assert_}")
            if sla.behavior == "FAIL":
                return State.FAILED
            if sla.behavior == "CANCEL":
                return State.CANCELLED
        return final

    def _new_execution(self) -> tuple[float, dict[str, str]] | None:
        """Delay and labels of the next execution when a CREATE_NEW_EXECUTION retry applies."""
        if self._options.new_execution is None:
            return None
        retry = _create_new_execution_policy(self.flow, self.state)
        if retry is None:
            return None
        execution = self.state.execution
        attempt = int(execution.labels.get(ATTEMPT_LABEL, "1"))
        started = execution.labels.get(RETRY_START_LABEL) or execution.created_at.isoformat()
        if retry.max_attempts is not None and attempt >= retry.max_attempts:
            return None
        delay = _base_delay(retry, attempt)
        elapsed = utcnow() + dt.timedelta(seconds=delay) - dt.datetime.fromisoformat(started)
        if retry.max_duration is not None and elapsed > retry.max_duration:
            return None
        correlation = execution.labels.get("system.correlationId", execution.id)
        return delay, {
            ATTEMPT_LABEL: str(attempt + 1),
            RETRY_START_LABEL: started,
            "system.correlationId": correlation,
        }

    async def _run_with_sla(self) -> State:
        """The body, bounded by the flow's MAX_DURATION SLA (FAIL or CANCEL) when it has one."""
        sla = next((s for s in self.flow.sla if s.type == "MAX_DURATION" and s.duration), None)
        if sla is None or sla.behavior == "NONE" or sla.duration is None:
            return await self._run_body()
        left = _remaining(self.state.execution.created_at, sla.duration) or 0.0
        try:
            return await asyncio.wait_for(self._run_body(), left)
        except TimeoutError:
            self._log(None, "ERROR", f"SLA '{sla.id}' missed: ran longer than {sla.duration}")
            return State.FAILED if sla.behavior == "FAIL" else State.CANCELLED

    async def _run_body(self) -> State:
        main = await self._run_list(self.flow.tasks, _Scope())
        stopped = self._killed or self._cancelled
        if main in (State.FAILED, State.KILLED) and self.flow.errors and not stopped:
            await self._run_list(self.flow.errors, _Scope())
        if self.flow.finally_:
            await self._run_list(self.flow.finally_, _Scope())
        return main

    def _set_execution(self, state: State, outputs: Mapping[str, Any] | None = None) -> None:
        now = self._execution_at = max(utcnow(), self._execution_at)
        self.state.state = state
        self._rec.execution_state(state, now, self._mask_value(outputs) if outputs else outputs)

    def _flow_outputs(self) -> dict[str, Any] | None:
        if not self.flow.outputs:
            return {}
        context = self._context(None, _Scope())
        out: dict[str, Any] = {}
        for spec in self.flow.outputs:
            try:
                out[spec.id] = self._engine.render_value(
                    spec.value, context, prop=f"outputs.{spec.id}"
                )
            except ExpressionError as exc:
                self._log(None, "ERROR", str(exc))
                return None
        return out

    # ---- lists of tasks ----

    async def _run_list(self, tasks: Sequence[Task], scope: _Scope) -> State:
        """Run tasks one after another; stop at the first failure."""
        states: list[State] = []
        for task in tasks:
            if task.disabled:
                continue
            state = await self._run_task(task, scope)
            states.append(state)
            if state in (State.FAILED, State.KILLED, State.CANCELLED) or self._cancelled:
                break
        return successful(states)

    async def _run_concurrently(
        self, jobs: Sequence[Callable[[], Awaitable[State]]], limit: int
    ) -> State:
        """Run jobs at once (at most `limit`, 0 = all); after a failure start no more."""
        semaphore = asyncio.Semaphore(limit if limit > 0 else max(1, len(jobs)))
        failed = False

        async def guarded(job: Callable[[], Awaitable[State]]) -> State:
            nonlocal failed
            async with semaphore:
                if failed:
                    return State.SKIPPED
                state = await job()
                if state in (State.FAILED, State.KILLED):
                    failed = True
                return state

        results = await asyncio.gather(*(guarded(j) for j in jobs))
        return successful(s for s in results if s is not State.SKIPPED)

    # ---- one task ----

    def _task_run(self, task: Task, scope: _Scope) -> tuple[TaskRunState, bool]:
        """The task run of `task` in `scope`: found (recovery) or new. True when new."""
        key = child_key(scope.parent.key if scope.parent else None, task.id, scope.value_here)
        found = self._by_key.get(key)
        if found is None:
            run_id = self.state.task_run_id(key)
            found = self.state.task_runs.get(run_id)
        if found is not None:
            found.key = key
            self._by_key[key] = found
            return found, False
        run = TaskRunState(
            id=self.state.task_run_id(key),
            key=key,
            task_id=task.id,
            parent_id=scope.parent.id if scope.parent else None,
            values=scope.values,
            iteration=scope.iteration,
            history=[StateEntry(State.CREATED, utcnow())],  # dated now, not when written
        )
        self.state.task_runs[run.id] = run
        self._by_key[key] = run
        self._rec.task_run_created(run)
        return run, True

    def _reusable(self, run: TaskRunState) -> bool:
        if run.state in _DONE:
            return True
        if run.state is State.FAILED and self._rerun and _below(run.key, self._rerun):
            return False  # a retried flowable task runs its failed children again
        return run.state is State.FAILED and not self._options.restart

    async def _run_task(self, task: Task, scope: _Scope) -> State:
        while self._hold is not None:  # paused from outside: start nothing new
            await self._hold.wait()
        run, _ = self._task_run(task, scope)
        if self._reusable(run):
            return run.state
        self._transition(run, State.RUNNING)
        if self._kv_namespaces:
            await self._refresh_kv()
        try:
            if task.run_if is not None and not self._condition(
                task.run_if, task, run, scope, "runIf"
            ):
                state = State.SKIPPED
            else:
                state = await self._with_timeout(task, run, scope)
        except asyncio.CancelledError:
            self._transition(run, State.KILLED)
            raise
        except ExpressionError as exc:
            self._log(run, "ERROR", str(exc))
            state = State.FAILED
        if state is State.FAILED and task.allow_failure:
            state = State.WARNING
        if state is State.WARNING and task.allow_warning:
            state = State.SUCCESS
        self._transition(run, state)
        return state

    async def _with_timeout(self, task: Task, run: TaskRunState, scope: _Scope) -> State:
        body = self._body(task, run, scope)
        if task.timeout is None or isinstance(task, RunnableTask):
            return await body  # runnable tasks get their timeout per attempt
        try:
            return await asyncio.wait_for(body, task.timeout.total_seconds())
        except TimeoutError:
            self._log(run, "ERROR", f"task '{task.id}' timed out after {task.timeout}")
            return State.FAILED

    async def _body(self, task: Task, run: TaskRunState, scope: _Scope) -> State:
        handler = _FLOWABLE.get(type(task))
        if handler is None:
            return await self._attempts(task, run, scope)
        retry = task.retry or (self.flow.retry if isinstance(task, Fail) else None)
        if retry is not None and not isinstance(task, Subflow | Pause):
            state = await self._retried(task, run, scope, handler, retry)
        else:
            state = await handler(self, task, run, scope)
        if state is State.FAILED and isinstance(task, FlowableTask) and task.errors:
            await self._run_list(task.errors, self._child_scope(run, scope))
        return state

    async def _retried(
        self,
        task: Task,
        run: TaskRunState,
        scope: _Scope,
        handler: FlowableHandler,
        retry: Retry,
    ) -> State:
        """A flowable task retried by its policy, one attempt each (as Kestra does).

        A retry runs the task's failed children again (each gets a new attempt); the
        children that succeeded are kept.
        """
        first_start = utcnow()
        try:
            return await self._retry_loop(task, run, scope, handler, retry, first_start)
        finally:
            self._rerun.discard(run.key)

    async def _retry_loop(
        self,
        task: Task,
        run: TaskRunState,
        scope: _Scope,
        handler: FlowableHandler,
        retry: Retry,
        first_start: dt.datetime,
    ) -> State:
        while True:
            started = utcnow()
            attempt = Attempt(number=len(run.attempts) + 1, state=State.RUNNING, started_at=started)
            run.attempts.append(attempt)
            self._rec.attempt(run, attempt)
            state = await handler(self, task, run, scope)
            ended = Attempt(
                number=attempt.number, state=state, started_at=started, ended_at=utcnow()
            )
            run.attempts[-1] = ended
            self._rec.attempt(run, ended)
            if state is not State.FAILED:
                return state
            delay = _next_delay(retry, run, first_start, None)
            if delay is None:
                return state
            self._rerun.add(run.key)
            self._transition(run, State.RETRYING)
            await asyncio.sleep(delay)
            self._transition(run, State.RUNNING)

    def _transition(self, run: TaskRunState, state: State) -> None:
        if run.state is state and run.history:
            return
        now = utcnow()
        if run.history and now < run.history[-1].date:
            now = run.history[-1].date
        run.state = state
        run.history.append(StateEntry(state, now))
        self._rec.task_run_state(run, state, now)

    def _set_outputs(self, run: TaskRunState, outputs: Mapping[str, Any]) -> None:
        masked = self._mask_value(dict(outputs))
        run.outputs = dict(masked)
        self._rec.outputs(run, masked)

    async def _set_task_outputs(
        self, task: Task, run: TaskRunState, outputs: Mapping[str, Any]
    ) -> None:
        """A task's outputs; large ones go to storage and the store keeps a reference."""
        if not outputs:
            self._set_outputs(run, outputs)
            return
        masked = dict(self._mask_value(dict(outputs)))
        config = self._options.storage or StorageConfig.local()
        reference = await store_if_large(config, self.state, task.id, run.id, masked)
        run.outputs = masked
        self._rec.outputs(run, masked if reference is None else reference)

    def _log(
        self, run: TaskRunState | None, level: str, message: str, attempt: int | None = None
    ) -> None:
        self._logs.append((run.task_id if run else None, level, message))
        self._rec.log(
            LogLine(
                execution_id=self.id,
                message=self._mask(message),
                level=level,
                task_run_id=run.id if run else None,
                attempt=attempt,
            )
        )

    # ---- templates ----

    def _context(self, run: TaskRunState | None, scope: _Scope) -> dict[str, Any]:
        execution = self.state.execution
        taskrun = None
        if run is not None:
            started = _entered(run, State.RUNNING)
            taskrun = {
                "id": run.id,
                "taskId": run.task_id,
                "value": run.value,
                "iteration": run.iteration,
                "attemptsCount": sum(1 for a in run.attempts if a.state.terminal),
                "startDate": started or utcnow(),
                "parentId": run.parent_id,
            }
        labels = {**self.flow.label_dict(), **execution.labels}
        system = {"correlationId": execution.labels.get("system.correlationId", execution.id)}
        context = build_context(
            flow={
                "id": self.flow.id,
                "namespace": self.flow.namespace,
                "revision": execution.flow_revision,
                "variables": self.flow.variables,
                "labels": self.flow.label_dict(),
            },
            execution={
                "id": execution.id,
                "startDate": execution.created_at,
                "state": self.state.state.value,
                "originalId": execution.original_id or execution.id,
            },
            inputs=_opaque_secrets(self.flow, execution.inputs),
            outputs=self._outputs(),
            labels={**labels, "system": system},
            trigger=execution.trigger,
            taskrun=taskrun,
            parent=scope.parents[-1] if scope.parents else None,
            envs=self._options.envs,
        )
        if taskrun is not None:
            context["taskrun"].update(taskrun)
            context["task"] = {
                "id": run.task_id if run else None,
                "type": self._task_types.get(run.task_id if run else "", None),
            }
        context["parents"] = list(reversed(scope.parents))
        context["globals"] = dict(self._options.globals or {})
        context[ERROR_LOGS] = self._error_logs
        if self._kv_namespaces:
            context[KV_LOOKUP] = self._kv_lookup
        return context

    async def _refresh_kv(self) -> None:
        """Read the KV namespaces the flow's ``kv()`` calls name (see `RunOptions`)."""
        assert self._options.kv_snapshot is not None
        for namespace in self._kv_namespaces:
            self._kv[namespace] = await self._options.kv_snapshot(namespace)

    def _kv_lookup(self, key: str, namespace: str | None) -> Any:
        return self._kv.get(namespace or self.flow.namespace, {}).get(key)

    def _outputs(self) -> dict[str, Any]:
        """Kestra's ``outputs``; a WaitFor child's are those of its last iteration."""
        tree = self.state.outputs_tree()
        for task_id in self._waitfor_children & tree.keys():
            node = tree[task_id]
            if isinstance(node, dict) and node and all(str(k).isdigit() for k in node):
                tree[task_id] = node[max(node, key=int)]
        return tree

    def _error_logs(self) -> list[dict[str, Any]]:
        return [
            {"taskId": task_id, "level": level, "message": message}
            for task_id, level, message in self._logs
            if level == "ERROR"
        ]

    def _condition(
        self, expression: str | bool, task: Task, run: TaskRunState, scope: _Scope, prop: str
    ) -> bool:
        if isinstance(expression, bool):
            return expression
        return self._engine.evaluate_condition(
            expression, self._context(run, scope), task=task.id, prop=prop
        )

    def _render(self, value: Any, task: Task, run: TaskRunState, scope: _Scope, prop: str) -> Any:
        return self._engine.render_value(value, self._context(run, scope), task=task.id, prop=prop)

    def _rendered_task(self, task: Task, context: Mapping[str, Any]) -> Task:
        """A copy of `task` with every property rendered (nested tasks excluded).

        A task without templates is used as it is: no copy, no validation.
        """
        raw = task.model_dump(
            by_alias=True, exclude_none=True, exclude={"id", "type", "retry", "timeout", "run_if"}
        )
        if not contains_template(raw):
            return task
        rendered = self._engine.render_value(raw, context, task=task.id)
        data = {**task.model_dump(by_alias=True, exclude_none=True), **rendered}
        return type(task).model_validate(data)

    # ---- attempts: inline and runnable tasks ----

    async def _attempts(self, task: Task, run: TaskRunState, scope: _Scope) -> State:
        """Run attempts of an inline or runnable task until success or retries run out."""
        retry = task.retry or self.flow.retry
        first_start = utcnow()
        self._close_interrupted(run)
        while True:
            number = len(run.attempts) + 1
            outcome = await self._attempt(task, run, scope, number)
            if outcome.state is State.SUCCESS:
                await self._set_task_outputs(task, run, outcome.outputs)
                retried = any(a.state is State.FAILED for a in run.attempts[:-1])
                return (
                    State.WARNING
                    if retried and retry is not None and retry.warning_on_retry
                    else State.SUCCESS
                )
            delay = _next_delay(retry, run, first_start, outcome)
            if delay is None:
                if outcome.outputs:
                    await self._set_task_outputs(task, run, outcome.outputs)
                return State.FAILED
            self._transition(run, State.RETRYING)
            await asyncio.sleep(delay)
            self._transition(run, State.RUNNING)

    def _close_interrupted(self, run: TaskRunState) -> None:
        """Attempts left RUNNING by a dead owner end FAILED as interrupted."""
        for index, attempt in enumerate(run.attempts):
            if not attempt.state.terminal:
                closed = Attempt(
                    number=attempt.number,
                    state=State.FAILED,
                    started_at=attempt.started_at,
                    ended_at=utcnow(),
                    worker=attempt.worker,
                    node=attempt.node,
                    error={
                        "message": "the worker running this attempt was lost",
                        "type": _INTERRUPTED,
                    },
                )
                run.attempts[index] = closed
                self._rec.attempt(run, closed)

    async def _attempt(
        self, task: Task, run: TaskRunState, scope: _Scope, number: int
    ) -> TaskOutcome:
        started = utcnow()
        attempt = Attempt(number=number, state=State.RUNNING, started_at=started)
        run.attempts.append(attempt)
        self._rec.attempt(run, attempt)
        hooks = self._interceptors
        if hooks is not None and hooks.wants("attempt_started"):
            hooks.attempt_started(AttemptStarted(self.id, run.id, task.id, number))
        try:
            outcome = await self._execute(task, run, scope, number)
        except asyncio.CancelledError:
            killed = Attempt(
                number=number, state=State.KILLED, started_at=started, ended_at=utcnow()
            )
            run.attempts[-1] = killed
            self._rec.attempt(run, killed)
            raise
        for at, level, message in outcome.logs:
            if not _kept(task, level):
                continue
            self._logs.append((task.id, level, message))
            self._rec.log(
                LogLine(
                    execution_id=self.id,
                    message=self._mask(message),
                    level=level,
                    task_run_id=run.id,
                    attempt=number,
                    at=at,
                )
            )
        failure = outcome.error
        if failure is not None:
            failure = failure.masked(self._mask)
            self._log(run, "ERROR", failure.message, number)
        ended = Attempt(
            number=number,
            state=outcome.state,
            started_at=outcome.started_at or started,
            ended_at=outcome.ended_at or utcnow(),
            worker=outcome.worker,
            node=outcome.node,
            error=None if failure is None else failure.to_json(),
        )
        run.attempts[-1] = ended
        self._rec.attempt(run, ended)
        if hooks is not None and hooks.wants("attempt_finished"):
            on_worker = outcome.worker is not None and outcome.worker != INLINE_WORKER
            finished = AttemptFinished(self.id, run.id, task.id, number, outcome, on_worker)
            hooks.attempt_finished(finished)
        return outcome

    async def _execute(
        self, task: Task, run: TaskRunState, scope: _Scope, number: int
    ) -> TaskOutcome:
        """One attempt: inline for trivial tasks, else through the dispatcher."""
        started = utcnow()
        try:
            if isinstance(task, _INLINE):
                return self._inline(task, run, scope, number, started)
            if not isinstance(task, RunnableTask):
                raise TaskError(f"'{task.type}' cannot run", retriable=False)
            context = self._context(run, scope)
            rendered = self._rendered_task(task, context)
        except (ExpressionError, TaskError) as exc:
            failure = TaskFailure.of(exc)
            if isinstance(exc, ExpressionError) and task.retry is None:
                # The same template fails every attempt, unless the task's own retry says
                # otherwise (Kestra retries it: a template may read taskrun.attemptsCount).
                failure = TaskFailure(failure.message, failure.type, retriable=False)
            return TaskOutcome(
                state=State.FAILED,
                outputs={},
                logs=[],
                error=failure,
                worker=None,
                node=None,
                started_at=started,
                ended_at=utcnow(),
            )
        assert isinstance(rendered, RunnableTask)
        invocation = TaskInvocation(
            task=rendered,
            execution_id=self.id,
            task_run_id=run.id,
            attempt=number,
            namespace=self.flow.namespace,
            flow_id=self.flow.id,
            variables=_data_only(context),
            dsn=self._options.dsn,
            storage=self._options.storage,
            timeout_s=task.timeout.total_seconds() if task.timeout else None,
        )
        return await self._dispatch.run(invocation)

    def _inline(
        self,
        task: Task,
        run: TaskRunState,
        scope: _Scope,
        number: int,
        started: dt.datetime,
    ) -> TaskOutcome:
        context = self._context(run, scope)
        outputs: dict[str, Any] = {}
        logs: list[tuple[dt.datetime, str, str]] = []
        if isinstance(task, Log):
            messages = task.message if isinstance(task.message, list) else [task.message]
            for index, message in enumerate(messages):
                prop = "message" if isinstance(task.message, str) else f"message[{index}]"
                text = self._engine.render(message, context, task=task.id, prop=prop)
                logs.append((utcnow(), task.level.value, text))
        elif isinstance(task, Echo):
            text = self._engine.render(task.format, context, task=task.id, prop="format")
            logs.append((utcnow(), task.level.value, text))
        elif isinstance(task, OutputValues):
            outputs["values"] = _as_text(
                self._engine.render_value(task.values, context, task=task.id, prop="values")
            )
        elif isinstance(task, Labels):
            self._set_labels(task, context)
        elif isinstance(task, Fetch):
            outputs["size"] = self._fetch_size(task)
        else:
            assert isinstance(task, Return)
            outputs["value"] = self._engine.render_value(
                task.value, context, task=task.id, prop="value"
            )
        return TaskOutcome(
            state=State.SUCCESS,
            outputs=outputs,
            logs=logs,
            error=None,
            worker=INLINE_WORKER,
            node=None,
            started_at=started,
            ended_at=utcnow(),
        )

    def _set_labels(self, task: Labels, context: Mapping[str, Any]) -> None:
        value = self._engine.render_value(task.labels, context, task=task.id, prop="labels")
        if isinstance(value, str):
            value = _json_value(value, task.id, "labels")
        if isinstance(value, list):
            value = {
                str(item.get("key")): item.get("value") for item in value if isinstance(item, dict)
            }
        if not isinstance(value, dict):
            raise ExpressionError("labels must be a map or a list of key/value", task=task.id)
        for key in value:
            if str(key).startswith("system."):
                raise TaskError(f"label '{key}' is reserved by the system", retriable=False)
        added = {str(k): _text(v) for k, v in value.items()}
        self.state.execution.labels.update(added)
        self._rec.labels(added)

    def _fetch_size(self, task: Fetch) -> int:
        floor = _LEVELS.index(task.level.value)
        return sum(
            1
            for task_id, level, _ in self._logs
            if level in _LEVELS
            and _LEVELS.index(level) >= floor
            and (not task.tasks_id or task_id in task.tasks_id)
        )

    # ---- flowable tasks ----

    def _child_scope(self, run: TaskRunState, scope: _Scope) -> _Scope:
        return _Scope(
            parent=run, values=scope.values, iteration=scope.iteration, parents=scope.parents
        )

    def _iteration_scope(self, run: TaskRunState, scope: _Scope, value: str, index: int) -> _Scope:
        parent_taskrun = {"taskrun": {"id": run.id, "value": run.value, "iteration": run.iteration}}
        if scope.parents:
            parent_taskrun["parent"] = scope.parents[-1]
        return _Scope(
            parent=run,
            values=(*scope.values, value),
            iteration=index,
            value_here=value,
            parents=(*scope.parents, parent_taskrun),
        )

    async def _sequential(
        self, task: Sequential | AllowFailure | WorkingDirectory, run: TaskRunState, scope: _Scope
    ) -> State:
        state = await self._run_list(task.tasks, self._child_scope(run, scope))
        if isinstance(task, AllowFailure) and state is State.FAILED:
            return State.WARNING
        return state

    async def _parallel(self, task: Parallel, run: TaskRunState, scope: _Scope) -> State:
        inner = self._child_scope(run, scope)
        jobs = [_bind(self._run_task, t, inner) for t in task.tasks if not t.disabled]
        return await self._run_concurrently(jobs, task.concurrent)

    async def _if(self, task: If, run: TaskRunState, scope: _Scope) -> State:
        branch = (
            task.then
            if self._condition(task.condition, task, run, scope, "condition")
            else task.else_
        )
        return await self._run_list(branch, self._child_scope(run, scope))

    async def _switch(self, task: Switch, run: TaskRunState, scope: _Scope) -> State:
        value = (
            self._engine.render(
                str(task.value), self._context(run, scope), task=task.id, prop="value"
            )
            if isinstance(task.value, str)
            else _text(task.value)
        )
        branch = task.cases.get(value)
        self._set_outputs(run, {"value": value, "defaults": branch is None})
        return await self._run_list(
            branch if branch is not None else task.defaults, self._child_scope(run, scope)
        )

    async def _foreach(
        self, task: ForEach | EachSequential | EachParallel, run: TaskRunState, scope: _Scope
    ) -> State:
        source = task.values if isinstance(task, ForEach) else task.value
        values = self._render(source, task, run, scope, "values")
        if values is None or values == "":
            raise ExpressionError("values rendered to null", task=task.id, prop="values")
        if isinstance(values, str):
            values = _json_list(values, task.id)
        if not isinstance(values, list):
            raise ExpressionError(
                f"values must be a list, got {type(values).__name__}", task=task.id, prop="values"
            )
        if any(v is None for v in values):
            raise ExpressionError("values holds a null item", task=task.id, prop="values")
        jobs = [
            _bind(self._run_list, task.tasks, self._iteration_scope(run, scope, _text(v), i))
            for i, v in enumerate(values)
        ]
        if isinstance(task, EachParallel):
            return await self._run_concurrently(jobs, task.concurrent)
        limit = task.concurrency_limit if isinstance(task, ForEach) else 1
        return await self._run_concurrently(jobs, limit)

    async def _dag(self, task: Dag, run: TaskRunState, scope: _Scope) -> State:
        inner = self._child_scope(run, scope)
        nodes = {n.task.id: n for n in task.tasks}
        results: dict[str, State] = {}
        running: dict[str, asyncio.Task[State]] = {}
        limit = task.concurrent or len(nodes)
        failed = False
        try:
            while len(results) < len(nodes):
                for node_id, node in nodes.items():
                    if node_id in results or node_id in running or failed or len(running) >= limit:
                        continue
                    if all(results.get(d) in _DONE for d in node.depends_on):
                        running[node_id] = asyncio.ensure_future(self._run_task(node.task, inner))
                if not running:
                    break  # the rest waits on a failed dependency
                done, _ = await asyncio.wait(running.values(), return_when=asyncio.FIRST_COMPLETED)
                for node_id in [k for k, v in running.items() if v in done]:
                    results[node_id] = running.pop(node_id).result()
                    failed = failed or results[node_id] in (State.FAILED, State.KILLED)
        finally:
            for pending in running.values():
                pending.cancel()
        return successful(results.values())

    async def _subflow(self, task: Subflow, run: TaskRunState, scope: _Scope) -> State:
        if self._subflows is None:
            raise TaskError("flow.Subflow needs a subflow launcher", retriable=False)
        inputs = self._render(task.inputs, task, run, scope, "inputs")
        names = self._render(
            {"namespace": task.namespace, "flowId": task.flow_id}, task, run, scope, "flowId"
        )
        if (names["namespace"], names["flowId"]) != (task.namespace, task.flow_id):
            task = task.model_copy(
                update={"namespace": str(names["namespace"]), "flow_id": str(names["flowId"])}
            )
        try:
            launched = await self._subflows.launch(self, run, task, inputs)
        except (NotFoundError, TaskError) as exc:
            self._log(run, "ERROR", f"subflow {task.namespace}.{task.flow_id}: {exc}")
            return State.FAILED
        child_id, child_state, child_outputs = launched
        self._set_outputs(
            run, {"executionId": child_id, "state": child_state.value, "outputs": child_outputs}
        )
        if not task.wait:
            return State.SUCCESS
        if child_state is State.FAILED or child_state is State.KILLED:
            return State.FAILED if task.transmit_failed else State.WARNING
        return State.WARNING if child_state is State.WARNING else State.SUCCESS

    async def _pause(self, task: Pause, run: TaskRunState, scope: _Scope) -> State:
        paused_at = _entered(run, State.PAUSED) or utcnow()
        if _entered(run, State.PAUSED) is None:
            self._transition(run, State.PAUSED)
            self._set_execution(State.PAUSED)
        event = self._resume_events.setdefault(run.id, asyncio.Event())
        duration = task.duration
        if isinstance(duration, str):
            rendered = self._render(duration, task, run, scope, "pauseDuration")
            try:
                duration = (
                    rendered
                    if isinstance(rendered, dt.timedelta)
                    else parse_duration(str(rendered))
                )
            except ValueError as exc:
                raise ExpressionError(str(exc), task=task.id, prop="pauseDuration") from None
        wait_s = _remaining(paused_at, duration or task.timeout)
        resumed = True
        try:
            if wait_s is None:
                await event.wait()
            else:
                await asyncio.wait_for(event.wait(), wait_s)
        except TimeoutError:
            resumed = False
        finally:
            self._resume_events.pop(run.id, None)
        inputs = self._resume_inputs.pop(run.id, None)
        if not resumed and duration is None:
            self._log(run, "ERROR", f"pause timed out after {task.timeout}")
            return State.FAILED
        if resumed or task.behavior is PauseBehavior.RESUME:
            state = State.SUCCESS
        else:
            state = self._pause_elapsed(task, run)
        if task.on_resume:
            self._set_outputs(run, {"onResume": _on_resume_values(task, inputs)})
        if state is State.CANCELLED:
            return state
        self._transition(run, State.RUNNING)
        self._set_execution(State.RUNNING)
        if task.tasks and state is State.SUCCESS:
            return await self._run_list(task.tasks, self._child_scope(run, scope))
        return state

    def _pause_elapsed(self, task: Pause, run: TaskRunState) -> State:
        """The state `behavior` gives a pause whose duration passed (WARN, FAIL, CANCEL)."""
        message = f"no resume within {task.duration}: {task.behavior.value}"
        if task.behavior is PauseBehavior.WARN:
            self._log(run, "WARN", message)
            return State.WARNING
        self._log(run, "ERROR", message)
        if task.behavior is PauseBehavior.CANCEL:
            self._cancelled = True
            return State.CANCELLED
        return State.FAILED

    async def _sleep(self, task: Sleep, run: TaskRunState, scope: _Scope) -> State:
        started = _entered(run, State.RUNNING) or utcnow()
        remaining = _remaining(started, task.duration)
        if remaining:
            await asyncio.sleep(remaining)
        return State.SUCCESS

    async def _loop_until(self, task: LoopUntil, run: TaskRunState, scope: _Scope) -> State:
        check = task.check_frequency
        interval = check.interval.total_seconds() if check.interval else 1.0
        max_iterations = check.max_iterations or 100
        started = _entered(run, State.RUNNING) or utcnow()
        for index in range(max_iterations):
            self._set_outputs(run, {"iterationCount": index + 1})
            state = await self._run_list(
                task.tasks, self._iteration_scope(run, scope, str(index), index)
            )
            if state in (State.FAILED, State.KILLED):
                return state
            if self._condition(task.condition, task, run, scope, "condition"):
                return State.SUCCESS
            if check.max_duration and utcnow() - started >= check.max_duration:
                break
            await asyncio.sleep(interval)
        self._log(
            run,
            "WARN" if not task.fail_on_max_reached else "ERROR",
            f"'{task.id}' reached its limit before its condition held",
        )
        if task.fail_on_max_reached:
            return State.FAILED
        return State.SUCCESS if isinstance(task, WaitFor) else State.WARNING  # Kestra's rules

    async def _fail(self, task: Fail, run: TaskRunState, scope: _Scope) -> State:
        if task.condition is None or self._condition(task.condition, task, run, scope, "condition"):
            message = self._engine.render(
                task.error_message, self._context(run, scope), task=task.id, prop="errorMessage"
            )
            self._log(run, "ERROR", message)
            return State.FAILED
        return State.SUCCESS


FlowableHandler = Callable[[ExecutionRun, Any, TaskRunState, _Scope], Awaitable[State]]

_FLOWABLE: dict[type[Task], FlowableHandler] = {
    Sequential: ExecutionRun._sequential,
    AllowFailure: ExecutionRun._sequential,
    Parallel: ExecutionRun._parallel,
    If: ExecutionRun._if,
    Switch: ExecutionRun._switch,
    ForEach: ExecutionRun._foreach,
    Dag: ExecutionRun._dag,
    Subflow: ExecutionRun._subflow,
    Pause: ExecutionRun._pause,
    Sleep: ExecutionRun._sleep,
    LoopUntil: ExecutionRun._loop_until,
    WaitFor: ExecutionRun._loop_until,
    Fail: ExecutionRun._fail,
    ForEachItem: run_foreach_item,
    WorkingDirectory: ExecutionRun._sequential,
    EachSequential: ExecutionRun._foreach,
    EachParallel: ExecutionRun._foreach,
}


def _bind(
    func: Callable[[Any, _Scope], Awaitable[State]], first: Any, scope: _Scope
) -> Callable[[], Awaitable[State]]:
    return lambda: func(first, scope)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _json_list(text: str, task_id: str) -> list[Any]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ExpressionError(
            f"values must render to a list, got {text!r}", task=task_id, prop="values"
        ) from None
    if not isinstance(value, list):
        raise ExpressionError(
            f"values must render to a list, got {text!r}", task=task_id, prop="values"
        )
    return value


_KV_CALL = re.compile(r"""kv\(\s*[^,)]+(?:,\s*\\?['"]([\w.-]+)\\?['"])?""")


def _data_only(context: dict[str, Any]) -> dict[str, Any]:
    """The context without the runtime's hooks (``__errorLogs``, ``__kv``): what a worker gets."""
    return {k: v for k, v in context.items() if not k.startswith("__")}


def _below(key: str, parents: set[str]) -> bool:
    """Whether a task-run key lies under one of `parents` (see `child_key`)."""
    return any(key.startswith((parent + "/", parent + "[")) for parent in parents)


def _task_types(flow: Flow) -> dict[str, str]:
    return {t.id: t.type for _, t in walk_tasks(flow)}


def _waitfor_children(flow: Flow) -> frozenset[str]:
    return frozenset(
        c.id for _, t in walk_tasks(flow) if isinstance(t, WaitFor) for _, c in t.children()
    )


def _kv_namespaces(flow: Flow) -> tuple[str, ...]:
    """Namespaces a flow's ``kv(...)`` calls read: its own, and any named literally."""
    text = flow.model_dump_json()
    found = [m.group(1) for m in _KV_CALL.finditer(text)]
    if not found:
        return ()
    return tuple(dict.fromkeys([flow.namespace, *(n for n in found if n)]))


def _as_text(value: Any) -> Any:
    """Kestra renders OutputValues to text: every rendered leaf becomes a string."""
    if isinstance(value, dict):
        return {k: _as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_text(v) for v in value]
    return value if value is None else _text(value)


ATTEMPT_LABEL = "system.attemptNumber"
RETRY_START_LABEL = "system.retryStart"


def _create_new_execution_policy(flow: Flow, state: ExecutionState) -> Retry | None:
    """The CREATE_NEW_EXECUTION retry of a failed task run, else of the flow, if any."""
    tasks = {t.id: t for _, t in walk_tasks(flow)}
    for run in state.task_runs.values():
        task = tasks.get(run.task_id)
        retry = task.retry if task is not None else None
        if run.state is State.FAILED and retry and retry.behavior == "CREATE_NEW_EXECUTION":
            return retry
    if flow.retry is not None and flow.retry.behavior == "CREATE_NEW_EXECUTION":
        return flow.retry
    return None


def _base_delay(retry: Retry, failures: int) -> float:
    """The policy's delay after `failures` failures (no jitter bound by maxDuration)."""
    if retry.type is RetryType.RANDOM:
        low = retry.min_interval.total_seconds() if retry.min_interval else 0.0
        high = retry.max_interval.total_seconds() if retry.max_interval else low
        return random.uniform(low, high)  # noqa: S311 - jitter, not cryptography
    base = retry.interval.total_seconds() if retry.interval else 0.0
    if retry.type is RetryType.EXPONENTIAL:
        base *= (retry.delay_factor or 2.0) ** (failures - 1)
    if retry.max_interval is not None:
        base = min(base, retry.max_interval.total_seconds())
    return base


def _kept(task: Task, level: str) -> bool:
    """Whether a log line at `level` passes the task's ``logLevel``."""
    if task.log_level is None or level not in _LEVELS:
        return True
    return _LEVELS.index(level) >= _LEVELS.index(task.log_level)


def _json_value(text: str, task_id: str, prop: str) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ExpressionError(
            f"{prop} must be JSON, got {text!r}", task=task_id, prop=prop
        ) from None


def _on_resume_values(task: Pause, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``onResume`` outputs: the values given to the resume, else the defaults."""
    if given is not None:
        return dict(given)
    try:  # no resume (the duration passed): each input's default, where it has one
        return dict(input_to_json(parse_inputs(task.on_resume, {})))
    except InputError:
        return {spec.id: input_to_json(spec.defaults) for spec in task.on_resume}


def _entered(run: TaskRunState, state: State) -> dt.datetime | None:
    """When `run` last entered `state` in this run of it, if it did."""
    for entry in reversed(run.history):
        if entry.state is state:
            return entry.date
    return None


def _remaining(since: dt.datetime, duration: dt.timedelta | None) -> float | None:
    if duration is None:
        return None
    return max(0.0, (since + duration - utcnow()).total_seconds())


def _next_delay(
    retry: Retry | None, run: TaskRunState, first_start: dt.datetime, outcome: TaskOutcome | None
) -> float | None:
    """Seconds to wait before the next attempt, or None when no retry is left."""
    if retry is None or retry.behavior == "CREATE_NEW_EXECUTION":
        return None
    if outcome is not None and outcome.error is not None and not outcome.error.retriable:
        return None
    failures = sum(
        1
        for a in run.attempts
        if a.state is State.FAILED and (a.error or {}).get("type") != _INTERRUPTED
    )
    if retry.max_attempts is not None and failures >= retry.max_attempts:
        return None
    if retry.type is RetryType.RANDOM:
        low = retry.min_interval.total_seconds() if retry.min_interval else 0.0
        high = retry.max_interval.total_seconds() if retry.max_interval else low
        delay = random.uniform(low, high)  # noqa: S311 - jitter, not cryptography
    else:
        base = retry.interval.total_seconds() if retry.interval else 0.0
        if retry.type is RetryType.EXPONENTIAL:
            base *= (retry.delay_factor or 2.0) ** (failures - 1)
        delay = base
    if retry.max_interval is not None:
        delay = min(delay, retry.max_interval.total_seconds())
    if (
        retry.max_duration is not None
        and utcnow() + dt.timedelta(seconds=delay) - first_start > retry.max_duration
    ):
        return None
    return delay


def _opaque_secrets(flow: Flow, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The inputs for templates: SECRET ones as `SecretValue` (the sandbox forbids transforms)."""
    from flows import InputType, SecretValue

    secret = [i.id for i in flow.inputs if i.type is InputType.SECRET]
    if not secret or not inputs:
        return inputs
    return {
        k: SecretValue(v) if k in secret and isinstance(v, str) else v for k, v in inputs.items()
    }


def _secret_inputs(flow: Flow, inputs: Mapping[str, Any]) -> list[str]:
    from flows import InputType

    return [
        str(inputs[i.id]) for i in flow.inputs if i.type is InputType.SECRET and inputs.get(i.id)
    ]
