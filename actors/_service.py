"""The execution service: creates, runs, resumes, kills, restarts and replays executions.

It is the body of an execution actor (and of ``kestrel run`` in-process). It holds no
truth of its own: every execution it runs is loaded from the store under a lease, and
what it learns goes back through a `StoreRecorder`. A lease it fails to renew means
another owner has the execution: the local run is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flows import (
    ConcurrencyBehavior,
    ExpressionEngine,
    Flow,
    InputError,
    NotFoundError,
    Service,
    StaleLeaseError,
    State,
    StoreError,
    Subflow,
    build_context,
    environment_variables,
    global_variables,
    input_to_json,
    parse_flow,
    parse_inputs,
)

from ._input_files import check_file_inputs, needs_storing, store_input_files
from ._interceptors import ExecutionCreated, ExecutionEnded, Interceptor, Interceptors
from ._interpreter import Dispatcher, ExecutionRun, RunOptions
from ._large_outputs import resolve_outputs
from ._recorders import StoreRecorder
from ._run_port import RunPort
from ._runstate import ExecutionState, TaskRunState, derived_id
from ._scope import loop_ids
from ._storage import StorageConfig, StorageFileReader, open_storage
from ._store._ids import new_id
from ._store._ops import ReleaseLeaseOp
from ._store._records import (
    CreateResult,
    Execution,
    ExecutionDetail,
    Lease,
    NewExecution,
    NewTaskRun,
)
from ._store._store import Store
from ._takeovers import fail_lost_execution, max_takeovers, too_many_takeovers

_log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL = dt.timedelta(seconds=10)

_WAITING = frozenset({State.CREATED, State.QUEUED})
_OVER_LIMIT = {
    ConcurrencyBehavior.QUEUE: State.QUEUED,
    ConcurrencyBehavior.CANCEL: State.CANCELLED,
    ConcurrencyBehavior.FAIL: State.FAILED,
}


@dataclass(frozen=True)
class ExecutionSummary:
    """How an execution ended, as `ExecutionService.wait` reports it."""

    id: str
    state: State


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
        self._dispatcher = dispatcher
        self.storage = storage or StorageConfig.local()
        self._engine = engine or ExpressionEngine(file_reader=StorageFileReader(self.storage))
        self._lease_ttl = lease_ttl
        self._envs = envs if envs is not None else environment_variables()
        self._globals = global_variables()
        self._flows: dict[tuple[str, str, int], Flow] = {}
        self._runs: dict[str, ExecutionRun] = {}
        self._tasks: dict[str, asyncio.Task[State]] = {}
        self._leases: dict[str, Lease] = {}
        self._recorders: dict[str, StoreRecorder] = {}
        self._finished: dict[str, asyncio.Event] = {}
        self._recover_every = recover_every
        self._history_store = history_store
        self._loops: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.Task[None]] = set()
        self.recovered = 0
        self.max_takeovers = max_takeovers()

    async def _start(self) -> None:
        self._loops.append(asyncio.create_task(self._renew_loop(), name="lease-renewer"))
        if self._recover_every:
            self._loops.append(asyncio.create_task(self._recover_loop(), name="recovery"))

    async def _stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        tasks = [*self._tasks.values(), *self._retries]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Leases are left to expire: another owner resumes these executions.

    # ---- flows ----

    async def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A flow revision from the store, parsed once and cached.

        Raises:
            NotFoundError: No such flow or revision.
        """
        if revision is not None:
            cached = self._flows.get((namespace, flow_id, revision))
            if cached is not None:
                return cached
        found = await self.store.get_flow(namespace, flow_id, revision, include_deleted=True)
        if found is None:
            at = f" revision {revision}" if revision is not None else ""
            raise NotFoundError(f"flow {namespace}.{flow_id}{at} is not in the store")
        flow = parse_flow(found.source, f"{namespace}.{flow_id}@{found.revision}")
        flow.revision = found.revision
        self._flows[(namespace, flow_id, found.revision)] = flow
        return flow

    async def deploy(self, source: str, file: str = "<string>") -> Flow:
        """Validate a flow's YAML and save it as a new revision when it changed.

        Raises:
            FlowError: The flow is invalid.
        """
        flow = parse_flow(source, file)
        saved = await self.store.save_flow(flow.namespace, flow.id, source)
        flow.revision = saved.flow.revision
        self._flows[(flow.namespace, flow.id, saved.flow.revision)] = flow
        return flow

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
        inputs = parse_inputs(flow, raw_inputs or {})
        if execution_id is None and needs_storing(flow, inputs):
            execution_id = new_id()
        if parent is None:
            check_file_inputs(flow, inputs)  # subflows may pass their parent's files
        if execution_id is not None:
            storage = open_storage(self.storage)
            inputs = await store_input_files(storage, flow, inputs, execution_id)
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
        result = await self.store.create_execution(
            new,
            lease_owner=self.owner if start else None,
            lease_ttl=self._lease_ttl if start else None,
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
        if execution_id in self._tasks and not self._tasks[execution_id].done():
            return True
        if lease is None:
            lease = await self.store.take_execution_lease(execution_id, self.owner, self._lease_ttl)
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
                self._wake_waiters(execution_id)
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
            admitted = await self._admit(flow, execution_id, lease)
            if admitted is not State.RUNNING:
                return True  # queued, cancelled or failed by the concurrency limit
            state.state = State.RUNNING
        recorder = StoreRecorder(self._history_store or self.store, execution_id, lease)
        run = ExecutionRun(
            flow,
            state,
            recorder,
            self._dispatcher,
            self._engine,
            subflows=self,
            options=RunOptions(
                restart=restart,
                dsn=self.store.dsn,
                envs=self._envs,
                storage=self.storage,
                new_execution=self._retry_later(flow, execution),
                kv_snapshot=self._kv_snapshot,
                globals=self._globals,
            ),
            interceptors=self.interceptors,
        )
        self._runs[execution_id] = run
        self._leases[execution_id] = lease
        self._recorders[execution_id] = recorder
        self._finished[execution_id] = asyncio.Event()  # a restart waits anew
        self._tasks[execution_id] = asyncio.create_task(
            self._run(run), name=f"execution-{execution_id}"
        )
        return True

    async def _admit(self, flow: Flow, execution_id: str, lease: Lease) -> State:
        """Take a concurrency slot, or queue/cancel/fail the execution per the flow."""
        assert flow.concurrency is not None
        otherwise = _OVER_LIMIT[flow.concurrency.behavior]
        state = await self.store.admit(
            execution_id, flow.namespace, flow.id, flow.concurrency.limit, otherwise
        )
        if state is not State.RUNNING:
            await self.store.release_lease(lease)
            self._wake_waiters(execution_id)
            _log.info(
                "execution %s %s: flow %s is at its concurrency limit",
                execution_id,
                state.value,
                flow.uid,
            )
        return state

    async def _next_queued(self, flow: Flow) -> None:
        """Start the flow's oldest queued execution, now that a slot may be free."""
        if flow.concurrency is None:
            return
        queued = await self.store.oldest_queued(flow.namespace, flow.id)
        if queued is not None and queued not in self._tasks:
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
            with contextlib.suppress(Exception):
                await self.store.transition(
                    execution_id, State.FAILED, lease=self._leases.get(execution_id)
                )
            return State.FAILED
        finally:
            if self.interceptors.wants("execution_ended"):
                ended = ExecutionEnded(run.flow, execution_id, run.state.state)
                self.interceptors.execution_ended(ended)
            lease = self._leases.pop(execution_id, None)
            self._runs.pop(execution_id, None)
            self._recorders.pop(execution_id, None)
            self._tasks.pop(execution_id, None)
            if lease is not None:
                with contextlib.suppress(Exception):
                    # Batched with the run's last writes (same store, in order).
                    await (self._history_store or self.store).enqueue(ReleaseLeaseOp(lease))
            self._wake_waiters(execution_id)
            if run.flow.concurrency is not None and self.running:
                with contextlib.suppress(Exception):
                    await self._next_queued(run.flow)

    def _wake_waiters(self, execution_id: str) -> None:
        """Wake `wait` callers; the event goes (later callers read the store)."""
        finished = self._finished.pop(execution_id, None)
        if finished is not None:
            finished.set()

    # ---- control ----

    def running_ids(self) -> list[str]:
        """Ids of the executions running here."""
        return list(self._runs)

    async def drain(self, within: float) -> int:
        """Let the executions running here end, waiting `within` seconds at most.

        Nothing is cancelled (`stop` does that); leases keep being renewed meanwhile.

        Returns:
            How many executions are still running.
        """
        tasks = [t for t in self._tasks.values() if not t.done()]
        if tasks and within > 0:
            await asyncio.wait(tasks, timeout=within)
        return sum(1 for t in tasks if not t.done())

    def kill(self, execution_id: str) -> bool:
        """Kill an execution running here; False if it is not here."""
        run = self._runs.get(execution_id)
        if run is None:
            return False
        run.kill()
        return True

    def resume(
        self,
        execution_id: str,
        task_run_id: str | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> bool:
        """Resume an execution running here (its paused task run, with `onResume` inputs)."""
        run = self._runs.get(execution_id)
        return run.resume(task_run_id, inputs) if run is not None else False

    def pause(self, execution_id: str) -> bool:
        """Pause a RUNNING execution running here: no task starts until it is resumed."""
        run = self._runs.get(execution_id)
        return run.pause() if run is not None else False

    async def wait(self, execution_id: str, within: float | None = None) -> ExecutionSummary:
        """Wait until an execution is terminal (polling the store if it runs elsewhere).

        Raises:
            TimeoutError: Not terminal within `within` seconds.
            NotFoundError: Unknown execution.
        """

        async def until_done() -> ExecutionSummary:
            while True:
                event = self._finished.get(execution_id)
                if event is not None and execution_id in self._tasks:
                    await event.wait()
                found = await self.store.get_execution(execution_id)
                if found is None:
                    raise NotFoundError(f"execution {execution_id} does not exist")
                if found.state.terminal:
                    return ExecutionSummary(found.id, found.state)
                if execution_id not in self._tasks:
                    await asyncio.sleep(0.2)  # running elsewhere: poll the store

        return await asyncio.wait_for(until_done(), within)

    async def restart(self, execution_id: str) -> bool:
        """Re-run the failed task runs of a terminal execution, in the same execution."""
        found = await self.store.get_execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        if not found.state.terminal:
            return False
        if not await self.run_execution(execution_id, restart=True):
            return False
        await asyncio.sleep(0)  # the run records RUNNING as its first step ...
        recorder = self._recorders.get(execution_id)
        if recorder is not None:
            await recorder.flush()  # ... and the caller sees it once it is durable
        return True

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> str:
        """A new execution linked to `execution_id` that re-runs from `task_run_id`.

        Task runs that finished before the chosen one (other than its enclosing flowable
        tasks) are copied with their attempts and outputs; the rest runs again with the
        recorded flow revision, trigger and inputs.

        Raises:
            NotFoundError: Unknown execution or task run.
        """
        detail = await self.store.execution_detail(execution_id)
        if detail is None:
            raise NotFoundError(f"execution {execution_id} does not exist")
        source = detail.execution
        flow = await self.flow(source.namespace, source.flow_id, source.flow_revision)
        kept = _replayed_runs(detail, task_run_id)
        old = ExecutionState.from_detail(detail, loop_ids(flow))
        await resolve_outputs(self.storage, old)
        new_id_ = new_id()
        renamed = {r.id: derived_id(new_id_, r.key) for r in old.task_runs.values()}
        new = NewExecution(
            id=new_id_,
            namespace=source.namespace,
            flow_id=source.flow_id,
            flow_revision=source.flow_revision,
            inputs=dict(source.inputs),
            trigger=source.trigger,
            labels=dict(source.labels),
            original_id=source.original_id or source.id,
            parent_id=source.parent_id,
            parent_task_run_id=source.parent_task_run_id,
            task_runs=tuple(
                NewTaskRun(
                    task_id=r.task_id,
                    id=renamed[r.id],
                    parent_task_run_id=(
                        renamed[r.parent_task_run_id] if r.parent_task_run_id else None
                    ),
                    value=r.value,
                    iteration=r.iteration,
                    state=r.state,
                )
                for r in (d.task_run for d in kept)
            ),
        )
        result = await self.store.create_execution(
            new, lease_owner=self.owner, lease_ttl=self._lease_ttl
        )
        lease = result.lease
        for d in kept:
            for attempt in d.attempts:
                await self.store.record_attempt(
                    new_id_, renamed[d.task_run.id], attempt, lease=lease
                )
            if d.outputs:
                await self.store.set_outputs(
                    new_id_, renamed[d.task_run.id], d.outputs, lease=lease
                )
        await self.run_execution(new_id_, lease=lease, flow=flow)
        return new_id_

    # ---- subflows ----

    async def launch(
        self,
        parent: RunPort,
        run: TaskRunState,
        task: Subflow,
        inputs: dict[str, Any],
        *,
        key: str | None = None,
    ) -> tuple[str, State, dict[str, Any]]:
        """Create (or find, when resumed) the child execution of a Subflow task run.

        `key` tells apart the children of one task run (``ForEachItem`` batches).
        """
        flow = await self.flow(task.namespace, task.flow_id, task.revision)
        labels = {**(parent.state.execution.labels if task.inherit_labels else {}), **task.labels}
        # Kestra's correlation id: every execution of a subflow chain carries the root's id.
        root = parent.state.execution
        labels["system.correlationId"] = root.labels.get("system.correlationId", root.id)
        try:
            result = await self.create(
                flow,
                inputs,
                labels=labels,
                dedupe_key=f"subflow:{run.id}" + (f":{key}" if key is not None else ""),
                parent=(parent.id, run.id),
            )
        except InputError as exc:
            raise StoreError(f"subflow {task.namespace}.{task.flow_id}: {exc}") from exc
        child = result.execution
        if not result.created and not child.state.terminal and child.id not in self._tasks:
            await self.run_execution(child.id)
        if not task.wait:
            return child.id, child.state, {}
        try:
            summary = await self.wait(child.id)
        except asyncio.CancelledError:
            self.kill(child.id)
            raise
        ended = await self.store.get_execution(child.id)
        outputs = dict(ended.outputs or {}) if ended else {}
        if task.outputs:
            outputs.update(await self._subflow_outputs(flow, child.id, task))
        return child.id, summary.state, outputs

    async def _subflow_outputs(self, flow: Flow, child_id: str, task: Subflow) -> dict[str, Any]:
        """A Subflow's ``outputs``, rendered in the ended child execution's context."""
        detail = await self.store.execution_detail(child_id)
        if detail is None:
            return {}
        state = ExecutionState.from_detail(detail, loop_ids(flow))
        context = build_context(
            flow=flow,
            execution={"id": child_id, "state": detail.execution.state.value},
            inputs=detail.execution.inputs,
            outputs=state.outputs_tree(),
            envs={},
        )
        rendered = self._engine.render_value(task.outputs, context, task=task.id, prop="outputs")
        return dict(rendered)

    async def _kv_snapshot(self, namespace: str) -> dict[str, Any]:
        """The live KV entries of a namespace, for ``kv()`` in templates."""
        return {entry.key: entry.value for entry in await self.store.kv_list(namespace)}

    def _retry_later(
        self, flow: Flow, execution: Execution
    ) -> Callable[[float, dict[str, str]], None]:
        """Retry ``behavior: CREATE_NEW_EXECUTION``: the same run again, as a new execution."""

        def start(delay: float, labels: dict[str, str]) -> None:
            async def later() -> None:
                await asyncio.sleep(delay)
                await self.create(
                    flow,
                    execution.inputs,
                    trigger=execution.trigger,
                    labels={**execution.labels, **labels},
                    dedupe_key=f"retry:{execution.id}",
                )

            task = asyncio.create_task(later(), name=f"retry-{execution.id}")
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

        return start

    # ---- recovery ----

    async def _recover_loop(self) -> None:
        assert self._recover_every is not None
        limit = 200
        while True:
            await asyncio.sleep(self._recover_every)
            try:
                while await self.recover(limit) >= limit:
                    pass  # a full pass: more orphans are waiting, take them now
            except Exception:
                _log.exception("recovery pass failed")

    async def recover(self, limit: int = 50) -> int:
        """Resume here the executions whose owner's lease expired; how many were taken.

        Executions never leased (created but not started, or queued) count once they are
        three lease times old.
        """
        orphans = await self.store.find_expired_executions(
            limit=limit, unleased_after=3 * self._lease_ttl
        )
        taken = 0
        for execution in orphans:
            if execution.id in self._tasks:
                continue
            try:
                if await self.run_execution(execution.id):
                    taken += 1
                    _log.warning("resumed execution %s after its owner was lost", execution.id)
            except (StoreError, NotFoundError) as exc:
                _log.warning("could not resume %s: %s", execution.id, exc)
        self.recovered += taken
        return taken

    # ---- leases ----

    async def _renew_loop(self) -> None:
        period = max(0.5, self._lease_ttl.total_seconds() / 3)
        while True:
            await asyncio.sleep(period)
            held = list(self._leases.values())
            try:
                renewed, stale = await self.store.renew_leases(held, self._lease_ttl)
            except StoreError as exc:
                _log.warning("could not renew %d lease(s): %s", len(held), exc)
                continue
            for lease in renewed:
                if lease.key in self._leases:
                    self._leases[lease.key] = lease
                    recorder = self._recorders.get(lease.key)
                    if recorder is not None:
                        recorder.lease = lease
            for lease in stale:
                if self._leases.get(lease.key) is not lease:
                    continue  # released (or retaken) meanwhile
                _log.warning("lost the lease of %s; stopping it here", lease.key)
                task = self._tasks.get(lease.key)
                if task is not None:
                    task.cancel()


def _replayed_runs(detail: ExecutionDetail, task_run_id: str | None) -> list[Any]:
    """The task runs a replay from `task_run_id` keeps: finished ones created before it."""
    runs = list(detail.task_runs)
    if task_run_id is None:
        return []
    index = next((i for i, d in enumerate(runs) if d.task_run.id == task_run_id), None)
    if index is None:
        raise NotFoundError(f"task run {task_run_id} is not in execution {detail.execution.id}")
    by_id = {d.task_run.id: d for d in runs}
    ancestors: set[str] = set()
    parent = runs[index].task_run.parent_task_run_id
    while parent:
        ancestors.add(parent)
        parent = by_id[parent].task_run.parent_task_run_id if parent in by_id else None
    done = {State.SUCCESS, State.WARNING, State.SKIPPED}
    kept = [d for d in runs[:index] if d.task_run.id not in ancestors and d.task_run.state in done]
    kept_ids = {d.task_run.id for d in kept}
    # A kept run's parent must be kept too, or be an ancestor that runs again.
    return [
        d
        for d in kept
        if d.task_run.parent_task_run_id is None
        or d.task_run.parent_task_run_id in kept_ids
        or d.task_run.parent_task_run_id in ancestors
    ]
