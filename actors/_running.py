"""The executions a service is running in this process: one record each."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flows import NotFoundError, State

from ._interpreter import ExecutionRun
from ._recorders import StoreRecorder
from ._store._records import Lease
from ._store._store import Store


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
        """A run ended here: its record goes."""
        return self._by_id.pop(execution_id, None)

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
