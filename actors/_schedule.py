"""The Schedule trigger: cron ticks as events, missed-schedule recovery, and backfill.

A tick's dedupe key is its time, so a tick fired twice (after a crash, by a backfill that
overlaps a live run) creates one execution. The cursor (the last tick recorded) lives in
the trigger's state in Postgres: after a restart, ticks missed while Kestrel was down are
replayed as ``recoverMissedSchedules`` says (ALL, LAST or NONE).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator, Iterator
from typing import Any

from croniter import croniter

from flows import (
    Delivery,
    Event,
    ExpressionEngine,
    Flow,
    Listener,
    ListenerContext,
    RecoverMissedSchedules,
    Schedule,
    State,
    build_context,
    event_conditions_hold,
    expand_cron,
)

from ._service import ExecutionService
from ._templates import off_loop
from ._triggers import TRIGGER_LABEL

_ENGINE = ExpressionEngine()
"""Evaluates schedule conditions (Expression) for ticks."""

MAX_RECOVERED_TICKS = 10_000


def _iter(trigger: Schedule, start: dt.datetime) -> Any:
    expression = expand_cron(trigger.cron)
    zone = zoneinfo.ZoneInfo(trigger.timezone)
    local = start.astimezone(zone)
    if len(expression.split()) == 6:
        return croniter(expression, local, second_at_beginning=True)
    return croniter(expression, local)


def next_tick(trigger: Schedule, after: dt.datetime) -> dt.datetime:
    """The first tick strictly after `after` (aware, UTC)."""
    tick: dt.datetime = _iter(trigger, after).get_next(dt.datetime)
    return tick.astimezone(dt.UTC)


def ticks_between(trigger: Schedule, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    """Every tick in ``[start, end)``, oldest first (aware, UTC)."""
    iterator = _iter(trigger, start - dt.timedelta(microseconds=1))
    while True:
        tick = iterator.get_next(dt.datetime).astimezone(dt.UTC)
        if tick >= end:
            return
        yield tick


def tick_variables(
    trigger: Schedule, tick: dt.datetime, previous: dt.datetime | None
) -> dict[str, Any]:
    """Kestra's ``trigger.date``, ``trigger.next`` and ``trigger.previous`` for a tick."""
    prev = previous or _iter(trigger, tick).get_prev(dt.datetime).astimezone(dt.UTC)
    return {
        "date": tick.isoformat(),
        "next": next_tick(trigger, tick).isoformat(),
        "previous": prev.isoformat(),
    }


def tick_event(trigger: Schedule, tick: dt.datetime, previous: dt.datetime | None = None) -> Event:
    """The event of one tick; its dedupe key is the tick's time."""
    return Event(
        dedupe_key=f"schedule:{tick.isoformat()}",
        variables=tick_variables(trigger, tick, previous),
        source=f"schedule:{trigger.id}@{tick.isoformat()}",
        published_at=tick,
        token=tick,
    )


