"""Trigger runners: one always-on asyncio task per deployed trigger.

A runner connects its trigger's `Listener`, turns every delivery into a durable execution
(one per source position, thanks to the dedupe key), acknowledges the source only then,
and starts the execution in this process. A failing connection is retried with capped
exponential backoff; a poison message, or one whose execution cannot be created after
``deadLetterAfter`` attempts, goes to the dead letters and never blocks the ones after it.

The store being unreachable (`StoreUnavailable`) is not the message's fault: the delivery
is neither dead-lettered nor acknowledged; the runner stops pulling from the source, the
deliveries in hand retry with capped backoff, and everything resumes, in order and
exactly once (dedupe keys), when the store answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from flows import (
    ConnectorError,
    Event,
    ExpressionEngine,
    Flow,
    InputError,
    KestrelError,
    Listener,
    PoisonMessage,
    Service,
    StoreUnavailable,
    Trigger,
    build_context,
    contains_template,
)

from ._service import ExecutionService
from ._store._records import DeadLetter, TriggerState, utcnow
from ._templates import off_loop

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

TRIGGER_LABEL = "kestrel.trigger"
"""The label every execution a trigger creates carries: the trigger's id."""

ListenerFactory = Callable[[Trigger, "RunnerContext"], Listener]


class TriggerStatus(enum.StrEnum):
    """What a trigger's listener is doing."""

    STARTING = "STARTING"
    RUNNING = "RUNNING"
    RECONNECTING = "RECONNECTING"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    STANDBY = "STANDBY"
    """Deployed here, run by another host that holds its lease (several gateways)."""


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff between reconnection attempts."""

    initial_s: float = 0.2
    factor: float = 2.0
    max_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures."""
        return float(min(self.max_s, self.initial_s * self.factor ** max(0, failures - 1)))


@dataclass
class TriggerStats:
    """Counters and latest latencies of one trigger, for status and metrics."""

    events: int = 0
    created: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    reconnects: int = 0
    last_event_at: dt.datetime | None = None
    created_latency_s: list[float] = field(default_factory=list)
    first_task_latency_s: list[float] = field(default_factory=list)

    def observe_created(self, seconds: float) -> None:
        """Keep the event → execution-created latency (a bounded window)."""
        _keep(self.created_latency_s, seconds)

    def observe_first_task(self, seconds: float) -> None:
        """Keep the event → first-runnable-task-started latency (a bounded window)."""
        _keep(self.first_task_latency_s, seconds)


def _keep(window: list[float], value: float) -> None:
    window.append(value)
    if len(window) > 10_000:
        del window[:5_000]


@dataclass(frozen=True)
class TriggerInfo:
    """A deployed trigger's status, as the API shows it."""

    namespace: str
    flow_id: str
    trigger_id: str
    type: str
    revision: int
    status: TriggerStatus
    last_error: str | None
    last_event_at: dt.datetime | None
    events: int
    created: int
    duplicates: int
    dead_letters: int
    reconnects: int
    disabled: bool = False


class RunnerContext:
    """The `ListenerContext` a runner hands its listener: cursor and logging."""

    def __init__(self, runner: TriggerRunner) -> None:
        self._runner = runner

    @property
    def namespace(self) -> str:
        """The flow's namespace."""
        return self._runner.flow.namespace

    @property
    def flow_id(self) -> str:
        """The flow's id."""
        return self._runner.flow.id

    @property
    def trigger_id(self) -> str:
        """The trigger's id."""
        return self._runner.trigger.id

    @property
    def flow(self) -> Flow:
        """The flow revision the trigger belongs to."""
        return self._runner.flow

    @property
    def service(self) -> ExecutionService:
        """The execution service (the store is ``service.store``)."""
        return self._runner.service

    async def load_cursor(self) -> Any:
        """The cursor saved last (None the first time)."""
        return self._runner.state.cursor

    async def save_cursor(self, cursor: Any) -> None:
        """Save the cursor durably with the trigger's state."""
        await self._runner.save_state(cursor=cursor)

    async def recent_events(self, limit: int) -> list[tuple[str | None, dict[str, Any]]]:
        """``(dedupe_key, trigger variables)`` of this trigger's latest executions."""
        runner = self._runner
        page = await runner.service.store.search_executions(
            namespace=runner.flow.namespace,
            flow_id=runner.flow.id,
            labels={TRIGGER_LABEL: runner.trigger.id},
            limit=limit,
        )
        prefix = runner.dedupe_prefix
        return [
            (
                e.dedupe_key[len(prefix) :]
                if e.dedupe_key and e.dedupe_key.startswith(prefix)
                else None,
                dict(e.trigger or {}),
            )
            for e in page.items
        ]

    def log(self, level: str, message: str) -> None:
        """Log about this trigger."""
        _log.log(
            logging.getLevelName(level.replace("WARN", "WARNING")),
            "%s: %s",
            self._runner.name,
            message,
        )


