"""``kestrel server`` as a real process, for tests and benchmarks.

The one place a ``kestrel server`` process is started: the scale-out tests (several
gateways, a multi-node Ray), the server-process test, the API fuzz test and the
scale-out benchmark all use `start_kestrel_server`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.polling import eventually_sync
from tests.servers._process import free_port

ROOT = Path(__file__).resolve().parents[2]
START_WITHIN_S = 120.0


@dataclass
class KestrelServer:
    """A running ``kestrel server`` process.

    Attributes:
        process: The process.
        base_url: ``http://127.0.0.1:<port>``.
        log: Where its stderr goes.
    """

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def client(self) -> httpx.Client:
        """An HTTP client on this server."""
        return httpx.Client(base_url=self.base_url, timeout=30)

    def kill9(self) -> None:
        """``kill -9``: no shutdown, nothing released."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop in time; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def start_kestrel_server(
    db: str,
    flows: Path,
    log: Path,
    *,
    ray_address: str | None = None,
    auth: Sequence[str] = ("--no-auth",),
    within: float = START_WITHIN_S,
    **env: str,
) -> KestrelServer:
    """Start ``kestrel server`` on `db`; return once ``/health`` answers.

    Args:
        db: Its database (``--db``).
        flows: Its flows folder.
        log: Where its stderr goes.
        ray_address: The Ray cluster to join (else it starts its own local Ray).
        auth: The authentication options (``("--api-token", T)``; none for the
            environment's ``KESTREL_API_TOKEN``).
        within: Seconds it may take to answer ``/health``.
        **env: Extra environment (``KESTREL_*`` settings).
    """
    port = free_port()
    args = [sys.executable, "-m", "gateway.cli", "server", "--db", db, "--port", str(port)]
    args += ["--flows", str(flows), *auth, "--log-level", "info"]
    if ray_address:
        args += ["--ray-address", ray_address]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**clean_env(), **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = KestrelServer(process, f"http://127.0.0.1:{port}", log)

    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"kestrel server exited: {log.read_text()}")
        with contextlib.suppress(httpx.TransportError), server.client() as client:
            return client.get("/health").status_code == 200
        return False

    try:
        eventually_sync(healthy, within=within, what="kestrel server up", interval=0.1)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def kestrel_server(
    db: str,
    flows: Path,
    log: Path,
    *,
    ray_address: str | None = None,
    auth: Sequence[str] = ("--no-auth",),
    **env: str,
) -> Iterator[KestrelServer]:
    """`start_kestrel_server`, stopped (SIGTERM) on exit."""
    server = start_kestrel_server(db, flows, log, ray_address=ray_address, auth=auth, **env)
    try:
        yield server
    finally:
        server.stop()


def clean_env() -> dict[str, str]:
    """This environment without Kestrel's and Ray's settings, but with Ray's token
    authentication mode (the session Ray enables it; a joining driver needs it too)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KESTREL_", "RAY_")) or k.startswith("RAY_AUTH_")
    }
