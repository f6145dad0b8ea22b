"""Where runtime actors go on a multi-node Ray cluster: round-robin over the live nodes.

Listener host ``i`` and pool actor ``i`` of a server ask for live node ``i mod n``
(live nodes by id) through Ray's node label ``ray.io/node-id``, with a fallback to any
other node, so a server's hosts and warm execution actors are spread deterministically
and an actor Ray restarts after its node died goes to a live node. (Ray's ``SPREAD``
strategy is best-effort, and a soft node affinity was not honoured by Ray 2.60's actor
scheduler.) On one node nothing is asked for.
"""

from __future__ import annotations

from typing import Any

import ray

NODE_ID_LABEL = "ray.io/node-id"


def spread_over_nodes(index: int) -> dict[str, Any]:
    """Ray ``.options()`` placing actor number `index` on live node ``index mod n``."""
    listed: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    nodes = sorted(n["NodeID"] for n in listed if n.get("Alive"))
    if len(nodes) < 2:
        return {}
    node = nodes[index % len(nodes)]
    return {
        "scheduling_strategy": "DEFAULT",
        "label_selector": {NODE_ID_LABEL: node},
        "fallback_strategy": [{"label_selector": {NODE_ID_LABEL: f"!{node}"}}],
    }
