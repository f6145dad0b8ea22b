"""The Flow trigger: start a flow when another flow's execution ends in given states.

Ended executions are read from the store after a durable cursor (end time, id), so an
upstream execution that ended while Kestrel was down still triggers once it is back, and
the dedupe key (upstream id and end time) keeps that to one execution.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from flows import (
    ConnectorError,
    Delivery,
    Event,
    FlowTrigger,
    Listener,
    ListenerContext,
    State,
    condition_holds,
)

_POLL_S = 0.25
_BATCH = 200


def matches(trigger: FlowTrigger, namespace: str, flow_id: str, state: State) -> bool:
    """True when an execution of ``namespace.flow_id`` ending in `state` triggers the flow.

    Kestra's ``conditions`` (ExecutionStatus, ExecutionFlow, ExecutionNamespace, ...) must
    all hold. A namespace filter matches itself and its children. Kestra's ``preconditions.flows``
    are each a way in: the end of any listed flow in one of its states triggers.
    """
    if trigger.preconditions is not None and trigger.preconditions.flows:
        return any(
            _under(namespace, up.namespace)
            and (up.flow_id is None or up.flow_id == flow_id)
            and state in up.states
            for up in trigger.preconditions.flows
        )
    if trigger.namespace is not None and not _under(namespace, trigger.namespace):
        return False
    if trigger.flow_id is not None and trigger.flow_id != flow_id:
        return False
    if not all(condition_holds(c, namespace, flow_id, state.value) for c in trigger.conditions):
        return False
    return state in trigger.states


def _under(namespace: str, prefix: str) -> bool:
    return namespace == prefix or namespace.startswith(prefix + ".")


class FlowTriggerListener(Listener):
    """Yields one event per upstream execution that ended in a matching state.

    Args:
        trigger: The Flow trigger.
        ctx: The host's context; its ``service.store.dsn`` is the database to read.
    """

    def __init__(self, trigger: FlowTrigger, ctx: ListenerContext) -> None:
        self._trigger = trigger
        self._ctx = ctx
        self._conn: asyncpg.Connection | None = None
        self._after: tuple[dt.datetime, str] | None = None

    async def connect(self) -> None:
        """Open a connection and read the cursor (the first time: from now on)."""
        service: Any = getattr(self._ctx, "service", None)
        if service is None:
            raise ConnectorError("a Flow trigger needs the host's store")
        try:
            self._conn = await asyncpg.connect(service.store.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ConnectorError(f"cannot read ended executions: {exc}") from exc
        cursor = await self._ctx.load_cursor()
        if isinstance(cursor, dict):
            self._after = (dt.datetime.fromisoformat(cursor["endedAt"]), str(cursor["id"]))
        else:
            self._after = (dt.datetime.now(dt.UTC), "")
            await self._ctx.save_cursor({"endedAt": self._after[0].isoformat(), "id": ""})

    async def events(self) -> AsyncIterator[Delivery]:
        """Ended executions after the cursor, oldest first, as they end."""
        assert self._after is not None
        seen = self._after
        while True:
            rows = await self._fetch(seen)
            for row in rows:
                seen = (row["ended_at"], row["id"])
                state = State(row["state"])
                if row["namespace"] == self._ctx.namespace and row["flow_id"] == self._ctx.flow_id:
                    continue  # a flow never triggers itself
                if not matches(self._trigger, row["namespace"], row["flow_id"], state):
                    continue
                yield Event(
                    dedupe_key=f"flow:{row['id']}:{row['ended_at'].isoformat()}",
                    variables={
                        "executionId": row["id"],
                        "namespace": row["namespace"],
                        "flowId": row["flow_id"],
                        "flowRevision": row["flow_revision"],
                        "state": state.value,
                    },
                    source=f"flow:{row['namespace']}.{row['flow_id']}/{row['id']}",
                    published_at=row["ended_at"],
                    token=seen,
                )
            if len(rows) < _BATCH:
                await asyncio.sleep(_POLL_S)

    async def _fetch(self, after: tuple[dt.datetime, str]) -> list[Any]:
        if self._conn is None:
            raise ConnectorError("not connected")
        try:
            rows: list[Any] = await self._conn.fetch(
                """SELECT id, namespace, flow_id, flow_revision, state, ended_at
                     FROM executions
                    WHERE ended_at IS NOT NULL AND (ended_at, id) > ($1, $2)
                    ORDER BY ended_at, id LIMIT $3""",
                after[0],
                after[1],
                _BATCH,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ConnectorError(f"cannot read ended executions: {exc}") from exc
        return rows

    async def ack(self, delivery: Delivery) -> None:
        """Move the cursor past the upstream execution."""
        token = delivery.token
        if isinstance(token, tuple) and (self._after is None or token > self._after):
            self._after = token
            await self._ctx.save_cursor({"endedAt": token[0].isoformat(), "id": token[1]})

    async def close(self) -> None:
        """Close the connection."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
