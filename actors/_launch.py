"""Launching executions in one service: the row, the run, the record, the retries.

The new execution's row (inputs validated, files stored), the `ExecutionRun` built for it,
the record it runs under while here, and retries as new executions.

`ExecutionService.create` builds the row with `new_execution`, the store creates it,
`RunFactory.make` builds its `ExecutionRun`, and `RunningExecutions` holds it (one `Running`
record per execution) until it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flows import (
    ExpressionEngine,
    Flow,
    NotFoundError,
    State,
    global_variables,
    input_to_json,
    parse_inputs,
)

from ._input_files import check_file_inputs, needs_storing, store_input_files
from ._interpreter import Dispatcher, ExecutionRun, RunOptions
from ._recorders import StoreRecorder
from ._runstate import ExecutionState
from ._storage import StorageConfig, open_storage
from ._store._ids import new_id
from ._store._records import Execution, Lease, NewExecution
from ._store._store import Store
from ._subflows import Subflows

if TYPE_CHECKING:
    from ._service import ExecutionService


async def new_execution(
    flow: Flow,
    raw_inputs: Mapping[str, Any] | None,
    storage: StorageConfig,
    *,
    trigger: Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    dedupe_key: str | None,
    parent: tuple[str, str] | None,
    execution_id: str | None,
) -> NewExecution:
    """A new execution of a saved flow (see `ExecutionService.create` for the arguments).

    FILE inputs given as bytes or local files are written to the internal storage first;
    the execution keeps their URIs (it gets its id here then).

    Raises:
        InputError: Inputs are invalid.
    """
    assert flow.revision is not None
    inputs = parse_inputs(flow, raw_inputs or {})
    if execution_id is None and needs_storing(flow, inputs):
        execution_id = new_id()
    if parent is None:
        check_file_inputs(flow, inputs)  # subflows may pass their parent's files
    if execution_id is not None:
        inputs = await store_input_files(open_storage(storage), flow, inputs, execution_id)
    new = NewExecution(
        namespace=flow.namespace,
        flow_id=flow.id,
        flow_revision=flow.revision,
        inputs={k: input_to_json(v) for k, v in inputs.items()},
        trigger=dict(trigger) if trigger is not None else None,
        labels={**flow.label_dict(), **(labels or {})},
        dedupe_key=dedupe_key,
        parent_id=parent[0] if parent else None,
        parent_task_run_id=parent[1] if parent else None,
    )
    if execution_id is not None:
        new = dataclasses.replace(new, id=execution_id)
    return new


class RetriesLater:
    """Retry ``behavior: CREATE_NEW_EXECUTION``: the same run again, as a new execution.

    Args:
        create: `ExecutionService.create`.
    """

    def __init__(self, create: Callable[..., Awaitable[Any]]) -> None:
        self._create = create
        self._tasks: set[asyncio.Task[None]] = set()

    def starter(self, flow: Flow, execution: Execution) -> Callable[[float, dict[str, str]], None]:
        """What a run calls (`RunOptions.new_execution`) to start its retry after a delay."""

        def start(delay: float, labels: dict[str, str]) -> None:
            async def later() -> None:
                await asyncio.sleep(delay)
                await self._create(
                    flow,
                    execution.inputs,
                    trigger=execution.trigger,
                    labels={**execution.labels, **labels},
                    dedupe_key=f"retry:{execution.id}",
                )

            task = asyncio.create_task(later(), name=f"retry-{execution.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return start

    async def cancel(self) -> None:
        """Cancel the retries still waiting (the service stops)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class RunFactory:
    """Builds the `ExecutionRun`s of one `ExecutionService`.

    Args:
        service: The service (its store, storage and interceptors; it starts subflows).
        dispatcher: Where runnable tasks run.
        engine: The process's expression engine.
        envs: ``envs`` for templates.
        history_store: Where the runs' write-behind history goes.
    """

    def __init__(
        self,
        service: ExecutionService,
        dispatcher: Dispatcher,
        engine: ExpressionEngine,
        envs: Mapping[str, str],
        history_store: Store,
    ) -> None:
        self._service = service
        self._dispatcher = dispatcher
        self._engine = engine
        self._envs = envs
        self._globals = global_variables()
        self._history = history_store
        self._subflows = Subflows(service, engine)
        self.later = RetriesLater(service.create)

    def make(
        self,
        flow: Flow,
        state: ExecutionState,
        execution: Execution,
        lease: Lease,
        *,
        restart: bool,
    ) -> tuple[ExecutionRun, StoreRecorder]:
        """The run of `state` under `lease`, and the recorder of its history."""
        service = self._service
        recorder = StoreRecorder(self._history, execution.id, lease)
        run = ExecutionRun(
            flow,
            state,
            recorder,
            self._dispatcher,
            self._engine,
            subflows=self._subflows,
            options=RunOptions(
                restart=restart,
                dsn=service.store.dsn,
                envs=self._envs,
                storage=service.storage,
                new_execution=self.later.starter(flow, execution),
                kv_snapshot=self._kv_snapshot,
                globals=self._globals,
            ),
            interceptors=service.interceptors,
        )
        return run, recorder

    async def _kv_snapshot(self, namespace: str) -> dict[str, Any]:
        """The live KV entries of a namespace, for ``kv()`` in templates."""
        store = self._service.store
        return {entry.key: entry.value for entry in await store.kv_list(namespace)}


