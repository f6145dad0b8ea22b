"""The server's runtime: store, Ray, execution pool and listener hosts, wired together.

Everything the REST API, the webhooks and the flows-folder sync do goes through one
`Runtime`, so the HTTP layer stays a thin translation of requests into these calls.

Webhook executions run in the server process itself, as a listener host runs its
triggers' executions: the request is answered once the execution is durably created
(under this process's lease), and its runnable tasks go to a warm worker actor. If the
server dies, the lease lapses and a pool actor resumes the execution.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from typing import Any, Literal

from actors import (
    CONTROL_CHANNEL,
    FLOW_CHANNEL,
    RAY_NAMESPACE,
    TRIGGER_LABEL,
    EmbeddedPostgres,
    Execution,
    ExecutionHost,
    ExecutionPool,
    ExecutionService,
    FirstTaskLatency,
    FlowChange,
    FlowChanges,
    ObjectStorage,
    PoolOptions,
    StorageConfig,
    Store,
    TriggerInfo,
    TriggerStats,
    TriggerStatus,
    ensure_ray,
    listener_host_class,
    new_id,
    open_storage,
    owner_actor,
    remote_call,
    retire_actor,
    spread_over_nodes,
)
from flows import (
    ConflictError,
    ExpressionEngine,
    Flow,
    Input,
    KestrelError,
    NotFoundError,
    NotStartedError,
    Pause,
    Service,
    State,
    Webhook,
    build_context,
    event_conditions_hold,
    execution_prefix,
    input_to_json,
    parse_flow,
    parse_inputs,
    redact_dsn,
    walk_tasks,
)

from ._settings import Settings

_log = logging.getLogger("kestrel.runtime")
_CONDITIONS_ENGINE = ExpressionEngine()
"""Evaluates webhook trigger conditions (the request is data in its context)."""

SHUTDOWN_DRAIN_S = 30.0
"""Seconds a stopping server lets running executions end, all hosts together."""


def new_execution_id() -> str:
    """A fresh execution id (files are stored under it before the execution is created)."""
    return new_id()


RESTARTABLE_STATES = frozenset({State.FAILED, State.KILLED, State.WARNING})
"""The states an execution may be restarted from (as in Kestra)."""


STATE_SETTLE_S = 2.0
"""How long a pause or resume answer waits for the owner's state write to land."""


