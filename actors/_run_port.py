"""The interpreter's seams: what it writes to, where runnable tasks go, and what its parts see.

`Recorder`, `Dispatcher` and `SubflowLauncher` are what an `ExecutionRun` is given;
`RunPort` is the narrow view of the run that its parts (flowable handlers, attempts, SLA
checks) get, so none of them reaches into the run's internals.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from flows import Flow, State, Subflow, Task

from ._invocation import TaskInvocation, TaskOutcome
from ._runstate import ExecutionState, TaskRunState
from ._scope import Scope
from ._storage import StorageConfig
from ._store._records import Attempt, LogLine

if TYPE_CHECKING:
    from ._journal import RunJournal
    from ._templates import Templates


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
        parent: RunPort,
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


Job = Callable[[], Awaitable[State]]


class RunPort(Protocol):
    """What the parts of an execution run see of it."""

    flow: Flow
    state: ExecutionState
    options: RunOptions
    subflows: SubflowLauncher | None
    journal: RunJournal
    templates: Templates

    @property
    def id(self) -> str:
        """The execution's id."""

    async def run_task(self, task: Task, scope: Scope) -> State:
        """Run one task (or find it done) in `scope`."""

    async def run_list(self, tasks: Sequence[Task], scope: Scope) -> State:
        """Run tasks one after another; stop at the first failure."""

    async def run_concurrently(self, jobs: Sequence[Job], limit: int) -> State:
        """Run jobs at once (at most `limit`, 0 = all); after a failure start no more."""

    def cancel(self) -> None:
        """End the execution CANCELLED once its running tasks end (Pause ``CANCEL``)."""
