"""Server-sent events: an execution's state changes and its new log lines, live.

Both streams poll the store (every `POLL_SECONDS`), send only what changed, end once the
execution is terminal and everything was sent, and stop early when the client leaves.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from actors import Store

from ._models import detail_body, log_body
from ._secret_inputs import masked_detail

POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
LOG_PAGE = 1000
LOG_GRACE_SECONDS = 0.25
"""After the terminal state, one more read this much later catches lines written late."""

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_event(data: Any, *, event: str | None = None, event_id: int | str | None = None) -> str:
    """One server-sent event with a single-line JSON ``data`` field."""
    out = ""
    if event_id is not None:
        out += f"id: {event_id}\n"
    if event is not None:
        out += f"event: {event}\n"
    return out + f"data: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def sse_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` response of `events`."""
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


class _Keepalive:
    """A comment line when nothing was sent for a while, so proxies keep the stream."""

    def __init__(self) -> None:
        self._last = time.monotonic()

    def sent(self) -> None:
        self._last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self._last >= KEEPALIVE_SECONDS:
            self._last = time.monotonic()
            return True
        return False


async def follow_execution(store: Store, request: Request, execution_id: str) -> AsyncIterator[str]:
    """The execution (with task runs) at start and at every state change, until it ends."""
    last: tuple[Any, ...] | None = None
    keepalive = _Keepalive()
    while True:
        detail = await store.execution_detail(execution_id)
        if detail is None:
            return
        signature = (
            detail.execution.state,
            tuple((d.task_run.id, d.task_run.state, len(d.attempts)) for d in detail.task_runs),
        )
        if signature != last:
            last = signature
            keepalive.sent()
            shown = await masked_detail(store, detail)
            yield sse_event(detail_body(shown).model_dump(mode="json"))
        elif keepalive.due():
            yield ": keepalive\n\n"
        if detail.execution.state.terminal or await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)


async def follow_logs(
    store: Store,
    request: Request,
    execution_id: str,
    *,
    since: int = 0,
    min_level: str | None = None,
) -> AsyncIterator[str]:
    """Every log line after `since`, then new ones as they come, until the execution ended.

    Each event's ``id`` is the line's ``seq``: a client reconnecting with ``Last-Event-ID``
    misses nothing and gets nothing twice.
    """
    keepalive = _Keepalive()
    ended_reads = 0
    while True:
        execution = await store.get_execution(execution_id)
        ended = execution is None or execution.state.terminal
        while True:
            lines = await store.execution_logs(
                execution_id, since=since, limit=LOG_PAGE, min_level=min_level
            )
            for line in lines:
                since = line.seq
                yield sse_event(log_body(line).model_dump(mode="json"), event_id=line.seq)
            if lines:
                keepalive.sent()
            if len(lines) < LOG_PAGE:
                break
        if ended:
            ended_reads += 1
            if ended_reads > 1:
                return
            await asyncio.sleep(LOG_GRACE_SECONDS)
            continue
        if keepalive.due():
            yield ": keepalive\n\n"
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)
