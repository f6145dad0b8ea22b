"""The store: Kestrel's state in Postgres behind one typed async API.

`Store` owns an asyncpg pool and a write `Batcher`. Writes on the event path (execution
creates, transitions, task-run attempts, outputs, logs, trigger cursors) are batched:
many callers' writes share one transaction, and each caller's ``await`` returns only
after that transaction committed, so it may acknowledge its source right after. The
rest (flows, KV, leases, dead letters, reads) are single statements on the pool.

Fencing: execution writes accept the writer's `Lease`; a write carrying a lease whose
epoch is no longer current is refused with `StaleLeaseError`. Writes without a lease are
not fenced (for callers that own nothing, e.g. an API appending a log line).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

from flows import Service, State, StoreError, StoreUnavailable, redact_dsn

from . import _concurrency, _controls, _flows, _latest, _leases, _purge, _reads, _rows
from ._batcher import Batcher
from ._db import DATABASE_ERRORS, Connection, unavailable
from ._json import dumps, init_connection
from ._kv import encode_value
from ._migrations import apply_migrations
from ._ops import (
    AddTaskRunsOp,
    AttemptOp,
    CreateOp,
    LogsOp,
    Outcome,
    OutputsOp,
    ReleaseLeaseOp,
    TaskRunTransitionOp,
    TransitionOp,
    TriggerStateOp,
    WriteOp,
)
from ._records import (
    EXECUTION_LEASE,
    Attempt,
    CreateResult,
    DeadLetter,
    Execution,
    ExecutionDetail,
    FlowRevision,
    FlowSaveResult,
    KVEntry,
    KVType,
    Lease,
    LogLine,
    NewExecution,
    NewTaskRun,
    Page,
    TriggerState,
)
from ._writes import write_batch


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

    Use ``async with Store(dsn) as store:`` or `start`/`stop`.
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
        self._batching = batching
        self._migrate = migrate
        self._pool: asyncpg.Pool | None = None
        self._batcher: Batcher[WriteOp, Outcome] = Batcher(
            self._flush, max_batch=max_batch, max_queue=max_queue
        )

    @property
    def dsn(self) -> str:
        """The database this store uses."""
        return self._dsn

    @property
    def batcher(self) -> Batcher[WriteOp, Outcome]:
        """The write batcher (its ``batches``/``items`` counters show batching at work)."""
        return self._batcher

    async def _start(self) -> None:
        try:
            if self._migrate:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await apply_migrations(conn)
                finally:
                    await conn.close()
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min,
                max_size=self._max,
                init=self._init_connection,
                reset=_keep_session,
            )
        except DATABASE_ERRORS as exc:
            kind = StoreUnavailable if unavailable(exc) else StoreError
            raise kind(f"cannot open the store at {redact_dsn(self._dsn)}: {exc}") from exc
        await self._batcher.start()

    async def _init_connection(self, conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if self._query_logger is not None:
            conn.add_query_logger(self._query_logger)

    async def _stop(self) -> None:
        await self._batcher.stop()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Connection]:
        if self._pool is None:
            raise StoreError("the store is not started")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except DATABASE_ERRORS as exc:
            if unavailable(exc):
                raise StoreUnavailable(f"the database is unreachable: {exc!r}") from exc
            raise StoreError(f"store operation failed: {exc}") from exc

    async def _flush(self, ops: Sequence[WriteOp]) -> list[Outcome]:
        if self._pool is None:
            raise StoreError("the store is not started")
        return await write_batch(self._pool, ops)

    def enqueue(self, op: WriteOp) -> Awaitable[object]:
        """Hand a built op to the writer without waiting; await the result for durability.

        Ops enqueued one after another are applied in that order (as with the write
        methods, which build an op and await it). For write-behind callers that record
        many changes (`StoreRecorder`): no task per write when the queue has room.
        """
        if self._batching and self.running:
            return self._batcher.enqueue(op)
        return asyncio.ensure_future(self._write(op))

    async def _write(self, op: WriteOp) -> object:
        if self._batching:
            return await self._batcher.submit(op)
        if not self.running:
            raise StoreError("the store is not running")
        (outcome,) = await self._flush([op])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    # ---- executions: writes (batched) ---------------------------------------------------

    async def create_execution(
        self,
        new: NewExecution,
        *,
        lease_owner: str | None = None,
        lease_ttl: dt.timedelta | None = None,
    ) -> CreateResult:
        """Create an execution and its initial task runs, once per dedupe key.

        Returns after the execution is durable. If an execution with the same dedupe key
        exists, nothing is written and that execution is returned with
        ``created=False``.

        Args:
            new: The execution (and ``new.task_runs``), written in one transaction.
            lease_owner: Take the execution's lease for this owner in the same transaction.
            lease_ttl: The lease's time to live (with ``lease_owner``).
        """
        result = await self._write(CreateOp.of(new, lease_owner, lease_ttl))
        assert isinstance(result, CreateResult)
        return result

    async def add_task_runs(
        self, execution_id: str, runs: Sequence[NewTaskRun], *, lease: Lease | None = None
    ) -> None:
        """Add task runs to an execution (idempotent on task-run id)."""
        await self._write(AddTaskRunsOp.of(execution_id, runs, lease))

    async def transition(
        self,
        execution_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        outputs: Mapping[str, Any] | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Move an execution to ``state``, appended to its history.

        Args:
            execution_id: The execution.
            state: The new state.
            at: When it happened; defaults to now.
            outputs: Flow outputs to record with it.
            lease: The writer's lease; the write is refused if it is stale.

        Raises:
            StaleLeaseError: ``lease`` is no longer current.
            StoreError: Unknown execution, or the write failed.
        """
        await self._write(TransitionOp.of(execution_id, state, at, outputs, lease))

    async def transition_task_run(
        self,
        execution_id: str,
        task_run_id: str,
        state: State,
        *,
        at: dt.datetime | None = None,
        lease: Lease | None = None,
    ) -> None:
        """Move a task run to ``state``, appended to its history (see `transition`)."""
        await self._write(TaskRunTransitionOp.of(execution_id, task_run_id, state, at, lease))

    async def record_attempt(
        self, execution_id: str, task_run_id: str, attempt: Attempt, *, lease: Lease | None = None
    ) -> None:
        """Insert or update attempt ``attempt.number`` of a task run.

        Fields left None keep what an earlier write of the same attempt recorded.
        """
        await self._write(AttemptOp.of(execution_id, task_run_id, attempt, lease))

    async def set_outputs(
        self,
        execution_id: str,
        task_run_id: str,
        outputs: Mapping[str, Any],
        *,
        lease: Lease | None = None,
    ) -> None:
        """Merge ``outputs`` into a task run's outputs (top-level keys replace)."""
        await self._write(OutputsOp.of(execution_id, task_run_id, outputs, lease))

    async def append_logs(self, lines: Sequence[LogLine]) -> None:
        """Append log lines (to any executions), in order."""
        if lines:
            await self._write(LogsOp(tuple(lines)))

    async def save_trigger_state(self, state: TriggerState, *, lease: Lease | None = None) -> None:
        """Save (replace) a trigger's cursor, status and last error; batched like events."""
        cursor = None if state.cursor is None else dumps(state.cursor)
        await self._write(TriggerStateOp(state, cursor, lease))

    # ---- executions: reads --------------------------------------------------------------

    async def get_execution(self, execution_id: str) -> Execution | None:
        """The execution with this id, or None."""
        async with self._conn() as conn:
            return await _reads.get_execution(conn, execution_id)

    async def get_execution_by_dedupe_key(self, dedupe_key: str) -> Execution | None:
        """The execution created from this dedupe key, or None."""
        async with self._conn() as conn:
            return await _reads.by_dedupe_key(conn, dedupe_key)

    async def search_executions(
        self,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
        states: Collection[State] | None = None,
        labels: Mapping[str, str] | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Execution]:
        """Search executions, newest first; ``Page.total`` counts every match.

        Args:
            namespace: This namespace and those below it.
            flow_id: Exact flow id.
            states: Any of these current states.
            labels: All these labels, with these values.
            since: Created at or after.
            until: Created before.
            limit: Page size.
            offset: Matches to skip.
        """
        async with self._conn() as conn:
            return await _reads.search(
                conn,
                namespace=namespace,
                flow_id=flow_id,
                states=states,
                labels=labels,
                since=since,
                until=until,
                limit=limit,
                offset=offset,
            )

    async def execution_logs(
        self,
        execution_id: str,
        *,
        since: int = 0,
        limit: int | None = 1000,
        min_level: str | None = None,
        task_run_id: str | None = None,
    ) -> list[LogLine]:
        """Log lines with ``seq > since``, in order; pass the last ``seq`` to stream on."""
        async with self._conn() as conn:
            return await _reads.logs(
                conn,
                execution_id,
                since=since,
                limit=limit,
                min_level=min_level,
                task_run_id=task_run_id,
            )

    async def execution_detail(self, execution_id: str) -> ExecutionDetail | None:
        """Everything recorded about an execution, read consistently: what replay needs."""
        async with self._conn() as conn:
            return await _reads.detail(conn, execution_id)

    async def find_expired_executions(
        self, *, limit: int = 100, unleased_after: dt.timedelta | None = None
    ) -> list[Execution]:
        """Unfinished executions whose lease expired: for a new owner to resume.

        With ``unleased_after``, also those never leased that are at least that old.
        """
        async with self._conn() as conn:
            return await _reads.expired(conn, limit=limit, unleased_after=unleased_after)

    # ---- concurrency ----

    async def admit(
        self, execution_id: str, namespace: str, flow_id: str, limit: int, otherwise: State
    ) -> State:
        """Admit an execution under its flow's concurrency limit (see `_concurrency.admit`)."""
        async with self._conn() as conn:
            return await _concurrency.admit(
                conn, execution_id, namespace, flow_id, limit, otherwise
            )

    async def oldest_queued(self, namespace: str, flow_id: str) -> str | None:
        """The flow's oldest QUEUED execution, if any."""
        async with self._conn() as conn:
            return await _concurrency.oldest_queued(conn, namespace, flow_id)

    # ---- leases -------------------------------------------------------------------------

    async def take_lease(self, kind: str, key: str, owner: str, ttl: dt.timedelta) -> Lease | None:
        """Take a lease that is free, expired or already ours; the epoch goes up.

        Returns:
            The lease, or None while another owner holds it unexpired.
        """
        async with self._conn() as conn:
            return await _leases.take(conn, kind, key, owner, ttl)

    async def take_leases(
        self, kind: str, keys: Sequence[str], owner: str, ttl: dt.timedelta
    ) -> list[Lease]:
        """`take_lease` for many keys in one round trip: the leases taken."""
        async with self._conn() as conn:
            return await _leases.take_many(conn, kind, list(keys), owner, ttl)

    async def take_execution_lease(
        self, execution_id: str, owner: str, ttl: dt.timedelta
    ) -> Lease | None:
        """`take_lease` for an execution."""
        return await self.take_lease(EXECUTION_LEASE, execution_id, owner, ttl)

    async def renew_lease(self, lease: Lease, ttl: dt.timedelta) -> Lease:
        """Extend a lease we still hold.

        Raises:
            StaleLeaseError: Another owner took it.
        """
        async with self._conn() as conn:
            return await _leases.renew(conn, lease, ttl)

    async def renew_leases(
        self, leases: Sequence[Lease], ttl: dt.timedelta
    ) -> tuple[list[Lease], list[Lease]]:
        """Renew many leases in one round trip: (renewed, stale)."""
        async with self._conn() as conn:
            return await _leases.renew_many(conn, list(leases), ttl)

    async def release_lease(self, lease: Lease) -> bool:
        """Expire our lease now; False if it was no longer ours."""
        return await self._write(ReleaseLeaseOp(lease)) is True

    async def get_lease(self, kind: str, key: str) -> Lease | None:
        """The lease row (possibly expired), or None if never taken."""
        async with self._conn() as conn:
            return await _leases.get(conn, kind, key)

    async def notify(self, channel: str, payload: str) -> None:
        """Send a Postgres notification (``pg_notify``): every listener hears it."""
        async with self._conn() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", channel, payload)

    # ---- flows --------------------------------------------------------------------------

    async def save_flow(self, namespace: str, flow_id: str, source: str) -> FlowSaveResult:
        """Save a flow's YAML source verbatim; a new revision only when it changed."""
        async with self._conn() as conn:
            return await _flows.save(conn, namespace, flow_id, source)

    async def get_flow(
        self,
        namespace: str,
        flow_id: str,
        revision: int | None = None,
        *,
        include_deleted: bool = False,
    ) -> FlowRevision | None:
        """A flow revision: the current one, or a given number."""
        async with self._conn() as conn:
            return await _flows.get(
                conn, namespace, flow_id, revision, include_deleted=include_deleted
            )

    async def flow_revisions(self, namespace: str, flow_id: str) -> list[FlowRevision]:
        """Every revision of a flow, oldest first (deletions included)."""
        async with self._conn() as conn:
            return await _flows.revisions(conn, namespace, flow_id)

    async def list_flows(self, namespace: str | None = None) -> list[FlowRevision]:
        """The current revision of every live flow (under ``namespace`` when given)."""
        async with self._conn() as conn:
            return await _flows.latest_all(conn, namespace)

    async def delete_flow(self, namespace: str, flow_id: str) -> bool:
        """Soft-delete a flow (recorded as a revision); False if absent or deleted."""
        async with self._conn() as conn:
            return await _flows.delete(conn, namespace, flow_id)

    async def purge_executions(
        self,
        before: dt.datetime,
        *,
        namespace: str | None = None,
        flow_id: str | None = None,
    ) -> list[tuple[str, str, str]]:
        """Delete ended executions created before `before` (this namespace and below).

        Returns:
            ``(id, namespace, flow_id)`` of every execution deleted, for their files.
        """
        async with self._conn() as conn, conn.transaction():
            return await _purge.purge(conn, before, namespace, flow_id)

    async def last_execution_states(
        self, namespace: str | None = None
    ) -> dict[tuple[str, str], State]:
        """``(namespace, flow_id)`` → the state of each live flow's newest execution."""
        async with self._conn() as conn:
            return await _latest.last_states(conn, namespace)

    # ---- KV -----------------------------------------------------------------------------

    async def kv_set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: dt.timedelta | None = None,
        type: KVType | None = None,
    ) -> KVEntry:
        """Set a typed value, optionally expiring ``ttl`` from now.

        Args:
            namespace: The namespace.
            key: The key.
            value: str, int/float, bool, datetime, date, timedelta or JSON data.
            ttl: Time to live; a negative one stores an already expired value.
            type: The KV type; inferred from ``value`` when None.

        Returns:
            The entry as stored.
        """
        kind, stored = encode_value(value, type)
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """INSERT INTO kv AS k (namespace, key, type, value, expires_at)
                    VALUES ($1, $2, $3, $4::text::jsonb, now() + $5::interval)
                    ON CONFLICT (namespace, key) DO UPDATE
                    SET type = excluded.type, value = excluded.value,
                        expires_at = excluded.expires_at, updated_at = now()
                    RETURNING *""",
                namespace,
                key,
                str(kind),
                dumps(stored),  # as text: a JSON null must not become SQL NULL
                ttl,
            )
        assert row is not None
        return _rows.kv_entry(row)

    async def kv_get(self, namespace: str, key: str) -> KVEntry | None:
        """The entry, or None if absent or expired."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """SELECT * FROM kv WHERE namespace = $1 AND key = $2
                    AND (expires_at IS NULL OR expires_at > now())""",
                namespace,
                key,
            )
        return None if row is None else _rows.kv_entry(row)

    async def kv_delete(self, namespace: str, key: str) -> bool:
        """Delete a key; False if there was no live value."""
        async with self._conn() as conn:
            deleted = await conn.fetchval(
                """DELETE FROM kv WHERE namespace = $1 AND key = $2
                   RETURNING expires_at IS NULL OR expires_at > now()""",
                namespace,
                key,
            )
        return bool(deleted)

    async def kv_list(self, namespace: str) -> list[KVEntry]:
        """Live entries of a namespace, by key."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM kv WHERE namespace = $1
                    AND (expires_at IS NULL OR expires_at > now()) ORDER BY key""",
                namespace,
            )
        return [_rows.kv_entry(row) for row in rows]

    async def kv_purge_expired(self) -> int:
        """Delete expired entries (reads already ignore them); returns how many."""
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM kv WHERE expires_at <= now()")
        return int(status.split()[-1])

    # ---- triggers -----------------------------------------------------------------------

    async def get_trigger_state(
        self, namespace: str, flow_id: str, trigger_id: str
    ) -> TriggerState | None:
        """A trigger's saved state, or None."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """SELECT * FROM trigger_states
                   WHERE namespace = $1 AND flow_id = $2 AND trigger_id = $3""",
                namespace,
                flow_id,
                trigger_id,
            )
        return None if row is None else _rows.trigger_state(row)

    async def list_trigger_states(
        self, namespace: str | None = None, flow_id: str | None = None
    ) -> list[TriggerState]:
        """Saved trigger states, optionally of one namespace and/or flow."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM trigger_states
                   WHERE ($1::text IS NULL OR namespace = $1)
                     AND ($2::text IS NULL OR flow_id = $2)
                   ORDER BY namespace, flow_id, trigger_id""",
                namespace,
                flow_id,
            )
        return [_rows.trigger_state(row) for row in rows]

    async def set_trigger_disabled(
        self, namespace: str, flow_id: str, trigger_id: str, disabled: bool
    ) -> None:
        """Switch a trigger off (or on again) durably; its listener host acts on it."""
        async with self._conn() as conn:
            await _controls.set_disabled(conn, namespace, flow_id, trigger_id, disabled)

    async def disabled_triggers(
        self, namespace: str | None = None, flow_id: str | None = None
    ) -> set[tuple[str, str, str]]:
        """``(namespace, flow_id, trigger_id)`` of the triggers switched off by a user."""
        async with self._conn() as conn:
            return await _controls.disabled(conn, namespace, flow_id)

    # ---- dead letters -------------------------------------------------------------------

    async def write_dead_letter(self, letter: DeadLetter) -> DeadLetter:
        """Keep a refused message verbatim with its reason; returns it as stored."""
        async with self._conn() as conn:
            row = await conn.fetchrow(
                """INSERT INTO dead_letters (id, source, namespace, flow_id, trigger_id,
                        payload, metadata, reason, attempts)
                    VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)
                    RETURNING *""",
                letter.id,
                letter.source,
                letter.namespace,
                letter.flow_id,
                letter.trigger_id,
                letter.payload,
                letter.metadata,
                letter.reason,
                letter.attempts,
            )
        assert row is not None
        return _rows.dead_letter(row)

    async def list_dead_letters(
        self,
        *,
        source: str | None = None,
        namespace: str | None = None,
        flow_id: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, newest first, filtered by source and/or flow."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT * FROM dead_letters
                    WHERE ($1::text IS NULL OR source = $1)
                      AND ($2::text IS NULL OR namespace = $2)
                      AND ($3::text IS NULL OR flow_id = $3)
                    ORDER BY created_at DESC, id LIMIT $4""",
                source,
                namespace,
                flow_id,
                limit,
            )
        return [_rows.dead_letter(row) for row in rows]

    async def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        """The dead letter with this id, or None."""
        async with self._conn() as conn:
            row = await conn.fetchrow("SELECT * FROM dead_letters WHERE id = $1", letter_id)
        return None if row is None else _rows.dead_letter(row)

    async def executions_by_dedupe_keys(self, dedupe_keys: Sequence[str]) -> dict[str, str]:
        """Dedupe key → id of the execution created under it, for those that exist."""
        if not dedupe_keys:
            return {}
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT dedupe_key, id FROM executions WHERE dedupe_key = ANY($1::text[])",
                list(dedupe_keys),
            )
        return {row["dedupe_key"]: row["id"] for row in rows}

    async def delete_dead_letter(self, letter_id: str) -> bool:
        """Delete a dead letter; False when there was none."""
        async with self._conn() as conn:
            done = await conn.execute("DELETE FROM dead_letters WHERE id = $1", letter_id)
        return bool(done.endswith(" 1"))

    async def executions_per_minute(
        self, since: dt.datetime, namespace: str | None = None
    ) -> list[tuple[dt.datetime, State, int]]:
        """How many executions were created each minute since `since`, by current state."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                """SELECT date_trunc('minute', created_at) AS minute, state, count(*) AS n
                    FROM executions
                    WHERE created_at >= $1
                      AND ($2::text IS NULL OR namespace = $2 OR namespace LIKE $3)
                    GROUP BY 1, 2 ORDER BY 1, 2""",
                since,
                namespace,
                None if namespace is None else _reads._like_below(namespace),
            )
        return [(row["minute"], State(row["state"]), int(row["n"])) for row in rows]
