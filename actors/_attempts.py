"""Attempts of a task run: inline or on a worker, retried by the task's policy.

A runnable task's attempt is rendered here and sent to the `Dispatcher`; a trivial one
runs in `InlineTasks`. Attempts left RUNNING by a dead owner end FAILED as interrupted
(and do not count against the retry policy). Flowable tasks with a ``retry`` get one
attempt per run of their handler (Kestra's behaviour): `Attempts.retried`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

from flows import ExpressionError, Retry, RunnableTask, State, Task, TaskError

from ._failure import TaskFailure
from ._inline_tasks import INLINE_TYPES, LEVELS, InlineTasks
from ._interceptors import AttemptFinished, AttemptStarted, Interceptors
from ._invocation import INLINE_WORKER, TaskInvocation, TaskOutcome, failed_outcome
from ._retry import INTERRUPTED, next_delay
from ._run_port import Dispatcher, RunPort
from ._runstate import TaskRunState
from ._scope import Scope
from ._store._records import Attempt, utcnow
from ._templates import data_only

FlowableHandler = Callable[[Task, TaskRunState, Scope], Awaitable[State]]


class Attempts:
    """Runs the attempts of one execution run's task runs.

    Args:
        port: The run.
        dispatcher: Where runnable attempts go.
        interceptors: Told when attempts start and finish.
    """

    def __init__(
        self, port: RunPort, dispatcher: Dispatcher, interceptors: Interceptors | None
    ) -> None:
        self._port = port
        self._dispatch = dispatcher
        self._interceptors = interceptors
        self._inline = InlineTasks(port)
        self.rerun: set[str] = set()  # keys of flowable task runs being retried

    async def run(self, task: Task, run: TaskRunState, scope: Scope) -> State:
        """Run attempts of an inline or runnable task until success or retries run out."""
        journal = self._port.journal
        retry = task.retry or self._port.flow.retry
        first_start = utcnow()
        self._close_interrupted(run)
        while True:
            number = len(run.attempts) + 1
            outcome = await self._attempt(task, run, scope, number)
            if outcome.state is State.SUCCESS:
                await journal.set_task_outputs(
                    task, run, outcome.outputs, self._port.options.storage
                )
                retried = any(a.state is State.FAILED for a in run.attempts[:-1])
                return (
                    State.WARNING
                    if retried and retry is not None and retry.warning_on_retry
                    else State.SUCCESS
                )
            delay = next_delay(retry, run, first_start, outcome)
            if delay is None:
                if outcome.outputs:
                    await journal.set_task_outputs(
                        task, run, outcome.outputs, self._port.options.storage
                    )
                return State.FAILED
            journal.transition(run, State.RETRYING)
            await asyncio.sleep(delay)
            journal.transition(run, State.RUNNING)

    async def retried(
        self,
        task: Task,
        run: TaskRunState,
        scope: Scope,
        handler: FlowableHandler,
        retry: Retry,
    ) -> State:
        """A flowable task retried by its policy, one attempt each (as Kestra does).

        A retry runs the task's failed children again (each gets a new attempt); the
        children that succeeded are kept.
        """
        journal = self._port.journal
        first_start = utcnow()
        try:
            while True:
                started = utcnow()
                number = len(run.attempts) + 1
                journal.attempt(
                    run, Attempt(number=number, state=State.RUNNING, started_at=started)
                )
                state = await handler(task, run, scope)
                ended = Attempt(number=number, state=state, started_at=started, ended_at=utcnow())
                journal.attempt(run, ended, replace=True)
                if state is not State.FAILED:
                    return state
                delay = next_delay(retry, run, first_start, None)
                if delay is None:
                    return state
                self.rerun.add(run.key)
                journal.transition(run, State.RETRYING)
                await asyncio.sleep(delay)
                journal.transition(run, State.RUNNING)
        finally:
            self.rerun.discard(run.key)

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
                        "type": INTERRUPTED,
                    },
                )
                self._port.journal.closed_attempt(run, index, closed)

    async def _attempt(
        self, task: Task, run: TaskRunState, scope: Scope, number: int
    ) -> TaskOutcome:
        journal = self._port.journal
        execution_id = self._port.id
        started = utcnow()
        journal.attempt(run, Attempt(number=number, state=State.RUNNING, started_at=started))
        hooks = self._interceptors
        if hooks is not None and hooks.wants("attempt_started"):
            hooks.attempt_started(AttemptStarted(execution_id, run.id, task.id, number))
        try:
            outcome = await self._execute(task, run, scope, number)
        except asyncio.CancelledError:
            killed = Attempt(
                number=number, state=State.KILLED, started_at=started, ended_at=utcnow()
            )
            journal.attempt(run, killed, replace=True)
            raise
        for at, level, message in outcome.logs:
            if _kept(task, level):
                journal.log(run, level, message, number, at)
        failure = outcome.error
        if failure is not None:
            failure = failure.masked(journal.mask)
            journal.log(run, "ERROR", failure.message, number)
        ended = Attempt(
            number=number,
            state=outcome.state,
            started_at=outcome.started_at or started,
            ended_at=outcome.ended_at or utcnow(),
            worker=outcome.worker,
            node=outcome.node,
            error=None if failure is None else failure.to_json(),
        )
        journal.attempt(run, ended, replace=True)
        if hooks is not None and hooks.wants("attempt_finished"):
            on_worker = outcome.worker is not None and outcome.worker != INLINE_WORKER
            finished = AttemptFinished(execution_id, run.id, task.id, number, outcome, on_worker)
            hooks.attempt_finished(finished)
        return outcome

    async def _execute(
        self, task: Task, run: TaskRunState, scope: Scope, number: int
    ) -> TaskOutcome:
        """One attempt: inline for trivial tasks, else through the dispatcher."""
        started = utcnow()
        try:
            if isinstance(task, INLINE_TYPES):
                return await self._inline.run(task, run, scope, started)
            if not isinstance(task, RunnableTask):
                raise TaskError(f"'{task.type}' cannot run", retriable=False)
            context = self._port.templates.context(run, scope)
            rendered = await self._port.templates.rendered_task(task, context)
        except (ExpressionError, TaskError) as exc:
            return _failed(task, exc, started)
        assert isinstance(rendered, RunnableTask)
        flow, options = self._port.flow, self._port.options
        invocation = TaskInvocation(
            task=rendered,
            execution_id=self._port.id,
            task_run_id=run.id,
            attempt=number,
            namespace=flow.namespace,
            flow_id=flow.id,
            variables=data_only(context),
            dsn=options.dsn,
            storage=options.storage,
            timeout_s=task.timeout.total_seconds() if task.timeout else None,
        )
        try:
            return await self._dispatch.run(invocation)
        except Exception as exc:
            # Dispatchers turn Ray's failures into outcomes; anything left must still end
            # this attempt (and its task run) FAILED, never leave them RUNNING forever.
            return _not_dispatched(exc, started)


def _not_dispatched(exc: Exception, started: dt.datetime) -> TaskOutcome:
    """The outcome of an attempt whose dispatcher raised instead of answering."""
    from ._ray_errors import unwrap_ray_error  # imports Ray: not at the interpreter's import

    cause = unwrap_ray_error(exc)
    text = str(cause).strip()
    message = f"the attempt could not be dispatched: {text.splitlines()[0] if text else ''}"
    return failed_outcome(message.rstrip(": "), type(cause).__name__, started_at=started)


def _failed(task: Task, exc: ExpressionError | TaskError, started: dt.datetime) -> TaskOutcome:
    """The outcome of an attempt that failed before it could run."""
    failure = TaskFailure.of(exc)
    # An expression fails the same way every attempt, unless the task's own retry says
    # otherwise (Kestra retries it: a template may read taskrun.attemptsCount).
    retriable = failure.retriable and not (isinstance(exc, ExpressionError) and task.retry is None)
    return failed_outcome(failure.message, failure.type, retriable=retriable, started_at=started)


def _kept(task: Task, level: str) -> bool:
    """Whether a log line at `level` passes the task's ``logLevel``."""
    if task.log_level is None or level not in LEVELS:
        return True
    return LEVELS.index(level) >= LEVELS.index(task.log_level)