class TriggerRunner(Service):
    """Runs one trigger's listener forever, reconnecting as needed.

    Args:
        flow: The flow revision (with ``revision`` set).
        trigger: One of its triggers.
        service: Where executions are created and run.
        factory: Makes the trigger's listener.
        backoff: Reconnection delays.
    """

    def __init__(
        self,
        flow: Flow,
        trigger: Trigger,
        service: ExecutionService,
        factory: ListenerFactory,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.trigger = trigger
        self.service = service
        self.stats = TriggerStats()
        self.status = TriggerStatus.STARTING
        self.state = TriggerState(namespace=flow.namespace, flow_id=flow.id, trigger_id=trigger.id)
        self._factory = factory
        self._backoff = backoff or Backoff()
        self._task: asyncio.Task[None] | None = None
        self._listener: Listener | None = None
        self._slots = asyncio.Semaphore(int(getattr(trigger, "max_in_flight", 100)))
        self._handlers: set[asyncio.Task[None]] = set()
        self._dead_letter_after = int(getattr(trigger, "dead_letter_after", 3))
        self._store_up = asyncio.Event()  # cleared while the store is unreachable
        self._store_up.set()

    @property
    def name(self) -> str:
        """``namespace.flow/trigger``."""
        return f"{self.flow.namespace}.{self.flow.id}/{self.trigger.id}"

    def info(self) -> TriggerInfo:
        """The trigger's status and counters."""
        return TriggerInfo(
            namespace=self.flow.namespace,
            flow_id=self.flow.id,
            trigger_id=self.trigger.id,
            type=self.trigger.type,
            revision=self.flow.revision or 0,
            status=self.status,
            last_error=self.state.last_error,
            last_event_at=self.state.last_event_at,
            events=self.stats.events,
            created=self.stats.created,
            duplicates=self.stats.duplicates,
            dead_letters=self.stats.dead_letters,
            reconnects=self.stats.reconnects,
        )

    async def save_state(self, **changes: Any) -> None:
        """Update and durably save the trigger's state (cursor, status, last error)."""
        self.state = replace(self.state, **changes)
        await self.service.store.save_trigger_state(self.state)

    # ---- lifecycle ----

    async def _start(self) -> None:
        saved = await self.service.store.get_trigger_state(
            self.flow.namespace, self.flow.id, self.trigger.id
        )
        if saved is not None:
            self.state = replace(saved, status=TriggerStatus.STARTING.value, last_error=None)
        self._task = asyncio.create_task(self._run(), name=f"trigger {self.name}")

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Deliveries being recorded finish (they are durable soon); their acks still go out.
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=10)
        # Those still waiting (for a store that is down) stay unacknowledged: redelivered.
        for handler in list(self._handlers):
            handler.cancel()
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=5)
        await self._close_listener()
        self.status = TriggerStatus.STOPPED
        with contextlib.suppress(KestrelError):
            await self.save_state(status=TriggerStatus.STOPPED.value)

    async def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()

    # ---- the loop ----

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                # Off the loop: a templated property may loop, and this host's event loop
                # serves every other trigger (once per start, the hop does not matter).
                rendered = await off_loop(rendered_trigger, self.flow, self.trigger)
                listener = self._factory(rendered, RunnerContext(self))
            except KestrelError as exc:
                await self._fail(TriggerStatus.FAILED, f"cannot create the listener: {exc}")
                return  # a configuration problem: retrying cannot help
            self._listener = listener
            try:
                await listener.connect()
                failures = 0
                await self._set_status(TriggerStatus.RUNNING, None)
                await self._consume(listener)
                raise ConnectorError("the source ended the subscription")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a listener must never take the host down
                failures += 1
                self.stats.reconnects += 1
                message = str(exc) or type(exc).__name__
                await self._fail(TriggerStatus.RECONNECTING, message)
                await self._close_listener()
                await asyncio.sleep(self._backoff.delay(failures))

    async def _consume(self, listener: Listener) -> None:
        async for delivery in listener.events():
            await self._store_up.wait()  # pull nothing more while the store is unreachable
            await self._slots.acquire()  # backpressure: stop pulling while full
            handler = asyncio.create_task(self._handle(listener, delivery))
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)

    async def _set_status(self, status: TriggerStatus, error: str | None) -> None:
        self.status = status
        with contextlib.suppress(KestrelError):
            await self.save_state(status=status.value, last_error=error)

    async def _fail(self, status: TriggerStatus, message: str) -> None:
        _log.warning("trigger %s: %s", self.name, message)
        await self._set_status(status, message)

    # ---- one delivery ----

    async def _handle(self, listener: Listener, delivery: Event | PoisonMessage) -> None:
        try:
            self.stats.events += 1
            if isinstance(delivery, PoisonMessage):
                await self._dead_letter(
                    delivery.reason, delivery.raw, delivery.source, delivery.metadata, 1
                )
            else:
                await self._record(delivery)
            await listener.ack(delivery)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Not acked: closing the listener makes the loop reconnect, and the source
            # delivers it again then.
            _log.warning("trigger %s: delivery not recorded, reconnecting: %s", self.name, exc)
            if self._listener is listener:
                with contextlib.suppress(Exception):
                    await listener.close()
        finally:
            self._slots.release()

    @property
    def dedupe_prefix(self) -> str:
        """What the runner puts before a source's dedupe key: the flow and the trigger."""
        return f"{self.flow.namespace}.{self.flow.id}/{self.trigger.id}:"

    async def _record(self, event: Event) -> None:
        dedupe = None
        if event.dedupe_key is not None:
            dedupe = f"{self.dedupe_prefix}{event.dedupe_key}"
        reason = ""
        event_at = (event.published_at or event.received_at).timestamp()
        attempt = 0
        while True:
            try:
                result = await self._when_store_up(
                    lambda: self.service.create(
                        self.flow,
                        self.trigger.inputs,
                        trigger=event.variables,
                        labels={**self.trigger.labels, TRIGGER_LABEL: self.trigger.id},
                        dedupe_key=dedupe,
                        event_at=event_at,  # the first-task latency: `FirstTaskLatency`
                    )
                )
            except InputError as exc:
                reason = f"the trigger's inputs are invalid: {exc}"
                break  # the same inputs will not get better
            except KestrelError as exc:
                reason = f"could not create the execution: {exc}"
                attempt += 1
                if attempt >= self._dead_letter_after:
                    break
                await asyncio.sleep(min(1.0, 0.05 * 2**attempt))
                continue
            self.stats.observe_created(time.time() - event_at)
            if result.created:
                self.stats.created += 1
            else:
                self.stats.duplicates += 1
            self.state = replace(self.state, last_event_at=utcnow())
            return
        await self._dead_letter(reason, event.raw, event.source, event.metadata, max(1, attempt))

    async def _when_store_up(self, write: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``write``; while the store is unreachable, hold the source and try again.

        Raises:
            KestrelError: Any other failure of ``write`` (the store answered).
        """
        outages = 0
        while True:
            try:
                result = await write()
            except StoreUnavailable as exc:
                outages += 1
                self._store_lost(exc)
                await asyncio.sleep(_STORE_RETRY.delay(outages))
                continue
            except Exception:
                self._store_back()  # the store answered (with another error)
                raise
            self._store_back()
            return result

    def _store_lost(self, exc: StoreUnavailable) -> None:
        if not self._store_up.is_set():
            return
        self._store_up.clear()
        self.status = TriggerStatus.RECONNECTING
        self.state = replace(
            self.state, status=self.status.value, last_error=f"waiting for the store: {exc}"
        )
        _log.warning("trigger %s: the store is unreachable, holding the source: %s", self.name, exc)

    def _store_back(self) -> None:
        if self._store_up.is_set():
            return
        self._store_up.set()
        _log.warning("trigger %s: the store answers again, resuming", self.name)
        if self.status is TriggerStatus.RECONNECTING and self._task is not None:
            task = asyncio.create_task(self._set_status(TriggerStatus.RUNNING, None))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _dead_letter(
        self, reason: str, raw: bytes, source: str, metadata: dict[str, Any], attempts: int
    ) -> None:
        letter = DeadLetter(
            source=source or self.trigger.type,
            payload=raw,
            reason=reason,
            attempts=attempts,
            metadata=metadata,
            namespace=self.flow.namespace,
            flow_id=self.flow.id,
            trigger_id=self.trigger.id,
        )
        await self._when_store_up(lambda: self.service.store.write_dead_letter(letter))
        self.stats.dead_letters += 1
        _log.warning("trigger %s: dead letter from %s: %s", self.name, source, reason)


_ENGINE = ExpressionEngine()
_STORE_RETRY = Backoff(initial_s=0.1, factor=2.0, max_s=2.0)
"""How often a delivery tries the store again while it is unreachable."""


def rendered_trigger(flow: Flow, trigger: Trigger) -> Trigger:
    """The trigger with templates in its properties rendered (``{{ secret('PASS') }}``).

    Only the flow's context is available (``flow``, ``vars``, ``labels``, ``envs``,
    ``secret()``): a trigger's connection settings never see event data.
    """
    raw = trigger.model_dump(by_alias=True, exclude_none=True, exclude={"inputs", "labels"})
    if not contains_template(raw):
        return trigger
    context = build_context(flow=flow)
    rendered = _ENGINE.render_value(raw, context, task=trigger.id)
    data = {**trigger.model_dump(by_alias=True, exclude_none=True), **rendered}
    return type(trigger).model_validate(data)


def default_listener_factory(trigger: Trigger, ctx: RunnerContext) -> Listener:
    """The trigger's own listener (connector types implement `create_listener`)."""
    create = getattr(trigger, "create_listener", None)
    if create is None:
        raise ConnectorError(f"'{trigger.type}' has no listener")
    listener: Listener = create(ctx)
    return listener
