"""What every run an execution service starts gets: one dispatcher, engine, envs, storage, hooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flows import ExpressionEngine, Flow, global_variables

from ._interpreter import Dispatcher, ExecutionRun, RunOptions
from ._new_execution import RetriesLater
from ._recorders import StoreRecorder
from ._runstate import ExecutionState
from ._store._records import Execution, Lease
from ._store._store import Store
from ._subflows import Subflows

if TYPE_CHECKING:
    from ._service import ExecutionService


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
