"""Fakes of the runtime's side of the connector contracts, shared by the connector tests.

`FakeListenerContext` stands for the host of a listener (``flows.ListenerContext``),
`FakeRunContext` for the worker running a task (``flows.RunContext``), and `Pump` drains
a listener's ``events()`` in the background, as the host does, so that a test can wait
for deliveries with deadlines.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flows import ConnectorError, Delivery, Listener, RealtimeTrigger, TaskError

WAIT = 15.0  # seconds: deadline for deliveries that should arrive (tansu is slow to join)
QUIET = 0.5  # seconds: window in which no more deliveries may arrive


class FakeListenerContext:
    """The host's side of a listener: ids, a cursor kept in memory, logs and recent events.

    The cursor goes through JSON on save and load, as the store keeps it. The flow id is
    unique by default, so that what a broker keeps per trigger (MQTT sessions, JetStream
    durables) is shared only by listeners given the same context.
    """

    def __init__(
        self,
        namespace: str = "tests.connectors",
        flow_id: str | None = None,
        trigger_id: str = "trigger",
        *,
        recent: list[tuple[str | None, dict[str, Any]]] | None = None,
    ) -> None:
        self.namespace = namespace
        self.flow_id = flow_id or f"flow-{uuid.uuid4().hex[:8]}"
        self.trigger_id = trigger_id
        self.cursor: Any = None
        self.saves: list[Any] = []  # every cursor saved, oldest first
        self.logs: list[tuple[str, str]] = []
        self.recent: list[tuple[str | None, dict[str, Any]]] = list(recent or [])

    async def load_cursor(self) -> Any:
        return json.loads(json.dumps(self.cursor))

    async def save_cursor(self, cursor: Any) -> None:
        self.cursor = json.loads(json.dumps(cursor))
        self.saves.append(self.cursor)

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    async def recent_events(self, limit: int) -> list[tuple[str | None, dict[str, Any]]]:
        """The configured ``recent`` list (newest first), at most `limit` of them."""
        return self.recent[:limit]


class FakeRunContext:
    """What a runnable task sees: ids, variables, a log and a KV store kept in memory."""

    def __init__(
        self,
        namespace: str = "tests.connectors",
        flow_id: str = "flow",
        task_id: str = "task",
        *,
        variables: Mapping[str, Any] | None = None,
    ) -> None:
        self.execution_id = "exec-1"
        self.task_run_id = "taskrun-1"
        self.task_id = task_id
        self.attempt = 1
        self.namespace = namespace
        self.flow_id = flow_id
        self.variables: Mapping[str, Any] = dict(variables or {})
        self.logs: list[tuple[str, str]] = []
        self.kv: dict[tuple[str, str], Any] = {}
        self.storage: Any = None  # these tasks use no files

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))

    async def kv_get(self, key: str, namespace: str | None = None) -> tuple[bool, Any]:
        place = (namespace or self.namespace, key)
        return place in self.kv, self.kv.get(place)

    async def kv_set(
        self,
        key: str,
        value: Any,
        *,
        namespace: str | None = None,
        ttl: timedelta | None = None,
        kv_type: str | None = None,
        overwrite: bool = True,
    ) -> None:
        place = (namespace or self.namespace, key)
        if not overwrite and place in self.kv:
            raise TaskError(f"key '{key}' already exists in namespace '{place[0]}'")
        self.kv[place] = value

    async def kv_delete(self, key: str, namespace: str | None = None) -> bool:
        return self.kv.pop((namespace or self.namespace, key), None) is not None


class Pump:
    """Drains a listener's ``events()`` in the background, as the host does.

    `items` holds every delivery so far. `take` and `get` hand them out in order, each
    once; `wait_for` looks at all of them from the first. The background `task` ends with
    the listener's error, if any (see `error` and `ended`).
    """

    def __init__(self, listener: Listener) -> None:
        self.items: list[Delivery] = []
        self._taken = 0
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(listener))

    async def _run(self, listener: Listener) -> None:
        try:
            async for delivery in listener.events():
                self.items.append(delivery)
                self._changed.set()
        finally:
            self._changed.set()

    @property
    def error(self) -> BaseException | None:
        """The exception ``events()`` ended with (None while it runs, or if it did not)."""
        if not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        """The first `count` deliveries since the start, once they have come."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.items) < count:
                    if self.task.done():
                        if self.error is not None:
                            raise self.error
                        raise AssertionError(f"events() ended after {len(self.items)} of {count}")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"got {len(self.items)} deliveries, expected {count}") from None
        return self.items[:count]

    async def take(self, count: int, timeout: float = WAIT) -> list[Delivery]:
        """The next `count` deliveries not handed out yet, once they have come."""
        await self.wait_for(self._taken + count, timeout)
        taken = self.items[self._taken : self._taken + count]
        self._taken += count
        return taken

    async def get(self, timeout: float = WAIT) -> Delivery:
        """The next delivery not handed out yet, once it has come."""
        (delivery,) = await self.take(1, timeout)
        return delivery

    def drain(self) -> list[Delivery]:
        """The deliveries not handed out yet, without waiting."""
        drained = self.items[self._taken :]
        self._taken = len(self.items)
        return drained

    async def quiet(self, seconds: float = QUIET) -> list[Delivery]:
        """What came, not handed out yet, after `seconds` (to check that nothing did)."""
        await asyncio.sleep(seconds)
        return self.drain()

    async def ended(self, timeout: float = WAIT) -> BaseException | None:
        """Wait until ``events()`` ends by itself; the exception it ended with, if any."""
        async with asyncio.timeout(timeout):
            await asyncio.wait([self.task])
        return self.error

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class PumpedListeners:
    """The listeners of one test, each pumped as the host does; `recovered` is the host's
    retry after a listener's iterator ended."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[Listener, Pump]] = {}

    async def run(self, name: str, trigger: RealtimeTrigger) -> Pump:
        """Connect `trigger`'s listener and pump it under `name`."""
        listener = trigger.create_listener(FakeListenerContext(trigger_id=name))
        await listener.connect()
        pump = Pump(listener)
        self.running[name] = (listener, pump)
        return pump

    def listener(self, name: str) -> Listener:
        return self.running[name][0]

    def pump(self, name: str) -> Pump:
        return self.running[name][1]

    async def stop(self, name: str) -> None:
        listener, pump = self.running.pop(name)
        await pump.stop()
        await listener.close()

    async def recovered(self) -> bool:
        """Reconnect (once each) the listeners whose iterator ended; True when none did."""
        fine = True
        for name, (listener, pump) in list(self.running.items()):
            if not pump.task.done():
                continue
            fine = False
            await listener.close()
            try:
                await listener.connect()
            except ConnectorError:
                continue  # the server is not back yet: the host would retry too
            self.running[name] = (listener, Pump(listener))
        return fine

    async def close(self) -> None:
        for name in list(self.running):
            await self.stop(name)
