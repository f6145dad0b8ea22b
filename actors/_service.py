"""The execution service: creates, runs, resumes, kills, restarts and replays executions.

It is the body of an execution actor (and of ``kestrel run`` in-process). It holds no
truth of its own: every execution it runs is loaded from the store under a lease, and
what it learns goes back through a `StoreRecorder`. A lease it fails to renew means
another owner has the execution: the local run is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flows import (
    ExpressionEngine,
    Flow,
    NotFoundError,
    Service,
    StaleLeaseError,
    State,
    StoreError,
    environment_variables,
)

from ._concurrency import admit
from ._flow_cache import FlowCache
from ._interceptors import ExecutionCreated, ExecutionEnded, Interceptor, Interceptors
from ._interpreter import Dispatcher, ExecutionRun
from ._large_outputs import resolve_outputs
from ._launch import ExecutionSummary, RunFactory, Running, RunningExecutions, new_execution
from ._lease_keeper import LeaseKeeper
from ._replay import replay, restart
from ._runstate import ExecutionState
from ._scope import loop_ids
from ._storage import StorageConfig, StorageFileReader
from ._store._ids import new_id
from ._store._ops import ReleaseLeaseOp
from ._store._records import (
    CreateResult,
    Execution,
    ExecutionDetail,
    Lease,
)
from ._store._store import Store
from ._takeovers import fail_lost_execution, max_takeovers, too_many_takeovers

_log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = dt.timedelta(seconds=10)

_WAITING = frozenset({State.CREATED, State.QUEUED})


class ExecutionService(Service):
    """Runs executions in this process, under leases, recording into the store.

    Args:
        store: The started store.
        dispatcher: Where runnable tasks run.
        owner: This owner's unique name (used for leases).
        engine: The expression engine; one per process.
        lease_ttl: How long a lease lasts without renewal.
        envs: ``envs`` for templates (defaults to the process environment as it is when
            the service is made: read once, not on every task).
        recover_every: Seconds between looks for executions whose owner died (their
            lease expired), which this service then resumes; None: never.
        history_store: A second, started store (same database) for the write-behind
            history of running executions, so that new executions' creates never queue
            behind it; the main store when None.
        interceptors: Hooked into every execution created and run here (more may be
            added to `interceptors` before executions start).
    """

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        owner: str | None = None,
        engine: ExpressionEngine | None = None,
        lease_ttl: dt.timedelta = DEFAULT_LEASE_TTL,
        envs: Mapping[str, str] | None = None,
        recover_every: float | None = None,
        history_store: Store | None = None,
        storage: StorageConfig | None = None,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        super().__init__()
        self.interceptors = Interceptors(interceptors)
        self.store = store
        self.owner = owner or f"service-{new_id()}"
        self.storage = storage or StorageConfig.local()
        self.lease_ttl = lease_ttl
        self._flows = FlowCache(store)
        self._running = RunningExecutions()
        self._keeper = LeaseKeeper(self, self._running)
        self._runs = RunFactory(
            self,
            dispatcher,
            engine or ExpressionEngine(file_reader=StorageFileReader(self.storage)),
            envs if envs is not None else environment_variables(),
            history_store or store,
        )
        self._recover_every = recover_every
        self._history_store = history_store
        self._loops: list[asyncio.Task[None]] = []
        self.max_takeovers = max_takeovers()

    @property
    def recovered(self) -> int:
        """How many executions this service resumed after their owner was lost."""
        return self._keeper.recovered

    async def _start(self) -> None:
        self._loops.append(asyncio.create_task(self._keeper.renew_loop(), name="lease-renewer"))
        if self._recover_every:
            recovery = self._keeper.recover_loop(self._recover_every)
            self._loops.append(asyncio.create_task(recovery, name="recovery"))

    async def _stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        tasks = self._running.tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._runs.later.cancel()
        # Leases are left to expire: another owner resumes these executions.

    # ---- flows ----

    async def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A flow revision from the store, parsed once and cached (`FlowCache.get`)."""
        return await self._flows.get(namespace, flow_id, revision)

    async def deploy(self, source: str, file: str = "<string>") -> Flow:
        """Validate a flow's YAML and save it as a new revision when it changed."""
        return await self._flows.deploy(source, file)

    # ---- creating and starting ----

    async def create(
        self,
        flow: Flow,
        raw_inputs: Mapping[str, Any] | None = None,
        *,
        trigger: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        dedupe_key: str | None = None,
        parent: tuple[str, str] | None = None,
        start: bool = True,
        event_at: float | None = None,
        execution_id: str | None = None,
    ) -> CreateResult:
        """Create an execution durably (once per dedupe key) and start running it here.

        FILE inputs given as bytes or local files are written to the internal storage
        first; the execution keeps their URIs.

        Args:
            flow: The flow revision to run (saved: it has a revision).
            raw_inputs: Inputs as given; validated here.
            trigger: The ``trigger.*`` variables.
            labels: Labels besides the flow's.
            dedupe_key: The source position: a second create with it finds the first.
            parent: ``(execution id, task run id)`` of a Subflow task that starts it.
            start: Run it here once created (else it only gets its row).
            event_at: When the source event happened (epoch seconds), for interceptors
                that measure latency.
            execution_id: The id to create it under (its input files are stored there).

        Raises:
            InputError: Inputs are invalid; nothing is created.
        """
        if flow.revision is None:
            raise StoreError(f"flow {flow.uid} must be deployed (saved) before it runs")
        new = await new_execution(
            flow,
            raw_inputs,
            self.storage,
            trigger=trigger,
            labels=labels,
            dedupe_key=dedupe_key,
            parent=parent,
            execution_id=execution_id,
        )
        result = await self.store.create_execution(
            new,
            lease_owner=self.owner if start else None,
            lease_ttl=self.lease_ttl if start else None,
        )
        if self.interceptors.wants("execution_created"):
            self.interceptors.execution_created(
                ExecutionCreated(flow, result.execution, result.created, event_at)
            )
        if start and result.created and result.lease is not None:
            await self.run_execution(
                result.execution.id, lease=result.lease, flow=flow, fresh=result.execution
            )
        return result

    async def run_execution(
        self,
        execution_id: str,
        *,
        lease: Lease | None = None,
        flow: Flow | None = None,
        restart: bool = False,
        fresh: Execution | None = None,
    ) -> bool:
        """Run (or resume) an execution here; False if another owner holds it.

        Args:
            execution_id: The execution.
            lease: Our lease on it, if already taken (else it is taken here).
            flow: Its flow revision, if at hand.
            restart: Re-run its failed task runs.
            fresh: The execution as just created (no task runs yet): saves a read.

        Raises:
            NotFoundError: Unknown execution or flow.
        """
        if self._running.active(execution_id):
            return True
        if lease is None:
            lease = await self.store.take_execution_lease(execution_id, self.owner, self.lease_ttl)
            if lease is None:
                return False
        detail: ExecutionDetail | None = None
        if fresh is not None:
            execution = fresh
        else:
            detail = await self.store.execution_detail(execution_id)
            if detail is None:
                await self.store.release_lease(lease)
                raise NotFoundError(f"execution {execution_id} does not exist")
            execution = detail.execution
            if not restart and too_many_takeovers(lease, self.max_takeovers):
                await fail_lost_execution(self.store, detail, lease, self.max_takeovers)
                return True
        if flow is None or flow.revision != execution.flow_revision:
            flow = await self.flow(execution.namespace, execution.flow_id, execution.flow_revision)
        if detail is None:
            state = ExecutionState(execution=execution, state=execution.state)
            state.started_at = execution.created_at
        else:
            state = ExecutionState.from_detail(detail, loop_ids(flow))
            await resolve_outputs(self.storage, state)
        if flow.concurrency is not None and not restart and state.state in _WAITING:
            admitted = await admit(self.store, flow, execution_id, lease)
            if admitted is not State.RUNNING:
                return True  # queued, cancelled or failed by the concurrency limit
            state.state = State.RUNNING
        run, recorder = self._runs.make(flow, state, execution, lease, restart=restart)
        task = asyncio.create_task(self._run(run), name=f"execution-{execution_id}")
        self._running.add(Running(run, task, lease, recorder))
        return True

    async def _next_queued(self, flow: Flow) -> None:
        """Start the flow's oldest queued execution, now that a slot may be free."""
        if flow.concurrency is None:
            return
        queued = await self.store.oldest_queued(flow.namespace, flow.id)
        if queued is not None and queued not in self._running:
            await self.run_execution(queued)

    async def _run(self, run: ExecutionRun) -> State:
        execution_id = run.id
        try:
            return await run.run()
        except StaleLeaseError:
            _log.warning("execution %s was taken over by another owner; dropped here", run.id)
            return State.KILLED
        except Exception:
            _log.exception("execution %s crashed in its interpreter", run.id)
            with contextlib.suppress(Exception):
                await run.flush()  # its history so far lands first: FAILED comes after it
            entry = self._running.get(execution_id)
            with contextlib.suppress(Exception):
                lease = entry.lease if entry is not None else None
                await self.store.transition(execution_id, State.FAILED, lease=lease)
            return State.FAILED
        finally:
            if self.interceptors.wants("execution_ended"):
                ended = ExecutionEnded(run.flow, execution_id, run.state.state)
                self.interceptors.execution_ended(ended)
            entry = self._running.pop(execution_id)
            if entry is not None:
                with contextlib.suppress(Exception):
                    # Batched with the run's last writes (same store, in order).
                    history = self._history_store or self.store
                    await history.enqueue(ReleaseLeaseOp(entry.lease))
                entry.finished.set()  # wakes `wait` callers; later ones read the store
            if run.flow.concurrency is not None and self.running:
                with contextlib.suppress(Exception):
                    await self._next_queued(run.flow)

    # ---- control ----

    def runs_here(self, execution_id: str) -> bool:
        """Whether the execution is running in this service."""
        return execution_id in self._running

    def running_ids(self) -> list[str]:
        """Ids of the executions running here."""
        return self._running.ids()

    async def drain(self, within: float) -> int:
        """Let the executions running here end, waiting `within` seconds at most.

        Nothing is cancelled (`stop` does that); leases keep being renewed meanwhile.

        Returns:
            How many executions are still running.
        """
        return await self._running.drain(within)

    def kill(self, execution_id: str) -> bool:
        """Kill an execution running here; False if it is not here."""
        return self._running.kill(execution_id)

    def resume(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Resume an execution running here (its paused task run, with `onResume` inputs)."""
        return self._running.resume(execution_id, task_run_id, inputs)

    def pause(self, execution_id: str) -> bool:
        """Pause a RUNNING execution running here: no task starts until it is resumed."""
        return self._running.pause(execution_id)

    async def wait(self, execution_id: str, within: float | None = None) -> ExecutionSummary:
        """Wait until an execution is terminal (`RunningExecutions.wait`)."""
        return await self._running.wait(self.store, execution_id, within)

    async def restart(self, execution_id: str) -> bool:
        """Re-run the failed task runs of a terminal execution (`actors/_replay.py`)."""
        return await restart(self, execution_id)

    async def flushed(self, execution_id: str) -> None:
        """Return once what the execution's run here recorded so far is durable."""
        entry = self._running.get(execution_id)
        if entry is not None:
            await entry.recorder.flush()

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> str:
        """A new execution linked to `execution_id` that re-runs from `task_run_id`.

        See `actors/_replay.py`.

        Raises:
            NotFoundError: Unknown execution or task run.
        """
        return await replay(self, execution_id, task_run_id)

    async def recover(self, limit: int = 50) -> int:
        """Resume here the executions whose owner's lease expired; how many were taken."""
        return await self._keeper.recover(limit)
