"""Flow changes between gateways: Postgres ``NOTIFY`` on write, ``LISTEN`` on every gateway.

Several ``kestrel server`` processes may share one database. The one that writes a flow
(deploy, delete, a trigger switched on or off) sends `FLOW_CHANNEL` a notification; every
other one hears it within milliseconds and drops its cached revision and redeploys the
flow's triggers on its own listener hosts (whose trigger leases decide which host runs
them). A listener that lost its connection reconnects and asks for a full resync, since
notifications sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from flows import Service

from ._db import DATABASE_ERRORS

_log = logging.getLogger(__name__)

FLOW_CHANNEL = "kestrel_flows"
"""The notification channel of flow changes."""

CONTROL_CHANNEL = "kestrel_controls"
"""The notification channel of execution controls (kill, pause, resume) meant for an
execution run by a server itself (a webhook execution), not by an actor other servers
can call."""

RECONNECT_S = 1.0


@dataclass(frozen=True)
class FlowChange:
    """One flow changed (or, with no flow, anything may have: resync everything).

    Attributes:
        namespace: The flow's namespace; None for a resync.
        flow_id: The flow's id; None for a resync.
        origin: Who wrote it (a gateway skips its own changes).
    """

    namespace: str | None
    flow_id: str | None
    origin: str

    def payload(self) -> str:
        """The notification payload (JSON)."""
        return json.dumps(
            {"namespace": self.namespace, "flowId": self.flow_id, "origin": self.origin}
        )

    @classmethod
    def parse(cls, payload: str) -> FlowChange | None:
        """A change from a payload; None when it is not one of ours."""
        try:
            data: Any = json.loads(payload)
            return cls(str(data["namespace"]), str(data["flowId"]), str(data["origin"]))
        except (ValueError, KeyError, TypeError):
            return None


FlowChangeHandler = Callable[[FlowChange], Awaitable[None]]
ControlHandler = Callable[[str], Awaitable[None]]


class FlowChanges(Service):
    """Listens on `FLOW_CHANNEL` and hands each change to `handler`, in order.

    Args:
        dsn: The database.
        handler: Called once per change (and with a resync change after a reconnect);
            its failures are logged, never fatal.
        controls: Called with the payload of each `CONTROL_CHANNEL` notification.
    """

    def __init__(
        self, dsn: str, handler: FlowChangeHandler, controls: ControlHandler | None = None
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._handler = handler
        self._controls = controls
        self._control_tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[FlowChange] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()

    async def _start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="flow-changes listen"),
            asyncio.create_task(self._deliver(), name="flow-changes deliver"),
        ]
        with contextlib.suppress(TimeoutError):  # not fatal: the loop keeps trying
            await asyncio.wait_for(self._connected.wait(), 10)

    async def _stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        first = True
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except DATABASE_ERRORS as exc:
                _log.warning("flow changes: cannot connect: %s", exc)
                await asyncio.sleep(RECONNECT_S)
                continue
            lost = asyncio.Event()
            try:
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(FLOW_CHANNEL, self._heard)
                if self._controls is not None:
                    await conn.add_listener(CONTROL_CHANNEL, self._heard_control)
                self._connected.set()
                if not first:  # changes sent while we were away are lost: resync
                    self._queue.put_nowait(FlowChange(None, None, ""))
                first = False
                await lost.wait()
                _log.warning("flow changes: connection lost, reconnecting")
            except DATABASE_ERRORS as exc:
                _log.warning("flow changes: %s", exc)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(conn.close(timeout=2))
            await asyncio.sleep(RECONNECT_S)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        change = FlowChange.parse(str(payload))
        if change is not None:
            self._queue.put_nowait(change)

    def _heard_control(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        assert self._controls is not None
        task = asyncio.create_task(self._control(str(payload)))
        self._control_tasks.add(task)
        task.add_done_callback(self._control_tasks.discard)

    async def _control(self, payload: str) -> None:
        assert self._controls is not None
        try:
            await self._controls(payload)
        except Exception as exc:
            _log.warning("execution control %s not applied: %s", payload, exc)

    async def _deliver(self) -> None:
        while True:
            change = await self._queue.get()
            try:
                await self._handler(change)
            except Exception as exc:
                _log.warning(
                    "flow change %s.%s not applied: %s", change.namespace, change.flow_id, exc
                )
