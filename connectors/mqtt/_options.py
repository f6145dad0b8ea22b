"""Where and how one MQTT connection is opened: options, server URIs, TLS, reason codes."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from paho.mqtt.reasoncodes import ReasonCode

from flows import ConnectorError

KEEPALIVE_S = 60
"""MQTT keep alive: a PINGREQ goes out when nothing was sent or received for this long."""
DEFAULT_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """Everything needed to open one MQTT connection.

    Attributes:
        host: Broker host.
        port: Broker port.
        tls: True for ``ssl://``.
        crt: CA certificate, PEM text or a file path (ssl:// only; default: system CAs).
        verify_hostname: Check the broker's certificate names its host.
        v5: MQTT 5 (else 3.1.1).
        client_id: The client identifier.
        clean: Start a new session (3.1.1: clean session; 5: clean start).
        session_expiry_s: MQTT 5 Session Expiry Interval (0: ends with the connection).
        receive_maximum: MQTT 5 Receive Maximum: unacknowledged QoS>0 deliveries at most.
        username: User name, if any.
        password: Password, if any.
        timeout_s: Deadline of the TCP/TLS connection and of the CONNACK.
    """

    host: str
    port: int
    tls: bool
    crt: str | None
    verify_hostname: bool
    v5: bool
    client_id: str
    clean: bool
    session_expiry_s: int
    receive_maximum: int | None
    username: str | None
    password: str | None
    timeout_s: float

    @property
    def server(self) -> str:
        """``tcp://host:port`` or ``ssl://host:port``, for messages."""
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"


def split_server(server: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of a ``tcp://host:port`` or ``ssl://host:port`` URI."""
    parts = urlsplit(server)
    if parts.scheme not in ("tcp", "ssl") or not parts.hostname or parts.port is None:
        raise ConnectorError(f"'{server}' is not an MQTT server URI (tcp://host:port)")
    return parts.hostname, parts.port, parts.scheme == "ssl"


def ssl_context(crt: str | None, verify_hostname: bool) -> ssl.SSLContext:
    """A client TLS context trusting ``crt`` (PEM text or a file) or the system CAs."""
    try:
        if crt is None:
            context = ssl.create_default_context()
        elif "-----BEGIN" in crt:
            context = ssl.create_default_context(cadata=crt)
        else:
            context = ssl.create_default_context(cafile=str(Path(crt).expanduser()))
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConnectorError(f"cannot use the CA certificate 'crt': {exc}") from exc
    context.check_hostname = verify_hostname
    return context


def failed(code: ReasonCode | int) -> bool:
    """Whether an MQTT reason code is a failure (0x80 and above)."""
    value = code.value if isinstance(code, ReasonCode) else code
    return value >= 0x80
