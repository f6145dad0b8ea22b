"""Execution control: start, kill, pause, resume, restart and replay executions.

API-started executions go to the least-loaded actor of the execution pool. A control
call for a running execution goes to whoever holds its lease (`OwnerRegistry`), on this
server or another one sharing the database and the Ray cluster. Restart and replay go
through the store, so they work from any server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

from actors import Execution, ExecutionPool, ExecutionService, Store
from flows import (
    ConflictError,
    Flow,
    Input,
    NotFoundError,
    Pause,
    State,
    input_to_json,
    parse_inputs,
    walk_tasks,
)

from ._catalog import FlowCatalog
from ._owners import Action, OwnerRegistry

RESTARTABLE_STATES = frozenset({State.FAILED, State.KILLED, State.WARNING})
"""The states an execution may be restarted from (as in Kestra)."""

STATE_SETTLE_S = 2.0
"""How long a pause or resume answer waits for the owner's state write to land."""


class ExecutionControl:
    """Starts executions on the pool and controls running ones wherever they run.

    Args:
        store: The started store.
        catalog: The flows.
        pool: The execution pool.
        local: This process's execution service (it runs the webhook executions).
        owners: Lease → owner.
    """

    def __init__(
        self,
        store: Store,
        catalog: FlowCatalog,
        pool: ExecutionPool,
        local: ExecutionService,
        owners: OwnerRegistry,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._pool = pool
        self._local = local
        self._owners = owners

    async def execution(self, execution_id: str) -> Execution:
        """An execution.

        Raises:
            NotFoundError: No such execution.
        """
        found = await self._store.get_execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} not found")
        return found

    async def execute(
        self,
        namespace: str,
        flow_id: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        trigger: Mapping[str, Any] | None = None,
        wait: bool = False,
        within: float | None = None,
        flow: Flow | None = None,
        execution_id: str | None = None,
    ) -> Execution:
        """Create an execution on the pool and start it (waiting for its end when `wait`).

        Args:
            namespace: The flow's namespace.
            flow_id: The flow's id.
            inputs: Raw inputs.
            labels: Execution labels.
            trigger: Trigger variables.
            wait: Return only once the execution ended.
            within: Seconds to wait at most with `wait`.
            flow: The flow's current revision, when the caller has just read it.
            execution_id: The new execution's id, when files were stored under it already.

        Raises:
            NotFoundError: No such flow.
            ConflictError: The flow is disabled.
            InputError: Invalid inputs; nothing is created.
        """
        flow = flow or await self._catalog.flow(namespace, flow_id)
        if flow.disabled:
            raise ConflictError(f"flow {flow.uid} is disabled")
        started = await self._pool.create(
            namespace,
            flow_id,
            dict(inputs or {}),
            revision=flow.revision,
            labels=labels,
            trigger=trigger,
            **({"execution_id": execution_id} if execution_id else {}),
        )
        if wait:
            await self._pool.wait(started.execution_id, within)
        return await self.execution(started.execution_id)

    async def _tell_owner(self, execution_id: str, action: Action, *args: Any) -> bool:
        """Ask the live owner of an execution to act; False when nobody holds it."""
        owner = await self._owners.owner_of(execution_id)
        return False if owner is None else await owner.control(action, execution_id, *args)

    async def on_control(self, payload: str) -> None:
        """Another server asks (``NOTIFY``) to control an execution this process runs."""
        control = json.loads(payload)
        if control.get("owner") != self._local.owner:
            return
        action = str(control["action"])
        if action in ("kill", "pause", "resume"):
            service = self._local
            getattr(service, action)(str(control["executionId"]), *control.get("args", []))

    async def kill(self, execution_id: str) -> Execution:
        """Kill an execution (cascading to its running tasks and subflows).

        Raises:
            NotFoundError: No such execution.
            ConflictError: It already ended.
        """
        execution = await self.execution(execution_id)
        if execution.state.terminal:
            raise ConflictError(f"execution {execution_id} already ended {execution.state.value}")
        if not await self._tell_owner(execution_id, "kill"):
            # Nobody runs it (queued, or its owner is gone): it ends here.
            await self._store.transition(execution_id, State.KILLED)
        with contextlib.suppress(TimeoutError):
            await self._pool.wait(execution_id, 10)
        return await self.execution(execution_id)

    async def resume(self, execution_id: str, inputs: Mapping[str, Any] | None = None) -> Execution:
        """Resume a paused execution, with the ``onResume`` inputs of its `Pause` task.

        The inputs are validated exactly like flow inputs; an execution paused through
        `pause` (no `Pause` task) takes none.

        Raises:
            NotFoundError: No such execution.
            ConflictError: It is not paused.
            InputError: Invalid inputs, each named; nothing is resumed.
        """
        execution = await self.execution(execution_id)
        if execution.state is not State.PAUSED:
            raise ConflictError(f"execution {execution_id} is {execution.state.value}, not PAUSED")
        task_run_id, declared = await self._paused_task(execution)
        values = input_to_json(parse_inputs(declared, dict(inputs or {})))
        resumed = await self._tell_owner(
            execution_id, "resume", task_run_id, values if task_run_id else None
        )
        if not resumed:
            raise ConflictError(f"execution {execution_id} is not waiting to be resumed here")
        return await self._left(execution_id, State.PAUSED)

    async def pause(self, execution_id: str) -> Execution:
        """Pause a RUNNING execution: its running tasks finish, no task starts until resumed.

        Raises:
            NotFoundError: No such execution.
            ConflictError: It is not RUNNING, or runs nowhere this server can reach.
        """
        execution = await self.execution(execution_id)
        if execution.state is not State.RUNNING:
            raise ConflictError(
                f"execution {execution_id} is {execution.state.value}; only a RUNNING one pauses"
            )
        if not await self._tell_owner(execution_id, "pause"):
            raise ConflictError(f"execution {execution_id} cannot be paused now")
        return await self._left(execution_id, State.RUNNING)

    async def _left(self, execution_id: str, state: State) -> Execution:
        """The execution once it left `state` (its owner writes behind), or after a while."""
        deadline = time.monotonic() + STATE_SETTLE_S
        while True:
            execution = await self.execution(execution_id)
            if execution.state is not state or time.monotonic() >= deadline:
                return execution
            await asyncio.sleep(0.01)

    async def _paused_task(self, execution: Execution) -> tuple[str | None, list[Input]]:
        """The paused `Pause` task run of an execution and its ``onResume`` inputs."""
        detail = await self._store.execution_detail(execution.id)
        paused = [
            d.task_run
            for d in (detail.task_runs if detail else [])
            if d.task_run.state is State.PAUSED
        ]
        if not paused:
            return None, []  # paused from outside
        flow = await self._catalog.flow(
            execution.namespace, execution.flow_id, execution.flow_revision
        )
        tasks = {task.id: task for _, task in walk_tasks(flow)}
        task = tasks.get(paused[0].task_id)
        return paused[0].id, list(task.on_resume) if isinstance(task, Pause) else []

    async def restart(self, execution_id: str) -> Execution:
        """Re-run the failed task runs of an ended execution, in the same execution.

        Raises:
            NotFoundError: No such execution.
            ConflictError: It is not FAILED, KILLED or WARNING.
        """
        execution = await self.execution(execution_id)
        if execution.state not in RESTARTABLE_STATES:
            raise ConflictError(
                f"execution {execution_id} is {execution.state.value}; only FAILED, KILLED "
                "and WARNING executions restart"
            )
        if not await self._pool.submit(execution_id, restart=True):
            raise ConflictError(f"execution {execution_id} is held by another owner")
        return await self.execution(execution_id)

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        """A new execution replaying `execution_id` from `task_run_id`.

        Raises:
            NotFoundError: No such execution or task run.
        """
        await self.execution(execution_id)
        return await self.execution(await self._pool.replay(execution_id, task_run_id))