class ScheduleListener(Listener):
    """Yields a trigger's cron ticks as they come, after the ones it missed.

    A tick is skipped (and logged) while an execution the schedule started earlier is
    still running: schedules never overlap.

    Args:
        trigger: The Schedule trigger.
        ctx: The host's context (cursor, logging, and the execution service).
    """

    def __init__(self, trigger: Schedule, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._last: dt.datetime | None = None
        self._pending: list[dt.datetime] = []

    async def connect(self) -> None:
        """Read the last recorded tick and work out the missed ones."""
        cursor = await self._ctx.load_cursor()
        now = dt.datetime.now(dt.UTC)
        last = dt.datetime.fromisoformat(cursor["last"]) if isinstance(cursor, dict) else None
        self._last = last or now
        self._pending = []
        if last is None:
            return
        missed = list(
            _limited(ticks_between(self._trigger, last + dt.timedelta(microseconds=1), now))
        )
        policy = self._trigger.recover_missed_schedules
        if policy is RecoverMissedSchedules.ALL:
            self._pending = missed
        elif policy is RecoverMissedSchedules.LAST and missed:
            self._pending = missed[-1:]
        if missed:
            self._ctx.log(
                "INFO",
                f"{len(missed)} missed tick(s); recovering {len(self._pending)} ({policy.value})",
            )

    async def events(self) -> AsyncIterator[Delivery]:
        """Missed ticks first, then each tick when its time comes."""
        previous = self._last
        for tick in self._pending:
            yield tick_event(self._trigger, tick, previous)
            previous = tick
        self._pending = []
        while True:
            tick = next_tick(
                self._trigger,
                max(
                    previous or dt.datetime.now(dt.UTC),
                    dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1),
                ),
            )
            await asyncio.sleep(max(0.0, (tick - dt.datetime.now(dt.UTC)).total_seconds()))
            if await self._previous_still_running():
                self._ctx.log(
                    "WARN", f"tick {tick.isoformat()} skipped: the previous run is still running"
                )
                await self._advance(tick)
            elif not await self._conditions_hold(tick, previous):
                self._ctx.log(
                    "INFO", f"tick {tick.isoformat()} skipped: its conditions do not hold"
                )
                await self._advance(tick)
            else:
                yield tick_event(self._trigger, tick, previous)
            previous = tick

    async def _conditions_hold(self, tick: dt.datetime, previous: dt.datetime | None) -> bool:
        """Kestra's schedule ``conditions`` (DayWeek, Expression, ...) for this tick.

        Evaluated on the render threads: an Expression condition may loop, and the
        listener host's event loop serves every other trigger (once per tick, the hop
        costs nothing that matters).
        """
        if not self._trigger.conditions:
            return True
        context = build_context(
            flow={"id": self._ctx.flow_id, "namespace": self._ctx.namespace},
            trigger=tick_variables(self._trigger, tick, previous),
            envs={},
        )
        conditions = self._trigger.conditions
        return await off_loop(event_conditions_hold, conditions, _ENGINE, context, tick)

    async def _previous_still_running(self) -> bool:
        service = getattr(self._ctx, "service", None)
        if not isinstance(service, ExecutionService):
            return False
        page = await service.store.search_executions(
            namespace=self._ctx.namespace,
            flow_id=self._ctx.flow_id,
            states=[State.CREATED, State.QUEUED, State.RUNNING, State.PAUSED, State.RETRYING],
            labels={TRIGGER_LABEL: self._trigger.id},
            limit=1,
        )
        return page.total > 0

    async def ack(self, delivery: Delivery) -> None:
        """Record the tick as done (the cursor only moves forward)."""
        if isinstance(delivery.token, dt.datetime):
            await self._advance(delivery.token)

    async def _advance(self, tick: dt.datetime) -> None:
        if self._last is None or tick > self._last:
            self._last = tick
            await self._ctx.save_cursor({"last": tick.isoformat()})

    async def close(self) -> None:
        """Nothing to release."""


def _limited(ticks: Iterator[dt.datetime]) -> Iterator[dt.datetime]:
    for index, tick in enumerate(ticks):
        if index >= MAX_RECOVERED_TICKS:
            return
        yield tick


async def backfill(
    service: ExecutionService,
    flow: Flow,
    trigger: Schedule,
    start: dt.datetime,
    end: dt.datetime,
    *,
    inputs: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> list[str]:
    """Create one execution per tick in ``[start, end)``; ticks already run are not repeated.

    Returns:
        The ids of the executions, one per tick (existing ones for ticks already run).
    """
    ids: list[str] = []
    previous: dt.datetime | None = None
    for tick in _limited(ticks_between(trigger, start, end)):
        event = tick_event(trigger, tick, previous)
        result = await service.create(
            flow,
            {**trigger.inputs, **(inputs or {})},
            trigger=event.variables,
            labels={
                **trigger.labels,
                **(labels or {}),
                TRIGGER_LABEL: trigger.id,
                "kestrel.backfill": "true",
            },
            dedupe_key=f"{flow.namespace}.{flow.id}/{trigger.id}:{event.dedupe_key}",
        )
        ids.append(result.execution.id)
        previous = tick
    return ids
