"""The store: Kestrel's state in Postgres behind one typed async API.

`Store` owns an asyncpg pool and a write `Batcher`. Writes on the event path (execution
creates, transitions, task-run attempts, outputs, logs, trigger cursors) are batched:
many callers' writes share one transaction, and each caller's ``await`` returns only
after that transaction committed, so it may acknowledge its source right after. The
rest (flows, KV, leases, dead letters, reads) are single statements on the pool.

Fencing: execution writes accept the writer's `Lease`; a write carrying a lease whose
epoch is no longer current is refused with `StaleLeaseError`. Writes without a lease are
not fenced (for callers that own nothing, e.g. an API appending a log line).

The work is done by parts, one job each, sharing the pool (`Connections`): `Writer`
(batched writes), `Queries` (execution reads), `Leases` (leases, admission,
notifications), `KeyValues` (KV) and `Catalog` (flows, trigger states, dead letters).
`Store` owns their lifecycle and exposes their methods as its own, so callers hold one
object.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from asyncpg.connection import LoggedQuery

from flows import Service, StoreError, StoreUnavailable, redact_dsn

from ._batcher import Batcher
from ._catalog import Catalog
from ._connections import Connections
from ._db import DATABASE_ERRORS, unavailable
from ._json import init_connection
from ._kv_store import KeyValues
from ._lease_store import Leases
from ._migrations import apply_migrations
from ._ops import Outcome, WriteOp
from ._queries import Queries
from ._writer import Writer


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset``: nothing to undo, so no round trip when a connection goes back.

    asyncpg's default runs ``RESET ALL; UNLISTEN *; CLOSE ALL; ...`` at every release:
    one more round trip per statement or batch, before its caller learns the outcome.
    The store's connections never change session state (no SET, LISTEN, session
    advisory lock or cursor outside a transaction); an open transaction is still rolled
    back by the pool before this hook runs.
    """


class Store(Service):
    """Kestrel's Postgres store.

    Args:
        dsn: ``postgresql://user@host:port/database``.
        min_connections: Pool size at start.
        max_connections: Pool size limit.
        batching: Batch event-path writes (the default). False writes each one in its
            own transaction, concurrently (for comparison in benchmarks).
        max_batch: Most writes per batch.
        max_queue: Most writes waiting for a batch; callers wait beyond (backpressure).
        migrate: Apply pending migrations at start.
        query_logger: Called with every statement the store's connections run (an
            ``asyncpg.connection.LoggedQuery``), e.g. to count round trips.

    Use ``async with Store(dsn) as store:`` or `start`/`stop`. Each method is documented
    where it is defined, on its part (`Writer`, `Queries`, `Leases`, `KeyValues`,
    `Catalog`).
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_connections: int = 2,
        max_connections: int = 10,
        batching: bool = True,
        max_batch: int = 1000,
        max_queue: int = 10_000,
        migrate: bool = True,
        query_logger: Callable[[LoggedQuery], None] | None = None,
    ) -> None:
        super().__init__()
        self._query_logger = query_logger
        self._dsn = dsn
        self._min = min_connections
        self._max = max_connections
        self._migrate = migrate
        self._connections = Connections()
        writer = self._writer = Writer(
            self._connections,
            lambda: self.running,
            batching=batching,
            max_batch=max_batch,
            max_queue=max_queue,
        )
        # The parts' methods, bound here: callers use one object (and mypy sees each
        # method's own signature).
        self.enqueue = writer.enqueue
        self.create_execution = writer.create_execution
        self.add_task_runs = writer.add_task_runs
        self.transition = writer.transition
        self.transition_task_run = writer.transition_task_run
        self.record_attempt = writer.record_attempt
        self.set_outputs = writer.set_outputs
        self.append_logs = writer.append_logs
        self.save_trigger_state = writer.save_trigger_state
        self.release_lease = writer.release_lease

        queries = Queries(self._connections)
        self.get_execution = queries.get_execution
        self.get_execution_by_dedupe_key = queries.get_execution_by_dedupe_key
        self.executions_by_dedupe_keys = queries.executions_by_dedupe_keys
        self.search_executions = queries.search_executions
        self.execution_logs = queries.execution_logs
        self.execution_detail = queries.execution_detail
        self.find_expired_executions = queries.find_expired_executions
        self.last_execution_states = queries.last_execution_states
        self.executions_per_minute = queries.executions_per_minute
        self.purge_executions = queries.purge_executions

        leases = Leases(self._connections)
        self.take_lease = leases.take_lease
        self.take_leases = leases.take_leases
        self.take_execution_lease = leases.take_execution_lease
        self.renew_lease = leases.renew_lease
        self.renew_leases = leases.renew_leases
        self.get_lease = leases.get_lease
        self.admit = leases.admit
        self.oldest_queued = leases.oldest_queued
        self.notify = leases.notify

        kv = KeyValues(self._connections)
        self.kv_set = kv.kv_set
        self.kv_get = kv.kv_get
        self.kv_delete = kv.kv_delete
        self.kv_list = kv.kv_list
        self.kv_purge_expired = kv.kv_purge_expired

        catalog = Catalog(self._connections)
        self.save_flow = catalog.save_flow
        self.get_flow = catalog.get_flow
        self.flow_revisions = catalog.flow_revisions
        self.list_flows = catalog.list_flows
        self.delete_flow = catalog.delete_flow
        self.get_trigger_state = catalog.get_trigger_state
        self.list_trigger_states = catalog.list_trigger_states
        self.set_trigger_disabled = catalog.set_trigger_disabled
        self.disabled_triggers = catalog.disabled_triggers
        self.write_dead_letter = catalog.write_dead_letter
        self.list_dead_letters = catalog.list_dead_letters
        self.get_dead_letter = catalog.get_dead_letter
        self.delete_dead_letter = catalog.delete_dead_letter

    @property
    def dsn(self) -> str:
        """The database this store uses."""
        return self._dsn

    @property
    def batcher(self) -> Batcher[WriteOp, Outcome]:
        """The write batcher (its ``batches``/``items`` counters show batching at work)."""
        return self._writer.batcher

    async def _start(self) -> None:
        try:
            if self._migrate:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await apply_migrations(conn)
                finally:
                    await conn.close()
            self._connections.pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                init=self._init_connection,
                reset=_keep_session,
            )
        except DATABASE_ERRORS as exc:
            kind = StoreUnavailable if unavailable(exc) else StoreError
            raise kind(f"cannot open the store at {redact_dsn(self._dsn)}: {exc}") from exc
        await self._writer.batcher.start()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if self._query_logger is not None:
            conn.add_query_logger(self._query_logger)

    async def _stop(self) -> None:
        await self._writer.batcher.stop()
        if self._connections.pool is not None:
            await self._connections.pool.close()
            self._connections.pool = None
