"""MQTT for tests: ``KESTREL_TEST_MQTT_URL``, else a private mosquitto (Debian package)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers._process import (
    LOOPBACK,
    ServerSpec,
    ServerStartError,
    run_server,
)

ENV_URL = "KESTREL_TEST_MQTT_URL"


def parse_mqtt_url(url: str) -> tuple[str, int]:
    """Split ``tcp://host:port`` (or ``mqtt://``) into host and port (default 1883)."""
    parts = urlsplit(url if "://" in url else f"tcp://{url}")
    if parts.scheme not in ("tcp", "mqtt") or not parts.hostname:
        raise ValueError(f"expected tcp://host:port or mqtt://host:port, got {url!r}")
    return parts.hostname, parts.port or 1883


def _encode_str(value: str) -> bytes:
    raw = value.encode()
    return len(raw).to_bytes(2, "big") + raw


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def check_mqtt(url: str, timeout: float = 5.0) -> None:
    """Raw MQTT 3.1.1 CONNECT -> CONNACK(accepted) -> DISCONNECT; raises on failure."""
    host, port = parse_mqtt_url(url)
    variable_header = _encode_str("MQTT") + bytes([0x04, 0x02]) + (30).to_bytes(2, "big")
    payload = _encode_str(f"kestrel-probe-{uuid.uuid4().hex[:12]}")
    body = variable_header + payload
    connect = bytes([0x10, len(body)]) + body  # body < 128 bytes: one-byte length
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(connect)
        connack = _recv_exact(sock, 4)
        if connack[0] != 0x20 or connack[1] != 0x02 or connack[3] != 0x00:
            raise ConnectionError(f"unexpected CONNACK {connack.hex()} from {url}")
        sock.sendall(bytes([0xE0, 0x00]))


def _mosquitto_spec(binary: str) -> ServerSpec:
    def command(port: int, workdir: Path) -> list[str]:
        config = workdir / f"mosquitto-{port}.conf"
        # persistence=false only means nothing is written to disk: sessions with
        # clean_session=False and their queued QoS>0 messages live in memory meanwhile.
        config.write_text(
            f"listener {port} {LOOPBACK}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        )
        return [binary, "-c", str(config)]

    return ServerSpec(
        name="mqtt-mosquitto",
        command=command,
        probe=lambda port, _workdir: check_mqtt(f"tcp://{LOOPBACK}:{port}", timeout=2.0),
        startup_timeout=30.0,
    )


MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
"""Where Debian puts mosquitto (``/usr/sbin`` is not on a normal user's PATH)."""
INSTALL_HINT = "run `make deps` (or `apt-get install -y mosquitto` as root)"


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, else where Debian installs it; None if absent."""
    found = shutil.which("mosquitto")
    if found is not None:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def _spec() -> ServerSpec:
    mosquitto = find_mosquitto()
    if mosquitto is None:
        raise ServerStartError(
            f"the MQTT tests need Debian's mosquitto, which is not installed: {INSTALL_HINT}, "
            f"or point {ENV_URL} at a running MQTT 5 broker"
        )
    return _mosquitto_spec(mosquitto)


@contextlib.contextmanager
def mqtt_server() -> Iterator[str]:
    """Yield a ``tcp://host:port`` URL: the env var if set, else a private broker's."""
    external = os.environ.get(ENV_URL)
    if external:
        try:
            check_mqtt(external)
        except Exception as exc:
            raise ServerStartError(f"{ENV_URL}={external!r} is not usable: {exc!r}") from exc
        yield external
        return
    with run_server(_spec()) as server:
        yield f"tcp://{server.host}:{server.port}"
