"""Finding a runtime actor from any gateway on the same Ray cluster.

A server names its execution actors and listener hosts in the Ray namespace
`RAY_NAMESPACE`, so another server joined to the same cluster can reach the actor that
owns an execution's lease (to kill, pause or resume it) from the lease's owner name,
``<actor name>-<incarnation id>``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

RAY_NAMESPACE = "kestrel"
"""The Ray namespace of every server's named runtime actors."""


def owner_actor_name(owner: str) -> str:
    """The actor name in a lease owner (``<actor name>-<incarnation id>``)."""
    return owner.rsplit("-", 1)[0]


async def owner_actor(owner: str) -> Any | None:
    """The live named actor holding leases as `owner` anywhere in the cluster, if any."""

    def lookup() -> Any | None:
        try:
            return ray.get_actor(owner_actor_name(owner), namespace=RAY_NAMESPACE)
        except ValueError:  # no such actor (any more)
            return None

    return await asyncio.to_thread(lookup)
