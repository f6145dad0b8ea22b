"""The server's runtime: the composition root of the store, Ray, the pools and the jobs.

Everything the REST API, the webhooks and the flows-folder sync do goes through one
`Runtime`, so the HTTP layer stays a thin translation of requests into these calls.
Each job is a module of its own: the flow catalog (`_catalog`), execution control
(`_control`, owners found through the lease → owner registry of `_owners`), webhook
intake (`_webhook_intake`), the trigger view (`_trigger_view`), the listener hosts
(`_hosts`) and backfill jobs (`_backfills`). This module builds them, starts them in
order (a failed step unwinds what the earlier ones started) and stops them in one place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any, TypeVar

from actors import (
    RAY_NAMESPACE,
    TRIGGER_LABEL,
    EmbeddedPostgres,
    ExecutionHost,
    ExecutionPool,
    ExecutionService,
    FirstTaskLatency,
    FlowChanges,
    ObjectStorage,
    PoolOptions,
    StorageConfig,
    Store,
    ensure_ray,
    new_id,
    open_storage,
)
from flows import NotStartedError, Service, execution_prefix, redact_dsn

from ._catalog import FlowCatalog
from ._control import ExecutionControl
from ._hosts import ListenerHosts
from ._owners import OwnerRegistry
from ._settings import Settings
from ._trigger_view import TriggerView
from ._webhook_intake import WebhookIntake

_log = logging.getLogger("kestrel.runtime")

SHUTDOWN_DRAIN_S = 30.0
"""Seconds a stopping server lets running executions end, all hosts together."""


def new_execution_id() -> str:
    """A fresh execution id (files are stored under it before the execution is created)."""
    return new_id()


@dataclasses.dataclass(frozen=True)
class _Jobs:
    catalog: FlowCatalog
    control: ExecutionControl
    webhooks: WebhookIntake
    triggers: TriggerView


class Runtime(Service):
    """Kestrel's server-side runtime.

    Args:
        settings: Where the database and Ray are, and how big the pools are.
        storage: The internal storage; from ``settings.storage`` when None.
    """

    def __init__(self, settings: Settings, storage: StorageConfig | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.name = f"kestrel-{new_id()[:8]}"
        """This server's name: the prefix of its actors' names and lease owners."""
        self.folder_files: dict[tuple[str, str], str] = {}
        """``(namespace, flow_id)`` → the flows-folder file the flow comes from (kept by
        the folder sync): the API refuses to delete those, the file would bring it back."""
        if storage is None and settings.storage is None and settings.data_dir is not None:
            storage = StorageConfig.local(settings.data_dir / "storage")
        self.storage_config = dataclasses.replace(
            storage or StorageConfig.parse(settings.storage),
            inline_outputs_bytes=settings.inline_outputs_bytes,
        )
        self._embedded: EmbeddedPostgres | None = None
        self._store: Store | None = None
        self._pool: ExecutionPool | None = None
        self._hosts: ListenerHosts | None = None
        self._local: ExecutionHost | None = None
        self._jobs: _Jobs | None = None
        self._changes: FlowChanges | None = None
        self._purging: asyncio.Task[None] | None = None

    # ---- parts ----

    @property
    def storage(self) -> ObjectStorage:
        """The internal storage."""
        return open_storage(self.storage_config)

    @property
    def store(self) -> Store:
        """The started store."""
        return _started(self._store)

    @property
    def pool(self) -> ExecutionPool:
        """The execution pool."""
        return _started(self._pool)

    @property
    def local(self) -> ExecutionService:
        """The execution service of this process (it runs the webhook executions)."""
        return _started(self._local).service

    @property
    def hosts(self) -> list[Any]:
        """The listener hosts' actor handles."""
        return _started(self._hosts).handles

    @property
    def catalog(self) -> FlowCatalog:
        """The flows: deploy, delete, read (one cache, kept true across servers)."""
        return _started(self._jobs).catalog

    @property
    def control(self) -> ExecutionControl:
        """Start, kill, pause, resume, restart and replay executions."""
        return _started(self._jobs).control

    @property
    def webhooks(self) -> WebhookIntake:
        """Webhook calls in, executions out."""
        return _started(self._jobs).webhooks

    @property
    def trigger_view(self) -> TriggerView:
        """Every trigger's status and counters; switching one off or on."""
        return _started(self._jobs).triggers

    # ---- lifecycle ----

    async def _start(self) -> None:
        # Each step keeps what it started in an attribute; when a step fails, `_stop`
        # (run by `Service.start`) stops whatever exists, in the shutdown order.
        dsn = await self._open_database()
        await self.storage.check()
        _log.info("internal storage: %s", self.storage_config.describe())
        ensure_ray(self.settings.ray_address)
        _log.info("Ray ready (%s)", self.settings.ray_address or "local instance")
        await self._start_executors(dsn)
        await self._listen(dsn)
        self._purging = asyncio.create_task(self._purge_loop(), name="kv-purge")

    async def _open_database(self) -> str:
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
        return dsn

    async def _start_executors(self, dsn: str) -> None:
        """The pool, the listener hosts and this process's execution host, together."""
        store, settings = self.store, self.settings
        pool = self._pool = ExecutionPool(
            store,
            PoolOptions(
                min_actors=settings.execution_actors,
                max_actors=max(settings.execution_actors, settings.max_execution_actors),
                name_prefix=f"{self.name}-exec",
                actor_options={"namespace": RAY_NAMESPACE},  # reachable from other servers
                storage=self.storage_config,
                tracing=settings.otel_endpoint,
            ),
        )
        hosts = self._hosts = ListenerHosts(
            dsn,
            self.name,
            settings.listener_hosts,
            trigger_lease_s=settings.trigger_lease_s,
            storage=self.storage_config,
            tracing=settings.otel_endpoint,
        )
        # Webhook executions run here, their runnable tasks on warm workers. Recovery of
        # orphaned executions is left to the pool.
        local = self._local = ExecutionHost(
            dsn,
            f"{self.name}-gateway-{new_id()}",
            store=store,
            warm_workers=settings.webhook_workers,
            lease_ttl=dt.timedelta(seconds=pool.options.lease_ttl_s),
            storage=self.storage_config,
            tracing=settings.otel_endpoint,
        )
        catalog = FlowCatalog(store, hosts, self.name, self.folder_files)
        await catalog.load()
        control = ExecutionControl(
            store, catalog, pool, local.service, OwnerRegistry(store, local.service, hosts, pool)
        )
        webhooks = WebhookIntake(catalog, local.service, control, settings)
        local.service.interceptors.add(FirstTaskLatency(webhooks.stats_of, TRIGGER_LABEL))
        started = await asyncio.gather(
            pool.start(), hosts.start(), local.start(), return_exceptions=True
        )
        for failed in started:
            if isinstance(failed, BaseException):
                raise failed
        self._jobs = _Jobs(catalog, control, webhooks, TriggerView(catalog, hosts, webhooks))
        _log.info(
            "%d execution actor(s), %d listener host(s) and %d webhook worker(s) warm",
            pool.size,
            len(hosts.handles),
            settings.webhook_workers,
        )

    async def _listen(self, dsn: str) -> None:
        """Flows and controls other servers on this database send reach us by LISTEN."""
        self._changes = FlowChanges(dsn, self.catalog.on_change, self.control.on_control)
        await self._changes.start()

    async def _stop(self) -> None:
        """Stop taking work, drain everything in parallel within one deadline, then close.

        Listener hosts stop their listeners first (unacknowledged deliveries come again);
        then the hosts, the pool actors and this process's webhook executions all drain
        together for at most `SHUTDOWN_DRAIN_S`. Whatever still runs is cancelled (its
        lease lapses; it is resumed on the next start). Stores are closed whatever failed.
        """
        _log.info("stopping listeners, then draining executions")
        if self._purging is not None:
            self._purging.cancel()
            await asyncio.gather(self._purging, return_exceptions=True)
        parts = (self._hosts, self._local, self._pool)
        executors: list[Any] = [part for part in parts if part is not None]
        try:
            if self._changes is not None:
                await self._changes.stop()
            # One deadline for all: every host, pool actor and this process drain at once.
            drains = [part.shutdown(SHUTDOWN_DRAIN_S) for part in executors]
            for failed in await asyncio.gather(*drains, return_exceptions=True):
                if isinstance(failed, BaseException):
                    _log.warning("draining failed: %r", failed)
        finally:
            for part in [self._changes, *executors, self._store, self._embedded]:
                try:
                    if part is not None:
                        await part.stop()
                except Exception as exc:
                    _log.warning("stopping %s failed: %r", type(part).__name__, exc)
            self._jobs = self._purging = self._changes = None
            self._hosts = self._local = self._pool = None
            self._store = self._embedded = None
        _log.info("stopped")

    # ---- housekeeping ----

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

    async def purge(
        self, before: dt.datetime, *, namespace: str | None = None, flow_id: str | None = None
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


_T = TypeVar("_T")


def _started(part: _T | None) -> _T:
    if part is None:
        raise NotStartedError("the runtime is not started")
    return part
