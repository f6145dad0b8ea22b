"""A small multi-node Ray cluster in its own process, for the scale-out tests.

Run as ``python -m tests.servers._multinode_main``: it starts Ray's own multi-node test cluster
(`ray.cluster_utils.Cluster`: a head raylet with 1 CPU and a worker raylet with 1 CPU and
the custom resource ``gpu_node``, no dashboard), prints one JSON line
``{"address", "head", "gpu_node"}`` (GCS address and node ids), then answers one command
per stdin line with one JSON line:

- ``actors``: ``[{"name", "class", "node", "state"}]`` of every actor in the cluster
  (``name`` is empty for an unnamed one, such as a warm `TaskWorker`);
- ``remove-gpu-node``: stops the worker raylet (and everything on it), without grace;
- ``add-gpu-node``: starts a new worker raylet like it (as an autoscaler replaces a lost
  node) and answers ``{"gpu_node": <its node id>}``.

It shuts the cluster down when stdin closes. The test process itself never joins this
cluster, so it keeps its own session Ray (tests/servers/_ray.py) untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

HEAD_CPUS = 1
WORKER_CPUS = 1
GPU_NODE_RESOURCE = "gpu_node"
GPU_NODE_UNITS = 1
OBJECT_STORE_BYTES = 80 * 1024 * 1024


def _say(value: Any) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def _actors(global_state: Any) -> list[dict[str, Any]]:
    found = []
    for info in global_state.actor_table(None).values():
        address = info.get("Address") or {}
        found.append(
            {
                "name": info.get("Name") or "",
                "class": info.get("ActorClassName") or "",
                "node": address.get("NodeID"),
                "state": info.get("State"),
            }
        )
    return found


def main() -> None:
    """Start the cluster, report it, serve commands until stdin closes."""
    from ray import cluster_utils

    # Ray picks this machine's address: a joining driver (``ray.init(address=...)``) turns
    # a loopback address into that one anyway (``resolve_ip_for_localhost``).
    common = {"object_store_memory": OBJECT_STORE_BYTES}
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={**common, "num_cpus": HEAD_CPUS, "include_dashboard": False},
    )
    # Cluster writes its address where a bare ``ray.init()`` would find it: forget it, so
    # nothing else on this machine joins this cluster by accident.
    with contextlib.suppress(OSError):
        os.remove("/tmp/ray/ray_current_cluster")
    worker_args = {
        **common,
        "num_cpus": WORKER_CPUS,
        "resources": {GPU_NODE_RESOURCE: GPU_NODE_UNITS},
    }
    try:
        worker = cluster.add_node(**worker_args)
        cluster.wait_for_nodes()
        _say(
            {
                "address": cluster.address,
                "head": cluster.head_node.node_id,
                "gpu_node": worker.node_id,
            }
        )
        for line in sys.stdin:
            command = line.strip()
            if command == "actors":
                _say(_actors(cluster.global_state))
            elif command == "remove-gpu-node":
                cluster.remove_node(worker, allow_graceful=False)
                _say({"removed": worker.node_id})
            elif command == "add-gpu-node":
                worker = cluster.add_node(**worker_args)
                cluster.wait_for_nodes()
                _say({"gpu_node": worker.node_id})
            else:
                _say({"error": f"unknown command {command!r}"})
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
