"""The execution interpreter: walks a flow with Kestra's semantics, one execution at a time.

Flowable tasks (Sequential, Parallel, If, ...) and trivial ones (Log, Return) run here, as
coroutines; runnable tasks go to a `Dispatcher` (a Ray task or a warm worker). Every state
change goes to a `Recorder` in order. Task runs that a previous owner already finished are
found by their derived ids and not run again: that is how recovery, restart and replay
resume an execution.

`ExecutionRun` is the walk itself (lists of tasks, one task, the execution's end); its
parts see it through `RunPort`: `RunJournal` (what is recorded), `Templates` (context
and rendering), `Attempts` (attempts and retries), `Flowables` and `Pauses` (the
flowable tasks), and the SLA checks (`actors/_sla.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from flows import (
    ExpressionEngine,
    ExpressionError,
    Fail,
    Flow,
    FlowableTask,
    Pause,
    RunnableTask,
    State,
    Subflow,
    Task,
)

from ._attempts import Attempts
from ._flowables import Flowables
from ._interceptors import Interceptors
from ._journal import RunJournal
from ._pauses import Pauses
from ._retry import new_execution_after
from ._run_port import Dispatcher, Job, Recorder, RunOptions, SubflowLauncher
from ._runstate import ExecutionState, TaskRunState, successful
from ._scope import LOOP_TYPES, Scope
from ._sla import check_assertions, run_within_sla
from ._templates import Templates, secret_inputs

__all__ = [
    "LOOP_TYPES",
    "Dispatcher",
    "ExecutionRun",
    "Recorder",
    "RunOptions",
    "SubflowLauncher",
]

_DONE = frozenset({State.SUCCESS, State.WARNING, State.SKIPPED})
_STOPS = (State.FAILED, State.KILLED, State.CANCELLED)


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
        self.options = options or RunOptions()
        self.subflows = subflows
        self.journal = RunJournal(
            state, recorder, engine, secret_inputs(flow, state.execution.inputs)
        )
        self.templates = Templates(flow, state, engine, self.options, self.journal.logs)
        self._attempts = Attempts(self, dispatcher, interceptors)
        self._pauses = Pauses(self)
        self._flowables = Flowables(self, self._pauses).handlers
        self._killed = False
        self._cancelled = False
        self._hold: asyncio.Event | None = None  # set while paused from outside
        self._main: asyncio.Task[Any] | None = None

    # ---- control from outside ----

    @property
    def id(self) -> str:
        """The execution's id."""
        return self.state.id

    async def flush(self) -> None:
        """Wait until every change recorded so far is durable (write-behind caught up)."""
        await self.journal.flush()

    def kill(self) -> None:
        """Kill the execution: running tasks are cancelled, their task runs end KILLED."""
        self._killed = True
        if self._main is not None and not self._main.done():
            self._main.cancel()

    def cancel(self) -> None:
        """End the execution CANCELLED once its running tasks end (Pause ``CANCEL``)."""
        self._cancelled = True

    def pause(self) -> bool:
        """Pause a RUNNING execution: running tasks finish, no task starts until `resume`.

        Returns:
            False when it is not RUNNING (already paused, or ended).
        """
        if self._hold is not None or self.state.state is not State.RUNNING:
            return False
        self._hold = asyncio.Event()
        self.journal.set_execution(State.PAUSED)
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
            self.journal.set_execution(State.RUNNING)
            hold.set()
            return True
        return self._pauses.resume(task_run_id, inputs)

    # ---- the run ----

    async def run(self) -> State:
        """Run (or resume) the execution to a terminal state and return it."""
        self._main = asyncio.current_task()
        if self.state.state.terminal and not self.options.restart:
            return self.state.state
        if self.state.state is not State.RUNNING or self.options.restart:
            self.journal.set_execution(State.RUNNING)
        try:
            final = await run_within_sla(self, self._run_body)
        except asyncio.CancelledError:
            if not self._killed:
                raise
            final = State.KILLED
        if self._cancelled:
            final = State.CANCELLED
        outputs = await self._flow_outputs() if final in _DONE else None
        if outputs is None and final is not State.KILLED and self.flow.outputs:
            final = final if final is not State.SUCCESS else State.FAILED
        if final in _DONE and self.flow.sla:
            final = await check_assertions(self, final)
        again = self._new_execution() if final is State.FAILED and not self._killed else None
        if again is not None:
            final = State.RETRIED
            self.journal.log(None, "WARN", f"failed: a new execution starts in {again[0]:.3g} s")
        self.journal.set_execution(final, outputs)
        if self.flow.after_execution and not self._killed:
            await self.run_list(self.flow.after_execution, Scope())
        await self.journal.flush()
        if again is not None and self.options.new_execution is not None:
            self.options.new_execution(*again)
        return final

    def _new_execution(self) -> tuple[float, dict[str, str]] | None:
        """Delay and labels of the next execution when a CREATE_NEW_EXECUTION retry applies."""
        if self.options.new_execution is None:
            return None
        return new_execution_after(self.flow, self.state)

    async def _run_body(self) -> State:
        main = await self.run_list(self.flow.tasks, Scope())
        stopped = self._killed or self._cancelled
        if main in (State.FAILED, State.KILLED) and self.flow.errors and not stopped:
            await self.run_list(self.flow.errors, Scope())
        if self.flow.finally_:
            await self.run_list(self.flow.finally_, Scope())
        return main

    async def _flow_outputs(self) -> dict[str, Any] | None:
        if not self.flow.outputs:
            return {}
        context = self.templates.context(None, Scope())
        out: dict[str, Any] = {}
        for spec in self.flow.outputs:
            try:
                out[spec.id] = await self.templates.render_value(
                    spec.value, context, prop=f"outputs.{spec.id}"
                )
            except ExpressionError as exc:
                self.journal.log(None, "ERROR", str(exc))
                return None
        return out

    # ---- lists of tasks ----

    async def run_list(self, tasks: Sequence[Task], scope: Scope) -> State:
        """Run tasks one after another; stop at the first failure."""
        states: list[State] = []
        for task in tasks:
            if task.disabled:
                continue
            state = await self.run_task(task, scope)
            states.append(state)
            if state in _STOPS or self._cancelled:
                break
        return successful(states)

    async def run_concurrently(self, jobs: Sequence[Job], limit: int) -> State:
        """Run jobs at once (at most `limit`, 0 = all); after a failure start no more."""
        semaphore = asyncio.Semaphore(limit if limit > 0 else max(1, len(jobs)))
        failed = False

        async def guarded(job: Job) -> State:
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

    def _reusable(self, run: TaskRunState) -> bool:
        if run.state in _DONE:
            return True
        rerun = self._attempts.rerun
        if run.state is State.FAILED and rerun and _below(run.key, rerun):
            return False  # a retried flowable task runs its failed children again
        return run.state is State.FAILED and not self.options.restart

    async def run_task(self, task: Task, scope: Scope) -> State:
        """Run one task (or find it done) in `scope`."""
        while self._hold is not None:  # paused from outside: start nothing new
            await self._hold.wait()
        journal = self.journal
        run, _ = journal.task_run(task, scope)
        if self._reusable(run):
            return run.state
        journal.transition(run, State.RUNNING)
        await self.templates.refresh_kv()
        try:
            if task.run_if is not None and not await self.templates.task_condition(
                task.run_if, task, run, scope, "runIf"
            ):
                state = State.SKIPPED
            else:
                state = await self._with_timeout(task, run, scope)
        except asyncio.CancelledError:
            journal.transition(run, State.KILLED)
            raise
        except ExpressionError as exc:
            journal.log(run, "ERROR", str(exc))
            state = State.FAILED
        if state is State.FAILED and task.allow_failure:
            state = State.WARNING
        if state is State.WARNING and task.allow_warning:
            state = State.SUCCESS
        journal.transition(run, state)
        return state

    async def _with_timeout(self, task: Task, run: TaskRunState, scope: Scope) -> State:
        body = self._body(task, run, scope)
        if task.timeout is None or isinstance(task, RunnableTask):
            return await body  # runnable tasks get their timeout per attempt
        try:
            return await asyncio.wait_for(body, task.timeout.total_seconds())
        except TimeoutError:
            self.journal.log(run, "ERROR", f"task '{task.id}' timed out after {task.timeout}")
            return State.FAILED

    async def _body(self, task: Task, run: TaskRunState, scope: Scope) -> State:
        handler = self._flowables.get(type(task))
        if handler is None:
            return await self._attempts.run(task, run, scope)
        retry = task.retry or (self.flow.retry if isinstance(task, Fail) else None)
        if retry is not None and not isinstance(task, Subflow | Pause):
            state = await self._attempts.retried(task, run, scope, handler, retry)
        else:
            state = await handler(task, run, scope)
        if state is State.FAILED and isinstance(task, FlowableTask) and task.errors:
            await self.run_list(task.errors, scope.child(run))
        return state


def _below(key: str, parents: set[str]) -> bool:
    """Whether a task-run key lies under one of `parents` (see `child_key`)."""
    return any(key.startswith((parent + "/", parent + "[")) for parent in parents)