class Runtime(Service):
    """Kestrel's server-side runtime.

    Args:
        settings: Where the database and Ray are, and how big the pools are.
        storage: The internal storage; from ``settings.storage`` when None.
    """

    def __init__(self, settings: Settings, storage: StorageConfig | None = None) -> None:
        super().__init__()
        self.settings = settings
        self._embedded: EmbeddedPostgres | None = None
        self._store: Store | None = None
        self._pool: ExecutionPool | None = None
        self._hosts: list[Any] = []
        self._host_names: list[str] = []
        self._prefix = f"kestrel-{new_id()[:8]}"
        self._parsed: dict[tuple[str, str, int], Flow] = {}
        # The current revision of each flow, parsed. This runtime is the only writer of
        # flows (the API and the flows-folder sync call `deploy`/`delete_flow`, which
        # also tell the listener hosts), so it updates this map as it writes.
        self._current: dict[tuple[str, str], Flow] = {}
        self._flow_writes = 0
        self._flow_lock = asyncio.Lock()
        self._local: ExecutionHost | None = None
        self._webhook_stats: dict[str, TriggerStats] = {}
        self._changes: FlowChanges | None = None
        # Triggers switched off through the API (webhooks are checked here, the others
        # by their listener host): loaded at start, kept current by `set_trigger_disabled`.
        self._switched_off: set[tuple[str, str, str]] = set()
        self.folder_files: dict[tuple[str, str], str] = {}
        """``(namespace, flow_id)`` → the flows-folder file the flow comes from (kept by
        the folder sync): the API refuses to delete those, the file would bring it back."""
        if storage is None and settings.storage is None and settings.data_dir is not None:
            storage = StorageConfig.local(settings.data_dir / "storage")
        self.storage_config = dataclasses.replace(
            storage or StorageConfig.parse(settings.storage),
            inline_outputs_bytes=settings.inline_outputs_bytes,
        )
        self._purging: asyncio.Task[None] | None = None

    # ---- lifecycle ----

    @property
    def storage(self) -> ObjectStorage:
        """The internal storage."""
        return open_storage(self.storage_config)

    @property
    def store(self) -> Store:
        """The started store."""
        if self._store is None:
            raise NotStartedError("the runtime is not started")
        return self._store

    @property
    def pool(self) -> ExecutionPool:
        """The execution pool."""
        if self._pool is None:
            raise NotStartedError("the runtime is not started")
        return self._pool

    @property
    def local(self) -> ExecutionService:
        """The execution service of this process (it runs the webhook executions)."""
        if self._local is None:
            raise NotStartedError("the runtime is not started")
        return self._local.service

    async def _start(self) -> None:
        try:
            await self._start_parts()
        except BaseException:
            # Leave nothing behind: stop whatever did start (the embedded Postgres above all).
            await self._stop()
            raise

    async def _start_parts(self) -> None:
        dsn = self.settings.db
        if dsn is None:
            data_dir = self.settings.data_dir
            self._embedded = EmbeddedPostgres(
                None if data_dir is None else data_dir / "postgres",
                keep_running=self.settings.keep_db,
            )
            await self._embedded.start()
            dsn = self._embedded.dsn
            _log.info(
                "embedded Postgres ready at %s (data in %s)",
                redact_dsn(dsn),
                self._embedded.data_dir,
            )
        self._store = Store(dsn)
        await self._store.start()
        _log.info("store ready: migrations applied")
        self._switched_off = await self._store.disabled_triggers()
        await self.storage.check()
        _log.info("internal storage: %s", self.storage_config.describe())
        ensure_ray(self.settings.ray_address)
        _log.info("Ray ready (%s)", self.settings.ray_address or "local instance")
        self._pool = ExecutionPool(
            self._store,
            PoolOptions(
                min_actors=self.settings.execution_actors,
                max_actors=max(self.settings.execution_actors, self.settings.max_execution_actors),
                name_prefix=f"{self._prefix}-exec",
                # Reachable by name from the other servers on this cluster.
                actor_options={"namespace": RAY_NAMESPACE},
                storage=self.storage_config,
                tracing=self.settings.otel_endpoint,
            ),
        )
        host_cls = listener_host_class()
        self._host_names = [f"{self._prefix}-host-{i}" for i in range(self.settings.listener_hosts)]
        self._hosts = [
            host_cls.options(name=name, namespace=RAY_NAMESPACE, **spread_over_nodes(index)).remote(
                dsn,
                name,
                index=index,
                count=len(self._host_names),
                trigger_lease_s=self.settings.trigger_lease_s,
                warm_workers=1,
                storage=self.storage_config,
                tracing=self.settings.otel_endpoint,
            )
            for index, name in enumerate(self._host_names)
        ]
        # Webhook executions run here: history written behind through its own store (a
        # create never queues behind it), runnable tasks on warm workers. Recovery of
        # orphaned executions is left to the pool.
        self._local = ExecutionHost(
            dsn,
            f"{self._prefix}-gateway-{new_id()}",
            store=self._store,
            warm_workers=self.settings.webhook_workers,
            lease_ttl=dt.timedelta(seconds=self._pool.options.lease_ttl_s),
            storage=self.storage_config,
            tracing=self.settings.otel_endpoint,
        )
        self._local.service.interceptors.add(
            FirstTaskLatency(self._webhook_stats_of, TRIGGER_LABEL)
        )
        await asyncio.gather(
            self._pool.start(),
            self._local.start(),
            *(h.ready.remote() for h in self._hosts),
        )
        # Flows other servers on this database change reach us by LISTEN/NOTIFY.
        self._changes = FlowChanges(dsn, self._on_flow_change, self._on_control)
        await self._changes.start()
        self._purging = asyncio.create_task(self._purge_loop(), name="kv-purge")
        _log.info(
            "%d execution actor(s), %d listener host(s) and %d webhook worker(s) warm",
            self._pool.size,
            len(self._hosts),
            self.settings.webhook_workers,
        )

    async def _stop(self) -> None:
        """Stop taking work, drain everything in parallel within one deadline, then close.

        Listener hosts stop their listeners first (unacknowledged deliveries come again);
        then the hosts, the pool actors and this process's webhook executions all drain
        together for at most `SHUTDOWN_DRAIN_S`. Whatever still runs is cancelled (its
        lease lapses; it is resumed on the next start). Stores are closed whatever failed.
        """
        _log.info("stopping listeners, then draining executions")
        await _cancelled(self._purging)
        self._purging = None
        if self._changes is not None:
            await self._changes.stop()
        hosts, self._hosts = self._hosts, []
        # One deadline for all: every host, pool actor and this process drain at once.
        drains: list[Any] = [retire_actor(h, SHUTDOWN_DRAIN_S) for h in hosts]
        if self._local is not None:
            drains.append(self._local.shutdown(SHUTDOWN_DRAIN_S))
        if self._pool is not None:
            drains.append(self._pool.shutdown(SHUTDOWN_DRAIN_S))
        try:
            results = await asyncio.gather(*drains, return_exceptions=True)
            for failed in (r for r in results if isinstance(r, BaseException)):
                _log.warning("draining failed: %r", failed)
        finally:
            for part in (
                self._local,  # cancels what did not end (its leases lapse), closes its stores
                self._pool,
                self._store,
                self._embedded,
            ):
                if part is None:
                    continue
                try:
                    await part.stop()
                except Exception as exc:
                    _log.warning("stopping %s failed: %r", type(part).__name__, exc)
        _log.info("stopped")

    async def _purge_loop(self) -> None:
        """Delete expired KV entries every `kv_purge_interval_s` (reads ignore them anyway)."""
        while True:
            await asyncio.sleep(self.settings.kv_purge_interval_s)
            try:
                purged = await self.store.kv_purge_expired()
            except Exception as exc:
                _log.warning("purging expired KV entries failed: %s", exc)
                continue
            if purged:
                _log.debug("purged %d expired KV entries", purged)

    def _webhook_stats_of(
        self, namespace: str, flow_id: str, trigger_id: str
    ) -> TriggerStats | None:
        return self._webhook_stats.get(f"{namespace}.{flow_id}/{trigger_id}")

    # ---- flows ----

    async def deploy(
        self, source: str, file: str = "<api>", *, from_folder: bool = False
    ) -> tuple[Flow, bool]:
        """Validate and save a flow; deploy its triggers when it changed.

        Args:
            source: The flow's YAML.
            file: Where it comes from, for error positions.
            from_folder: `file` is in the flows folder (the API will not delete the flow).

        Returns:
            The flow (with its revision) and whether a new revision was made.

        Raises:
            FlowError: The flow is invalid; nothing changes.
        """
        flow = parse_flow(source, file)
        if from_folder:  # before the flow is visible: a DELETE never slips in between
            self.folder_files[(flow.namespace, flow.id)] = file
        async with self._flow_lock:  # writes, cache updates and trigger pushes stay in order
            saved = await self.store.save_flow(flow.namespace, flow.id, source)
            flow.revision = saved.flow.revision
            self._flow_writes += 1
            self._current[(flow.namespace, flow.id)] = flow
            self._parsed[(flow.namespace, flow.id, flow.revision)] = flow
            if saved.changed:
                await self._deploy_triggers(flow)
                await self._tell_peers(flow.namespace, flow.id)
                _log.info("flow %s is at revision %d", flow.uid, flow.revision)
        return flow, saved.changed

    async def _deploy_triggers(self, flow: Flow) -> None:
        # Every host: each runs the listeners (slots) of the flow's triggers that fall to
        # it (its primary host, the next ones for `parallelism`) and stops the others.
        await asyncio.gather(
            *(
                remote_call(host.deploy.remote(flow.namespace, flow.id, flow.revision))
                for host in self._hosts
            )
        )

    async def _undeploy_triggers(self, namespace: str, flow_id: str) -> None:
        await asyncio.gather(
            *(remote_call(host.undeploy.remote(namespace, flow_id)) for host in self._hosts)
        )

    async def delete_flow(self, namespace: str, flow_id: str, *, from_folder: bool = False) -> None:
        """Delete (disable) a flow: its triggers stop; its history stays.

        Args:
            namespace: The flow's namespace.
            flow_id: The flow's id.
            from_folder: The flows-folder sync deletes it (its file is gone).

        Raises:
            NotFoundError: No such flow.
            ConflictError: The flow comes from a file of the flows folder (and would come
                back from it on the next start): delete the file instead.
        """
        file = self.folder_files.get((namespace, flow_id))
        if file is not None and not from_folder:
            raise ConflictError(
                f"flow {namespace}.{flow_id} comes from the flows folder ({file}): "
                "delete the file instead"
            )
        async with self._flow_lock:
            deleted = await self.store.delete_flow(namespace, flow_id)
            self._flow_writes += 1
            self._current.pop((namespace, flow_id), None)
            if not deleted:
                raise NotFoundError(f"flow {namespace}.{flow_id} not found")
            await self._undeploy_triggers(namespace, flow_id)
            await self._tell_peers(namespace, flow_id)
        _log.info("flow %s.%s deleted; its triggers stopped", namespace, flow_id)

    async def _tell_peers(self, namespace: str, flow_id: str) -> None:
        """Tell the other servers on this database that a flow changed (NOTIFY)."""
        change = FlowChange(namespace, flow_id, origin=self._prefix)
        try:
            await self.store.notify(FLOW_CHANNEL, change.payload())
        except KestrelError as exc:  # the write is durable; peers resync on reconnect
            _log.warning("could not tell other servers about %s.%s: %s", namespace, flow_id, exc)

    async def _on_control(self, payload: str) -> None:
        """Another server asks to kill, pause or resume an execution this process runs."""
        control = json.loads(payload)
        if self._local is None or control.get("owner") != self._local.owner:
            return
        action = str(control["action"])
        if action in ("kill", "pause", "resume"):
            service = self._local.service
            getattr(service, action)(str(control["executionId"]), *control.get("args", []))

    async def _on_flow_change(self, change: FlowChange) -> None:
        """Another server changed a flow: forget our copy, redeploy its triggers here."""
        if change.origin == self._prefix:
            return
        if change.namespace is None or change.flow_id is None:  # resync everything
            keys = {(r.namespace, r.flow_id) for r in await self.store.list_flows()}
            keys |= set(self._current)
        else:
            keys = {(change.namespace, change.flow_id)}
        async with self._flow_lock:
            self._switched_off = await self.store.disabled_triggers()
            for namespace, flow_id in sorted(keys):
                self._flow_writes += 1
                self._current.pop((namespace, flow_id), None)
                if await self.store.get_flow(namespace, flow_id) is None:
                    await self._undeploy_triggers(namespace, flow_id)
                    continue
                await self._deploy_triggers(await self.flow(namespace, flow_id))
        _log.info("flows changed by another server: %s", ", ".join(f"{n}.{f}" for n, f in keys))

    async def flow(self, namespace: str, flow_id: str, revision: int | None = None) -> Flow:
        """A stored flow revision, parsed (the current one from memory once read).

        Raises:
            NotFoundError: No such flow or revision.
        """
        if revision is None:
            current = self._current.get((namespace, flow_id))
            if current is not None:
                return current
        writes = self._flow_writes
        found = await self.store.get_flow(namespace, flow_id, revision)
        if found is None:
            raise NotFoundError(f"flow {namespace}.{flow_id} not found")
        key = (namespace, flow_id, found.revision)
        flow = self._parsed.get(key)
        if flow is None:  # revisions never change: parse each once
            flow = parse_flow(found.source, f"{namespace}.{flow_id}")
            flow.revision = found.revision
            self._parsed[key] = flow
        if revision is None and writes == self._flow_writes:
            # No flow was written while we read: this is still the current revision.
            self._current[(namespace, flow_id)] = flow
        return flow

    # ---- executions ----

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
        """Create an execution and start it (waiting for its end when `wait`).

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
            InputError: Invalid inputs; nothing is created.
        """
        flow = flow or await self.flow(namespace, flow_id)
        if flow.disabled:
            raise ConflictError(f"flow {flow.uid} is disabled")
        started = await self.pool.create(
            namespace,
            flow_id,
            dict(inputs or {}),
            revision=flow.revision,
            labels=labels,
            trigger=trigger,
            **({"execution_id": execution_id} if execution_id else {}),
        )
        if wait:
            await self.pool.wait(started.execution_id, within)
        return await self.execution(started.execution_id)

    async def purge(
        self,
        before: dt.datetime,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> tuple[int, int]:
        """Delete ended executions created before `before`, with their logs and files.

        Returns:
            How many executions and how many files were deleted.
        """
        purged = await self.store.purge_executions(before, namespace=namespace, flow_id=flow_id)
        files = 0
        for execution_id, ns, flow in purged:
            files += await self.storage.delete_prefix(execution_prefix(ns, flow, execution_id))
        return len(purged), files

    async def execution(self, execution_id: str) -> Execution:
        """An execution.

        Raises:
            NotFoundError: No such execution.
        """
        found = await self.store.get_execution(execution_id)
        if found is None:
            raise NotFoundError(f"execution {execution_id} not found")
        return found

    async def _tell_owner(
        self, execution_id: str, action: Literal["kill", "resume", "pause"], *args: Any
    ) -> bool:
        """Ask the live owner of an execution's lease to `kill`, `resume` or `pause` it.

        Returns:
            What the owner answered; False when no live owner is known here.
        """
        lease = await self.store.get_lease("execution", execution_id)
        if lease is None or lease.expires_at <= dt.datetime.now(dt.UTC):
            return False
        if self._local is not None and lease.owner == self._local.owner:
            local_answer: bool = getattr(self._local.service, action)(execution_id, *args)
            return local_answer
        hosts = zip(self._host_names, self._hosts, strict=True)
        handle = next((host for name, host in hosts if lease.owner.startswith(f"{name}-")), None)
        if handle is None:
            handle = self.pool.handle_for_owner(lease.owner)
        if handle is None:  # another server's actor on the same Ray cluster?
            handle = await owner_actor(lease.owner)
        if handle is None:
            # Another server runs it in its own process (a webhook execution): tell it
            # through Postgres; the caller waits for the state to change.
            control = {"owner": lease.owner, "executionId": execution_id, "action": action}
            await self.store.notify(CONTROL_CHANNEL, json.dumps({**control, "args": list(args)}))
            return True
        answer: bool = await remote_call(getattr(handle, action).remote(execution_id, *args))
        return answer

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
            await self.store.transition(execution_id, State.KILLED)
        return await self._settled(execution_id)

    async def _settled(self, execution_id: str, within: float = 10) -> Execution:
        with contextlib.suppress(TimeoutError):
            await self.pool.wait(execution_id, within)
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
        detail = await self.store.execution_detail(execution.id)
        paused = [
            d.task_run
            for d in (detail.task_runs if detail else [])
            if d.task_run.state is State.PAUSED
        ]
        if not paused:
            return None, []  # paused from outside
        flow = await self.flow(execution.namespace, execution.flow_id, execution.flow_revision)
        tasks = {task.id: task for _, task in walk_tasks(flow)}
        task = tasks.get(paused[0].task_id)
        return paused[0].id, list(task.on_resume) if isinstance(task, Pause) else []

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
        if not await self.pool.submit(execution_id, restart=True):
            raise ConflictError(f"execution {execution_id} is held by another owner")
        return await self.execution(execution_id)

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        """A new execution replaying `execution_id` from `task_run_id`.

        Raises:
            NotFoundError: No such execution or task run.
        """
        await self.execution(execution_id)
        new_id_ = await self.pool.replay(execution_id, task_run_id)
        return await self.execution(new_id_)

    # ---- webhooks, triggers ----

    async def webhook(
        self,
        namespace: str,
        flow_id: str,
        key: str,
        *,
        raw_body: bytes,
        body: Any,
        headers: Mapping[str, str],
        parameters: Mapping[str, Any],
    ) -> tuple[Webhook, Execution]:
        """Start a flow from a webhook call, after checking its key (and signature).

        Raises:
            NotFoundError: Unknown flow, no webhook trigger, or wrong key/signature (all
                the same answer, so callers learn nothing about which flows exist).
        """
        received = time.time()
        try:
            flow = await self.flow(namespace, flow_id)
        except NotFoundError:
            raise NotFoundError("webhook not found") from None
        trigger = _matching_webhook(flow, key, raw_body, headers)
        if (
            trigger is None
            or flow.disabled
            or (flow.namespace, flow.id, trigger.id) in (self._switched_off)
        ):
            raise NotFoundError("webhook not found")
        stats = self._webhook_stats.setdefault(f"{flow.uid}/{trigger.id}", TriggerStats())
        stats.events += 1
        stats.last_event_at = dt.datetime.fromtimestamp(received, dt.UTC)
        variables = {"body": body, "headers": dict(headers), "parameters": dict(parameters)}
        if trigger.conditions and not event_conditions_hold(
            trigger.conditions,
            _CONDITIONS_ENGINE,
            build_context(flow=flow, trigger=variables, envs={}),
            dt.datetime.fromtimestamp(received, dt.UTC),
        ):
            raise NotFoundError("webhook conditions not met: no execution created")
        labels = {**trigger.labels, TRIGGER_LABEL: trigger.id}
        if len(self.local.running_ids()) >= self.settings.webhook_executions:
            # Busy: the elastic pool takes the overflow (one more actor hop).
            execution = await self.execute(
                namespace,
                flow_id,
                trigger.inputs,
                labels=labels,
                trigger=variables,
                wait=trigger.wait,
                flow=flow,
            )
            stats.created += 1
            return trigger, execution

        result = await self.local.create(
            flow, trigger.inputs, trigger=variables, labels=labels, event_at=received
        )
        stats.observe_created(time.time() - received)
        stats.created += 1
        execution = result.execution
        if trigger.wait:
            await self.local.wait(execution.id)
            execution = await self.execution(execution.id)
        elif flow.concurrency is not None:
            execution = await self.execution(execution.id)  # QUEUED, CANCELLED, FAILED?
        return trigger, execution

    async def triggers(self) -> list[TriggerInfo]:
        """The status of every deployed trigger (webhooks too: the API serves those)."""
        found: list[list[TriggerInfo]] = await asyncio.gather(
            *(remote_call(h.triggers.remote()) for h in self._hosts)
        )
        return [info for infos in found for info in infos] + await self._webhooks()

    async def _webhooks(self) -> list[TriggerInfo]:
        out: list[TriggerInfo] = []
        for revision in await self.store.list_flows():
            flow = await self.flow(revision.namespace, revision.flow_id, revision.revision)
            for trigger in flow.triggers:
                if isinstance(trigger, Webhook):
                    switched_off = (flow.namespace, flow.id, trigger.id) in self._switched_off
                    disabled = trigger.disabled or flow.disabled or switched_off
                    stats = self._webhook_stats.get(f"{flow.uid}/{trigger.id}", TriggerStats())
                    out.append(
                        TriggerInfo(
                            namespace=flow.namespace,
                            flow_id=flow.id,
                            trigger_id=trigger.id,
                            type=trigger.type,
                            revision=revision.revision,
                            status=TriggerStatus.STOPPED if disabled else TriggerStatus.RUNNING,
                            last_error=None,
                            last_event_at=stats.last_event_at,
                            events=stats.events,
                            created=stats.created,
                            duplicates=0,
                            dead_letters=0,
                            reconnects=0,
                            disabled=switched_off,
                        )
                    )
        return out

    async def set_trigger_disabled(
        self, namespace: str, flow_id: str, trigger_id: str, disabled: bool
    ) -> TriggerInfo:
        """Switch a trigger off (its listener stops) or on again (it starts); durable.

        Raises:
            NotFoundError: No such flow or trigger.
            ConflictError: Enabling a trigger its flow's source disables.
        """
        flow = await self.flow(namespace, flow_id)
        trigger = next((t for t in flow.triggers if t.id == trigger_id), None)
        if trigger is None:
            raise NotFoundError(f"flow {flow.uid} has no trigger '{trigger_id}'")
        if not disabled and (trigger.disabled or flow.disabled):
            raise ConflictError(
                f"trigger '{trigger_id}' is disabled in the source of flow {flow.uid}"
            )
        key = (namespace, flow_id, trigger_id)
        async with self._flow_lock:  # ordered with deploys of the same flow
            await self.store.set_trigger_disabled(namespace, flow_id, trigger_id, disabled)
            if disabled:
                self._switched_off.add(key)
            else:
                self._switched_off.discard(key)
            if not isinstance(trigger, Webhook):
                await self._deploy_triggers(flow)
            await self._tell_peers(namespace, flow_id)
        _log.info("trigger %s/%s %s", flow.uid, trigger_id, "disabled" if disabled else "enabled")
        found = [i for i in await self.triggers() if (i.namespace, i.flow_id, i.trigger_id) == key]
        if not found:
            raise NotFoundError(f"trigger '{trigger_id}' of flow {flow.uid} is not deployed")
        return found[0]

    async def latencies(self, kind: str = "created") -> dict[str, list[float]]:
        """Recent latencies (seconds) per trigger: ``created`` or ``first_task``."""
        found: list[dict[str, list[float]]] = await asyncio.gather(
            *(remote_call(h.latencies.remote(kind)) for h in self._hosts)
        )
        merged: dict[str, list[float]] = {}
        for one in found:
            merged.update(one)
        for name, stats in self._webhook_stats.items():
            window = stats.first_task_latency_s if kind == "first_task" else stats.created_latency_s
            merged[name] = list(window)
        return merged

    async def backfill(
        self,
        namespace: str,
        flow_id: str,
        trigger_id: str | None,
        start: dt.datetime,
        end: dt.datetime | None,
        inputs: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Create the executions of a schedule's ticks in ``[start, end)``.

        Raises:
            NotFoundError: No such flow or Schedule trigger.
            InputError: Invalid inputs.
        """
        await self.flow(namespace, flow_id)
        return await self.pool.backfill(
            namespace, flow_id, trigger_id, start, end or dt.datetime.now(dt.UTC), inputs
        )


def _matching_webhook(
    flow: Flow, key: str, raw_body: bytes, headers: Mapping[str, str]
) -> Webhook | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for trigger in flow.triggers:
        if not isinstance(trigger, Webhook) or trigger.disabled:
            continue
        if not hmac.compare_digest(trigger.key.encode(), key.encode()):
            continue
        if trigger.signature is not None:
            sent = lowered.get(trigger.signature.header.lower(), "")
            digest = hmac.new(
                trigger.signature.secret.encode(), raw_body, hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(
                sent.encode(), f"{trigger.signature.prefix}{digest}".encode()
            ):
                continue
        return trigger
    return None


async def _cancelled(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
