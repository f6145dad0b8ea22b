"""Lease → owner: who runs an execution, and how to reach it from this server.

A running execution is owned under a lease whose owner name is
``<actor name>-<incarnation id>`` for an execution actor or a listener host, and this
server's own service's name for the executions it runs itself (webhooks). The registry
resolves an owner name by exact lookups, never by scanning names:

1. this process's service (its owner name);
2. an actor of this server (listener host or pool actor) by the actor name in the owner;
3. any named actor on the same Ray cluster (another server's), by that name;
4. otherwise the owner is another server's own process, reached through Postgres
   (``NOTIFY kestrel_controls``; the owning server applies it).

See docs/architecture.md, "Several gateways, one Postgres".
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, Protocol

from actors import (
    CONTROL_CHANNEL,
    EXECUTION_LEASE,
    ExecutionPool,
    ExecutionService,
    Store,
    owner_actor,
    owner_actor_name,
    remote_call,
)

from ._hosts import ListenerHosts

Action = Literal["kill", "resume", "pause"]
"""What an owner can be asked to do with an execution it runs."""


class Owner(Protocol):
    """Whoever holds an execution's lease, as this server can reach it."""

    async def control(self, action: Action, execution_id: str, *args: Any) -> bool:
        """Ask it to `kill`, `resume` or `pause` the execution; what it answered."""
        ...


class _LocalOwner:
    def __init__(self, service: ExecutionService) -> None:
        self._service = service

    async def control(self, action: Action, execution_id: str, *args: Any) -> bool:
        answer: bool = getattr(self._service, action)(execution_id, *args)
        return answer


class _ActorOwner:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def control(self, action: Action, execution_id: str, *args: Any) -> bool:
        answer: bool = await remote_call(getattr(self._handle, action).remote(execution_id, *args))
        return answer


class _NotifiedOwner:
    def __init__(self, store: Store, owner: str) -> None:
        self._store = store
        self._owner = owner

    async def control(self, action: Action, execution_id: str, *args: Any) -> bool:
        # The owning server applies it; the caller waits for the state to change.
        control = {"owner": self._owner, "executionId": execution_id, "action": action}
        await self._store.notify(CONTROL_CHANNEL, json.dumps({**control, "args": list(args)}))
        return True


class OwnerRegistry:
    """Finds the live owner of an execution from its lease.

    Args:
        store: The started store (leases, and the control channel).
        local: This process's execution service.
        hosts: This server's listener hosts.
        pool: This server's execution pool.
    """

    def __init__(
        self, store: Store, local: ExecutionService, hosts: ListenerHosts, pool: ExecutionPool
    ) -> None:
        self._store = store
        self._local = local
        self._hosts = hosts
        self._pool = pool

    async def owner_of(self, execution_id: str) -> Owner | None:
        """The live owner of an execution; None when nobody holds a live lease on it."""
        lease = await self._store.get_lease(EXECUTION_LEASE, execution_id)
        if lease is None or lease.expires_at <= dt.datetime.now(dt.UTC):
            return None
        return await self.resolve(lease.owner)

    async def resolve(self, owner: str) -> Owner:
        """How to reach the holder of leases named `owner`."""
        if owner == self._local.owner:
            return _LocalOwner(self._local)
        name = owner_actor_name(owner)
        handle = self._hosts.handle(name) or self._pool.handle_named(name)
        if handle is None:  # another server's actor on the same Ray cluster?
            handle = await owner_actor(owner)
        if handle is None:  # another server's own process (a webhook execution)
            return _NotifiedOwner(self._store, owner)
        return _ActorOwner(handle)
