"""Shared fixtures: real servers for the whole session (see tests/servers)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from actors import StorageConfig
from tests.servers import (
    STARTUP_SECONDS,
    RayCluster,
    S3Server,
    consumer_group_options,
    create_database,
    drop_database,
    kafka_server,
    mqtt_server,
    nats_server,
    new_database_name,
    postgres_server,
    ray_session,
    s3_server,
)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """``postgresql://`` DSN of the session's PostgreSQL (maintenance db ``postgres``)."""
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def database_factory(postgres_dsn: str) -> Iterator[Callable[[], str]]:
    """Call to create another empty database; every one is dropped after the test."""
    created: list[str] = []

    def make() -> str:
        name = new_database_name()
        dsn = create_database(postgres_dsn, name)
        created.append(name)
        return dsn

    yield make
    for name in reversed(created):
        drop_database(postgres_dsn, name)


@pytest.fixture
def fresh_database(database_factory: Callable[[], str]) -> str:
    """DSN of a new, empty, uniquely named database, dropped (WITH FORCE) after the test."""
    return database_factory()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``127.0.0.1:PORT`` bootstrap address of the session's Kafka (tansu) broker."""
    with kafka_server() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def kafka_group_options(kafka_bootstrap: str) -> dict[str, int]:
    """Extra AIOKafkaConsumer kwargs for fast consumer groups (empty for external Kafka)."""
    return consumer_group_options()


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """``nats://127.0.0.1:PORT`` of the session's NATS server (JetStream enabled)."""
    with nats_server() as url:
        yield url


@pytest.fixture(scope="session")
def mqtt_url() -> Iterator[str]:
    """``tcp://127.0.0.1:PORT`` of the session's MQTT broker (mosquitto)."""
    with mqtt_server() as url:
        yield url


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """This process connected to one Ray for the session (started lazily, on first use)."""
    with ray_session() as cluster:
        yield cluster


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Report how long each self-started server took to become ready."""
    if STARTUP_SECONDS:
        timings = ", ".join(f"{name} {secs:.1f}s" for name, secs in STARTUP_SECONDS.items())
        terminalreporter.write_line(f"kestrel test servers started: {timings}")


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """The session's S3-compatible server (SeaweedFS, or ``KESTREL_TEST_S3_URL``)."""
    with s3_server() as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def storage_config(request: pytest.FixtureRequest, tmp_path: Path) -> StorageConfig:
    """Internal storage of this test alone: a local folder, then a prefix in a real bucket."""
    if request.param == "local":
        return StorageConfig.local(tmp_path / "storage")
    server: S3Server = request.getfixturevalue("s3")
    return StorageConfig.parse(f"s3://kestrel-test/{uuid.uuid4().hex}", env=server.env())
