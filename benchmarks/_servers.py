"""The servers a benchmark run needs, started like the tests start them.

Brokers and Ray come from ``tests.servers`` (private servers on free loopback ports, or
the ``KESTREL_TEST_*`` addresses when set). Postgres is different on purpose: the tests'
server runs with ``fsync=off``, and the targets (docs/architecture.md, "Performance
targets") hold with Postgres durability on, so the benchmarks start an `EmbeddedPostgres`
(real PostgreSQL, PostgreSQL's defaults: ``fsync=on``, ``synchronous_commit=on``) in a
temporary directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from actors import EmbeddedPostgres
from tests.servers import (
    POSTGRES_ENV,
    RayCluster,
    consumer_group_options,
    kafka_server,
    mqtt_server,
    nats_server,
    ray_session,
)

BROKER_OF_SOURCE = {
    "nats": "nats",
    "jetstream": "nats",
    "mqtt": "mqtt",
    "kafka": "kafka",
    "pg-notify": None,
    "pg-cursor": None,
    "webhook": None,
}
"""Which broker each source needs (Postgres and Ray are always there)."""

POSTGRES_SETTINGS = {
    # 1,000 idle triggers: up to 50 LISTEN connections plus every host's store pool.
    "max_connections": "400",
}


@dataclass
class Brokers:
    """Addresses of the running brokers (None: not started) and Ray."""

    nats_url: str | None = None
    mqtt_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_group_options: dict[str, int] = field(default_factory=dict)
    ray: RayCluster | None = None


@contextlib.contextmanager
def brokers(needed: set[str]) -> Iterator[Brokers]:
    """Start the needed brokers ("nats", "mqtt", "kafka") and connect to Ray (local)."""
    with contextlib.ExitStack() as stack:
        found = Brokers()
        if "nats" in needed:
            found.nats_url = stack.enter_context(nats_server())
        if "mqtt" in needed:
            found.mqtt_url = stack.enter_context(mqtt_server())
        if "kafka" in needed:
            found.kafka_bootstrap = stack.enter_context(kafka_server())
            found.kafka_group_options = consumer_group_options()
        found.ray = stack.enter_context(ray_session())
        yield found


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


class Postgres:
    """A PostgreSQL server with durability on, handing out fresh databases."""

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._created: list[str] = []
        self.settings: dict[str, str] = {}

    async def read_settings(self) -> dict[str, str]:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            names = ("server_version", "fsync", "synchronous_commit", "max_connections")
            self.settings = {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
        finally:
            await conn.close()
        return self.settings

    @property
    def version(self) -> str | None:
        return self.settings.get("server_version")

    async def new_database(self, prefix: str = "kestrel_bench") -> str:
        """Create an empty database; returns its DSN (dropped by `drop_all`)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self._created.append(name)
        return with_database(self.admin_dsn, name)

    async def drop_all(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            for name in reversed(self._created):
                with contextlib.suppress(Exception):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self._created.clear()


@contextlib.asynccontextmanager
async def postgres() -> AsyncIterator[Postgres]:
    """``KESTREL_TEST_POSTGRES_DSN`` when set, else a private durable embedded server."""
    external = os.environ.get(POSTGRES_ENV)
    if external:
        server = Postgres(external)
        await server.read_settings()
        try:
            yield server
        finally:
            await server.drop_all()
        return
    with tempfile.TemporaryDirectory(prefix="kestrel-bench-pg-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp) / "pg", settings=POSTGRES_SETTINGS)
        async with embedded:
            server = Postgres(embedded.admin_dsn)
            await server.read_settings()
            try:
                yield server
            finally:
                await server.drop_all()