@dataclass(frozen=True)
class ExecutionSummary:
    """How an execution ended, as `ExecutionService.wait` reports it."""

    id: str
    state: State


@dataclass
class Running:
    """One execution running here.

    Attributes:
        run: Its interpreter.
        task: The asyncio task running it.
        lease: Our lease on it (a renewal keeps it: owner and epoch stay).
        recorder: Its write-behind history (carries the lease too).
        finished: Set once it ended here (and its record is gone).
    """

    run: ExecutionRun
    task: asyncio.Task[State]
    lease: Lease
    recorder: StoreRecorder
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class RunningExecutions:
    """The executions running in one service, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, Running] = {}

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self._by_id

    def get(self, execution_id: str) -> Running | None:
        """The record of a running execution, if it runs here."""
        return self._by_id.get(execution_id)

    def add(self, entry: Running) -> None:
        """A run started here."""
        self._by_id[entry.run.id] = entry

    def pop(self, execution_id: str) -> Running | None:
        """A run ended here: its record goes, and what its recorder held goes to the store.

        Released here, before the caller enqueues the lease release: a run that ended
        without its last `flush` (cancelled, fenced, crashed) still has its held changes
        written under its lease, ahead of the release, as when nothing was held.
        """
        entry = self._by_id.pop(execution_id, None)
        if entry is not None:
            entry.recorder.release()
        return entry

    def active(self, execution_id: str) -> bool:
        """Whether the execution's run here has not ended."""
        entry = self._by_id.get(execution_id)
        return entry is not None and not entry.task.done()

    def ids(self) -> list[str]:
        """Ids of the executions running here."""
        return list(self._by_id)

    def leases(self) -> list[Lease]:
        """Our leases on them."""
        return [entry.lease for entry in self._by_id.values()]

    def tasks(self) -> list[asyncio.Task[State]]:
        """Their asyncio tasks."""
        return [entry.task for entry in self._by_id.values()]

    def kill(self, execution_id: str) -> bool:
        """Kill an execution running here; False if it is not here."""
        entry = self._by_id.get(execution_id)
        if entry is None:
            return False
        entry.run.kill()
        return True

    def pause(self, execution_id: str) -> bool:
        """Pause a RUNNING execution running here: no task starts until it is resumed."""
        entry = self._by_id.get(execution_id)
        return entry.run.pause() if entry is not None else False

    def resume(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Resume an execution running here (its paused task run, with `onResume` inputs)."""
        entry = self._by_id.get(execution_id)
        return entry.run.resume(task_run_id, inputs) if entry is not None else False

    async def drain(self, within: float) -> int:
        """Let the executions running here end, waiting `within` seconds at most.

        Returns:
            How many are still running.
        """
        tasks = [t for t in self.tasks() if not t.done()]
        if tasks and within > 0:
            await asyncio.wait(tasks, timeout=within)
        return sum(1 for t in tasks if not t.done())

    async def wait(
        self, store: Store, execution_id: str, within: float | None = None
    ) -> ExecutionSummary:
        """Wait until an execution is terminal (polling the store if it runs elsewhere).

        Raises:
            TimeoutError: Not terminal within `within` seconds.
            NotFoundError: Unknown execution.
        """

        async def until_done() -> ExecutionSummary:
            while True:
                entry = self._by_id.get(execution_id)
                if entry is not None:
                    await entry.finished.wait()
                found = await store.get_execution(execution_id)
                if found is None:
                    raise NotFoundError(f"execution {execution_id} does not exist")
                if found.state.terminal:
                    return ExecutionSummary(found.id, found.state)
                if execution_id not in self._by_id:
                    await asyncio.sleep(0.2)  # running elsewhere: poll the store

        return await asyncio.wait_for(until_done(), within)
