"""Cursor table: one event per new row, durable, resumed from a saved cursor.

Rows are read with ``WHERE <cursorColumn> > <last read> ORDER BY <cursorColumn> LIMIT n``,
``n`` bounded by the free in-flight slots. Acks may come in any order: the cursor moves
to the highest value below which every row is acknowledged, and is saved in the host's
trigger state (at most every `SAVE_EVERY_S`, and on close). After a reconnect, reading
starts again just after the saved cursor: rows not yet acknowledged come again (their
dedupe key is the same), and rows inserted while Kestrel was away arrive.

The cursor column must be unique and increase in commit order (a ``bigserial`` or
identity id, or a timestamp set by the inserting transaction that never goes back in
time). Its type must be one of `SUPPORTED_CURSOR_TYPES`: integers are saved as JSON
numbers, numerics, timestamps, dates and text as text. NULL cursor values are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext

from ._connect import DB_ERRORS, close_connection, describe, open_connection
from ._serde import CursorKind, cursor_from_json, cursor_kind, cursor_to_json, row_to_dict

if TYPE_CHECKING:
    from ._types import PostgresRealtimeTrigger

SAVE_EVERY_S = 0.1


def unquote(identifier: str) -> str:
    """The name Postgres gives a column: ``"Id"`` → ``Id``, ``ID`` → ``id``."""
    if identifier.startswith('"') and identifier.endswith('"'):
        return identifier[1:-1]
    return identifier.lower()


class CursorListener(Listener):
    """``postgres.RealtimeTrigger`` with a ``table`` and ``cursorColumn``.

    Events carry ``trigger.data`` (the row, JSON-safe) and, when a wake-up ``channel`` is
    set, ``trigger.channel``. Their dedupe key is ``pg:<table>:<cursor value>``.
    """

    def __init__(self, trigger: PostgresRealtimeTrigger, ctx: ListenerContext) -> None:
        if trigger.table is None or trigger.cursor_column is None:
            raise ConnectorError("a cursor table needs 'table' and 'cursorColumn'")
        self._trigger = trigger
        self._ctx = ctx
        self._table = trigger.table
        self._column = trigger.cursor_column
        self._key = unquote(trigger.cursor_column)
        self._limit = trigger.max_in_flight
        self._conn: asyncpg.Connection[Any] | None = None
        self._generation = 0
        self._kind: CursorKind = "int"
        self._first: asyncpg.prepared_stmt.PreparedStatement[Any] | None = None
        self._after: asyncpg.prepared_stmt.PreparedStatement[Any] | None = None
        self._read: Any = None  # the last cursor value read (as the column's Python type)
        self._committed: Any = None  # the saved form of the last value acknowledged in order
        self._inflight: dict[Any, bool] = {}  # saved cursor value -> acked, in read order
        self._unacked = 0
        self._wake = asyncio.Event()
        self._starved = False
        self._lost: str | None = None
        self._dirty = False
        self._flush_task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Connect, check the cursor column, and resume after the saved cursor.

        Raises:
            ConnectorError: The server cannot be reached, the table or column is not
                usable, or the saved cursor cannot be read.
        """
        await self.close()
        saved = await self._load()
        conn = await open_connection(
            self._trigger.dsn(), self._trigger.username, self._trigger.password
        )
        self._generation += 1
        self._lost = None
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)
        try:
            await self._prepare(conn, saved)
        except DB_ERRORS as exc:
            await self.close()
            raise ConnectorError(
                f"cannot read {self._table} by {self._column}: {describe(exc)}"
            ) from exc
        except (ConnectorError, ValueError) as exc:
            await self.close()
            raise ConnectorError(str(exc)) from exc

    async def _prepare(self, conn: asyncpg.Connection[Any], saved: Any) -> None:
        table, column = self._table, self._column
        self._after = await conn.prepare(
            f"SELECT * FROM {table} WHERE {column} > $1 ORDER BY {column} LIMIT $2"  # noqa: S608 - identifiers checked by the model
        )
        self._first = await conn.prepare(
            f"SELECT * FROM {table} WHERE {column} IS NOT NULL ORDER BY {column} LIMIT $1"  # noqa: S608
        )
        self._kind = cursor_kind(self._after.get_parameters()[0].name, column)
        if saved is not None:
            try:
                self._read = cursor_from_json(saved, self._kind)
            except (ValueError, ArithmeticError) as exc:
                raise ConnectorError(
                    f"the saved cursor {saved!r} does not fit {column}: {exc}"
                ) from None
        self._committed = saved
        if self._trigger.channel is not None:
            await conn.add_listener(self._trigger.channel, self._on_notify)

    async def events(self) -> AsyncIterator[Delivery]:
        """New rows in cursor order; waits for a wake-up or ``pollInterval`` when caught up.

        Raises:
            ConnectorError: Not connected, or a query failed (connection lost...).
        """
        generation = self._generation
        if self._conn is None:
            raise ConnectorError("the listener is not connected")
        while self._alive(generation):
            free = self._limit - self._unacked
            if free <= 0:
                await self._wait_for_slots()
                continue
            limit = min(self._trigger.batch_size, free)
            self._wake.clear()
            rows = await self._fetch(limit)
            for row in rows:
                yield self._event(row)
                if not self._alive(generation):
                    return
            if len(rows) < limit:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._trigger.poll_interval.total_seconds()):
                        await self._wake.wait()

    async def ack(self, delivery: Delivery) -> None:
        """Mark the row acknowledged; move the cursor past every row acknowledged in order."""
        token = delivery.token
        if (
            not isinstance(token, tuple)
            or token[0] != self._generation
            or self._conn is None
            or self._inflight.get(token[1]) is not False
        ):
            return
        self._inflight[token[1]] = True
        self._unacked -= 1
        advanced = False
        while self._inflight:
            first = next(iter(self._inflight))
            if not self._inflight[first]:
                break
            del self._inflight[first]
            self._committed = first
            advanced = True
        if advanced:
            self._schedule_save()
        if self._starved:
            self._wake.set()

    async def close(self) -> None:
        """Save the cursor reached and close; unacknowledged rows are read again later."""
        conn, self._conn = self._conn, None
        self._wake.set()
        task, self._flush_task = self._flush_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._flush()
        self._inflight.clear()
        self._unacked = 0
        self._read = None
        self._first = self._after = None
        if conn is not None:
            await close_connection(conn)

    def _alive(self, generation: int) -> bool:
        if self._conn is None or self._generation != generation:
            return False
        if self._lost is not None:
            raise ConnectorError(self._lost)
        return True

    async def _wait_for_slots(self) -> None:
        self._starved = True
        self._wake.clear()
        try:
            await self._wake.wait()
        finally:
            self._starved = False

    async def _fetch(self, limit: int) -> list[asyncpg.Record]:
        if self._first is None or self._after is None:
            raise ConnectorError("the listener is not connected")
        try:
            if self._read is None:
                return await self._first.fetch(limit)
            return await self._after.fetch(self._read, limit)
        except DB_ERRORS as exc:
            raise ConnectorError(f"reading {self._table} failed: {describe(exc)}") from exc

    def _event(self, row: asyncpg.Record) -> Event:
        value = row[self._key]
        position = cursor_to_json(value, self._kind)
        self._read = value
        self._inflight[position] = False
        self._unacked += 1
        data = row_to_dict(row)
        key = f"pg:{self._table}:{position}"
        variables: dict[str, Any] = {"data": data}
        if self._trigger.channel is not None:
            variables = {"channel": self._trigger.channel, "data": data}
        return Event(
            dedupe_key=key,
            variables=variables,
            raw=json.dumps(data, separators=(",", ":")).encode(),
            source=key,
            metadata={"table": self._table, "cursor": position},
            token=(self._generation, position),
        )

    async def _load(self) -> Any:
        """The saved cursor value, or None to start at the first row."""
        try:
            saved = await self._ctx.load_cursor()
        except Exception as exc:  # the host's store: whatever it raises, retry later
            raise ConnectorError(f"cannot load the saved cursor: {describe(exc)}") from exc
        if saved is None:
            return None
        if (
            not isinstance(saved, dict)
            or saved.get("table") != self._table
            or saved.get("column") != self._column
        ):
            self._ctx.log(
                "WARN",
                f"the saved cursor {saved!r} is not for {self._table}."
                f"{self._column}: reading starts at the first row",
            )
            return None
        return saved.get("value")

    def _schedule_save(self) -> None:
        self._dirty = True
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(SAVE_EVERY_S)
        await self._flush()

    async def _flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        cursor = {"table": self._table, "column": self._column, "value": self._committed}
        try:
            await self._ctx.save_cursor(cursor)
        except asyncio.CancelledError:
            self._dirty = True
            raise
        except Exception as exc:  # the host's store: keep the cursor dirty, save it later
            self._dirty = True
            self._ctx.log("WARN", f"cannot save the cursor {cursor!r}: {describe(exc)}")

    def _on_notify(self, conn: object, pid: int, channel: str, payload: object, /) -> None:
        if conn is self._conn:
            self._wake.set()

    def _on_terminated(self, conn: object, /) -> None:
        if conn is self._conn:
            self._lost = "the connection to Postgres was lost"
            self._wake.set()
