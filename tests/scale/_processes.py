"""Processes the scale-out tests run: the multi-node Ray cluster and ``kestrel server``s.

The test process never joins the multi-node cluster: the cluster lives in its own process
(`tests.scale._cluster`) and every gateway is a real ``kestrel server`` process that joins
it with ``--ray-address``. So the session's own Ray (tests/servers/_ray.py) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.polling import eventually_sync
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
START_WITHIN_S = 90.0


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
    """Start `tests.scale._cluster` and stop it (closing its stdin) at the end."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.scale._cluster"],
            cwd=ROOT,
            env=_clean_env(),
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


@dataclass
class Gateway:
    """A running ``kestrel server`` process (API open: ``--no-auth``)."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def client(self) -> httpx.Client:
        """An HTTP client on this gateway."""
        return httpx.Client(base_url=self.base_url, timeout=30)

    def kill9(self) -> None:
        """``kill -9``: no shutdown, nothing released."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def start_gateway(
    db: str, flows: Path, log: Path, *, ray_address: str | None = None, **env: str
) -> Gateway:
    """Start ``kestrel server`` on `db` (and `ray_address`); return once ``/health`` answers.

    Args:
        db: The shared database.
        flows: Its flows folder.
        log: Where its stderr goes.
        ray_address: The Ray cluster to join (else its own local Ray).
        **env: Extra ``KESTREL_*`` settings.
    """
    port = free_port()
    args = [sys.executable, "-m", "gateway.cli", "server", "--db", db, "--port", str(port)]
    args += ["--flows", str(flows), "--no-auth", "--log-level", "info"]
    if ray_address:
        args += ["--ray-address", ray_address]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**_clean_env(), **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    gateway = Gateway(process, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"kestrel server exited: {log.read_text()}")
        with contextlib.suppress(httpx.TransportError), gateway.client() as client:
            return client.get("/health").status_code == 200
        return False

    try:
        eventually_sync(healthy, within=START_WITHIN_S, what="kestrel server up", interval=0.1)
    except BaseException:
        gateway.stop()
        raise
    return gateway


def _clean_env() -> dict[str, str]:
    """This environment without Kestrel's and Ray's settings, but with Ray's token
    authentication mode (the session Ray enables it; a joining driver needs it too)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KESTREL_", "RAY_")) or k.startswith("RAY_AUTH_")
    }
