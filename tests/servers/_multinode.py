"""A multi-node Ray cluster on this machine, in its own process (`tests.servers._multinode_main`).

The calling process never joins it: every Kestrel there is a real ``kestrel server``
process that joins with ``--ray-address`` (`tests.servers.start_kestrel_server`), so the
session's own Ray (`tests.servers.ray_session`) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers._kestrel import ROOT, clean_env


@dataclass
class MultiNodeCluster:
    """The running multi-node cluster and the pipe that commands it.

    Attributes:
        address: GCS address for ``--ray-address``.
        head: Node id of the head raylet (1 CPU).
        gpu_node: Node id of the worker raylet (1 CPU, custom resource ``gpu_node``); the
            new one after `add_gpu_node`.
    """

    address: str
    head: str
    gpu_node: str
    process: subprocess.Popen[str]

    def ask(self, command: str) -> Any:
        """Send one command line; return its JSON answer."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(command + "\n")
        stdin.flush()
        return json.loads(stdout.readline())

    def actors(self) -> list[dict[str, Any]]:
        """``{"name", "class", "node", "state"}`` of every actor in the cluster."""
        found: list[dict[str, Any]] = self.ask("actors")
        return found

    def remove_gpu_node(self) -> str:
        """Stop the worker raylet, without grace; its node id."""
        removed: str = self.ask("remove-gpu-node")["removed"]
        return removed

    def add_gpu_node(self) -> str:
        """Start a worker raylet like the removed one; it becomes `gpu_node`."""
        self.gpu_node = self.ask("add-gpu-node")["gpu_node"]
        return self.gpu_node


@contextlib.contextmanager
def multinode_cluster(log: Path) -> Iterator[MultiNodeCluster]:
    """Start the cluster's process and stop it (closing its stdin) at the end.

    Args:
        log: Where the cluster process's stderr goes.
    """
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.servers._multinode_main"],
            cwd=ROOT,
            env=clean_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        if not first:
            raise RuntimeError(f"the multi-node cluster did not start: {log.read_text()}")
        info = json.loads(first)
        yield MultiNodeCluster(info["address"], info["head"], info["gpu_node"], process)
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
