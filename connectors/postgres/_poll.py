"""``postgres.Trigger``: run a query every ``interval``; one event per poll that has rows.

Polls happen on ticks aligned to the epoch (every whole minute for ``PT1M``), so a poll
re-run after a reconnect has the same tick, hence the same dedupe key
``pg-poll:<tick, ISO-8601 UTC>``. One poll is in flight at a time: the next tick is
polled once the event is acknowledged. Ticks missed while disconnected are not caught
up; the last acknowledged tick is kept in the trigger state, so a restart within the
same tick does not poll it again.

With ``afterSQL`` the query runs in a REPEATABLE READ transaction kept open until the
event is acknowledged; ``afterSQL`` then runs in it (seeing the same snapshot as the
query, so it marks exactly the rows that were sent) and it commits. A close before the
ack rolls it back: the rows come again at the next poll. ``fetchSize`` is accepted for
Kestra compatibility; the rows of a poll are read in one go.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.transaction import Transaction

from flows import ConnectorError, Delivery, Event, Listener, ListenerContext

from ._connect import DB_ERRORS, close_connection, describe, open_connection
from ._serde import row_to_dict
from ._sql import Fetch, bind, execute, fetch_of, positional_count

if TYPE_CHECKING:
    from ._types import PostgresTrigger

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_QUERY_ERRORS: tuple[type[Exception], ...] = (*DB_ERRORS, ValueError)


def tick_at(now: dt.datetime, interval: dt.timedelta) -> dt.datetime:
    """The latest tick not after `now` (ticks are whole multiples of `interval` since 1970)."""
    step = interval // dt.timedelta(microseconds=1)
    elapsed = (now - _EPOCH) // dt.timedelta(microseconds=1)
    return _EPOCH + dt.timedelta(microseconds=elapsed - elapsed % step)


class PollingListener(Listener):
    """The listener of ``postgres.Trigger``.

    Events carry ``trigger.rows`` (FETCH, and STORE, which has no file store here),
    ``trigger.row`` (FETCH_ONE) and ``trigger.size``; with NONE only ``trigger.size``.
    A failing query is logged and raises `ConnectorError` (the host backs off).
    """

    def __init__(self, trigger: PostgresTrigger, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._interval = trigger.interval
        self._fetch: Fetch = fetch_of(trigger.fetch_type.value)
        self._conn: asyncpg.Connection[Any] | None = None
        self._generation = 0
        self._sql = trigger.sql
        self._args: list[Any] = []
        self._done: dt.datetime | None = None  # the last tick polled and settled
        self._in_flight: dt.datetime | None = None
        self._tx: Transaction | None = None
        self._wake = asyncio.Event()
        self._lost: str | None = None

    async def connect(self) -> None:
        """Connect and read the last settled tick.

        Raises:
            ConnectorError: The server cannot be reached, or the parameters do not fit.
        """
        await self.close()
        try:
            self._sql, self._args = bind(self._trigger.sql, self._trigger.parameters)
        except ValueError as exc:
            raise ConnectorError(str(exc)) from None
        if self._trigger.fetch_type.value == "STORE":
            self._ctx.log(
                "WARN",
                "fetchType STORE: there is no file store for triggers here; "
                "the rows are in trigger.rows, as with FETCH",
            )
        self._done = await self._load()
        conn = await open_connection(
            self._trigger.dsn(), self._trigger.username, self._trigger.password
        )
        self._generation += 1
        self._lost = None
        self._conn = conn
        conn.add_termination_listener(self._on_terminated)

    async def events(self) -> AsyncIterator[Delivery]:
        """One event per tick whose poll returned rows.

        Raises:
            ConnectorError: Not connected, the connection was lost, or the query failed.
        """
        generation = self._generation
        if self._conn is None:
            raise ConnectorError("the listener is not connected")
        while self._alive(generation):
            self._wake.clear()
            if self._in_flight is not None:
                await self._wake.wait()
                continue
            tick = self._next_tick()
            delay = (tick - dt.datetime.now(dt.UTC)).total_seconds()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            event = await self._poll(tick)
            if event is None:
                self._done = tick
                continue
            self._in_flight = tick
            yield event

    async def ack(self, delivery: Delivery) -> None:
        """Run ``afterSQL`` and commit (if set), and record the tick as settled."""
        token = delivery.token
        if (
            not isinstance(token, tuple)
            or token[0] != self._generation
            or token[1] != self._in_flight
            or self._conn is None
        ):
            return
        tick: dt.datetime = token[1]
        tx, self._tx = self._tx, None
        if tx is not None:
            await self._after_sql(self._conn, tx)
        self._done, self._in_flight = tick, None
        self._wake.set()
        try:
            await self._ctx.save_cursor({"tick": tick.isoformat()})
        except Exception as exc:  # the host's store: the tick may be polled again, deduped
            self._ctx.log("WARN", f"cannot save the last tick: {describe(exc)}")

    async def close(self) -> None:
        """Close (rolling back a transaction awaiting its ack)."""
        conn, self._conn = self._conn, None
        self._tx = None
        self._in_flight = None
        self._wake.set()
        if conn is not None:
            await close_connection(conn)

    def _alive(self, generation: int) -> bool:
        if self._conn is None or self._generation != generation:
            return False
        if self._lost is not None:
            raise ConnectorError(self._lost)
        return True

    def _next_tick(self) -> dt.datetime:
        current = tick_at(dt.datetime.now(dt.UTC), self._interval)
        if self._done is None:
            return current
        return max(self._done + self._interval, current)

    async def _poll(self, tick: dt.datetime) -> Event | None:
        conn = self._conn
        if conn is None:
            raise ConnectorError("the listener is not connected")
        tx = conn.transaction(isolation="repeatable_read") if self._trigger.after_sql else None
        try:
            if tx is not None:
                await tx.start()
            rows, size = await execute(conn, self._sql, self._args, self._fetch)
            if size == 0 and tx is not None:
                await tx.rollback()
        except _QUERY_ERRORS as exc:
            self._ctx.log("ERROR", f"the trigger query failed: {describe(exc)}")
            raise ConnectorError(f"the trigger query failed: {describe(exc)}") from exc
        if size == 0:
            return None
        self._tx = tx
        return self._event(tick, rows, size)

    def _event(self, tick: dt.datetime, rows: list[asyncpg.Record], size: int) -> Event:
        variables: dict[str, Any] = {"size": size}
        if self._fetch == "FETCH":
            variables["rows"] = [row_to_dict(row) for row in rows]
        elif self._fetch == "FETCH_ONE":
            variables["row"] = row_to_dict(rows[0])
        key = f"pg-poll:{tick.isoformat()}"
        return Event(
            dedupe_key=key,
            variables=variables,
            raw=json.dumps(variables, separators=(",", ":")).encode(),
            source=key,
            metadata={"tick": tick.isoformat()},
            token=(self._generation, tick),
        )

    async def _after_sql(self, conn: asyncpg.Connection[Any], tx: Transaction) -> None:
        after = self._trigger.after_sql or ""
        parameters = self._trigger.parameters
        try:
            if isinstance(parameters, list):
                await execute(conn, after, parameters[: positional_count(after)], "NONE")
            else:
                sql, args = bind(after, parameters)
                await execute(conn, sql, args, "NONE")
            await tx.commit()
        except _QUERY_ERRORS as exc:
            self._ctx.log(
                "ERROR", f"afterSQL failed, the rows will be polled again: {describe(exc)}"
            )
            with contextlib.suppress(*DB_ERRORS):
                await tx.rollback()

    async def _load(self) -> dt.datetime | None:
        try:
            saved = await self._ctx.load_cursor()
        except Exception as exc:  # the host's store: whatever it raises, retry later
            raise ConnectorError(f"cannot load the last tick: {describe(exc)}") from exc
        if isinstance(saved, dict) and isinstance(saved.get("tick"), str):
            with contextlib.suppress(ValueError):
                return dt.datetime.fromisoformat(saved["tick"])
        return None

    def _on_terminated(self, conn: object, /) -> None:
        if conn is self._conn:
            self._lost = "the connection to Postgres was lost"
            self._wake.set()
