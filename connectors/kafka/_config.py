"""Kafka client properties (Kestra's ``properties``, Java names) → aiokafka keyword arguments.

Only properties with an aiokafka equivalent are accepted, plus a few that have no effect
here and are safe to ignore; anything else is refused with an error naming it, so a
misspelt or unsupported setting never goes unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context

from flows import ConnectorError

Role = Literal["consumer", "producer"]
"""Which client the properties configure."""

_Convert = Callable[[str, str], Any]


def _text(_name: str, value: str) -> str:
    return value


def _int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ConnectorError(f"Kafka property '{name}' must be an integer, got '{value}'") from None


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    raise ConnectorError(f"Kafka property '{name}' must be true or false, got '{value}'")


def _choice(*allowed: str, upper: bool = True) -> Callable[[str, str], str]:
    def convert(name: str, value: str) -> str:
        normalised = value.strip().upper() if upper else value.strip().lower()
        if normalised not in allowed:
            raise ConnectorError(
                f"Kafka property '{name}' must be one of {', '.join(allowed)}, got '{value}'"
            )
        return normalised

    return convert


def _acks(name: str, value: str) -> int | str:
    lowered = value.strip().lower()
    if lowered in ("all", "-1"):
        return "all"
    if lowered in ("0", "1"):
        return int(lowered)
    raise ConnectorError(f"Kafka property '{name}' must be all, -1, 0 or 1, got '{value}'")


def _compression(name: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if lowered == "none":
        return None
    return _choice("gzip", "snappy", "lz4", "zstd", upper=False)(name, lowered)


_COMMON: dict[str, tuple[str, _Convert]] = {
    "bootstrap.servers": ("bootstrap_servers", lambda _n, v: [s.strip() for s in v.split(",")]),
    "client.id": ("client_id", _text),
    "request.timeout.ms": ("request_timeout_ms", _int),
    "retry.backoff.ms": ("retry_backoff_ms", _int),
    "metadata.max.age.ms": ("metadata_max_age_ms", _int),
    "connections.max.idle.ms": ("connections_max_idle_ms", _int),
    "security.protocol": (
        "security_protocol",
        _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    ),
    "sasl.mechanism": (
        "sasl_mechanism",
        _choice("PLAIN", "GSSAPI", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    ),
    "sasl.plain.username": ("sasl_plain_username", _text),
    "sasl.plain.password": ("sasl_plain_password", _text),
    "sasl.username": ("sasl_plain_username", _text),
    "sasl.password": ("sasl_plain_password", _text),
    "sasl.kerberos.service.name": ("sasl_kerberos_service_name", _text),
}

_CONSUMER: dict[str, tuple[str, _Convert]] = {
    "group.id": ("group_id", _text),
    "group.instance.id": ("group_instance_id", _text),
    "session.timeout.ms": ("session_timeout_ms", _int),
    "heartbeat.interval.ms": ("heartbeat_interval_ms", _int),
    "max.poll.records": ("max_poll_records", _int),
    "max.poll.interval.ms": ("max_poll_interval_ms", _int),
    "rebalance.timeout.ms": ("rebalance_timeout_ms", _int),
    "fetch.max.wait.ms": ("fetch_max_wait_ms", _int),
    "fetch.min.bytes": ("fetch_min_bytes", _int),
    "fetch.max.bytes": ("fetch_max_bytes", _int),
    "max.partition.fetch.bytes": ("max_partition_fetch_bytes", _int),
    "auto.offset.reset": ("auto_offset_reset", _choice("earliest", "latest", upper=False)),
    "isolation.level": (
        "isolation_level",
        _choice("read_committed", "read_uncommitted", upper=False),
    ),
    "check.crcs": ("check_crcs", _bool),
    "exclude.internal.topics": ("exclude_internal_topics", _bool),
    "client.rack": ("client_rack", _text),
}

_PRODUCER: dict[str, tuple[str, _Convert]] = {
    "acks": ("acks", _acks),
    "compression.type": ("compression_type", _compression),
    "batch.size": ("max_batch_size", _int),
    "linger.ms": ("linger_ms", _int),
    "max.request.size": ("max_request_size", _int),
    "enable.idempotence": ("enable_idempotence", _bool),
    "transactional.id": ("transactional_id", _text),
    "transaction.timeout.ms": ("transaction_timeout_ms", _int),
}

# Accepted and ignored: no aiokafka equivalent, and leaving them out changes nothing that
# matters here (serdes are Kestrel's own, commits are always manual, retries are built in).
_IGNORED_COMMON = frozenset(
    {
        "ssl.protocol",
        "ssl.enabled.protocols",
        "ssl.truststore.password",
        "receive.buffer.bytes",
        "send.buffer.bytes",
        "reconnect.backoff.ms",
        "reconnect.backoff.max.ms",
    }
)
_IGNORED: dict[Role, frozenset[str]] = {
    "consumer": _IGNORED_COMMON
    | {
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "key.deserializer",
        "value.deserializer",
    },
    "producer": _IGNORED_COMMON
    | {
        "key.serializer",
        "value.serializer",
        "retries",
        "delivery.timeout.ms",
        "max.in.flight.requests.per.connection",
    },
}

_SSL = frozenset(
    {
        "ssl.ca.location",
        "ssl.truststore.location",
        "ssl.truststore.type",
        "ssl.truststore.certificates",
        "ssl.certificate.location",
        "ssl.keystore.location",
        "ssl.keystore.type",
        "ssl.key.location",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.endpoint.identification.algorithm",
    }
)
_JAAS = "sasl.jaas.config"


def supported_properties(role: Role) -> list[str]:
    """Every property name `client_options` accepts for `role`, sorted."""
    own = _CONSUMER if role == "consumer" else _PRODUCER
    return sorted({*_COMMON, *own, *_IGNORED[role], *_SSL, _JAAS})


def client_options(properties: Mapping[str, str], role: Role) -> dict[str, Any]:
    """Translate Kafka client properties into aiokafka keyword arguments.

    Args:
        properties: Java-style names (``bootstrap.servers``, ``sasl.mechanism``, ``ssl.*``).
        role: ``consumer`` or ``producer``; each accepts its own properties plus the
            common ones (connection, security).

    Returns:
        Keyword arguments for ``AIOKafkaConsumer`` or ``AIOKafkaProducer``, with an
        ``ssl_context`` built from the ``ssl.*`` properties when the protocol uses TLS.

    Raises:
        ConnectorError: A property is unknown (every one is named), has a bad value, or
            names a key store that cannot be read.
    """
    table = {**_COMMON, **(_CONSUMER if role == "consumer" else _PRODUCER)}
    unknown = sorted(
        name
        for name in properties
        if name not in table and name not in _IGNORED[role] and name not in _SSL and name != _JAAS
    )
    if unknown:
        names = ", ".join(f"'{n}'" for n in unknown)
        raise ConnectorError(
            f"unsupported Kafka {role} properties: {names}; supported: "
            + ", ".join(supported_properties(role))
        )
    options: dict[str, Any] = {}
    if _JAAS in properties:
        options.update(_jaas(properties[_JAAS]))
    for name, value in properties.items():
        if name in table:
            kwarg, convert = table[name]
            options[kwarg] = convert(name, value)
    if options.get("security_protocol") in ("SSL", "SASL_SSL"):
        options["ssl_context"] = _ssl_context(properties)
    return options


def _jaas(config: str) -> dict[str, str]:
    """Username and password of a PLAIN or SCRAM ``sasl.jaas.config`` login module."""
    if not re.search(r"(PlainLoginModule|ScramLoginModule)", config):
        raise ConnectorError(
            "Kafka property 'sasl.jaas.config' is supported only with PlainLoginModule or "
            'ScramLoginModule (username="..." password="...")'
        )
    found = {k: v for k, v in re.findall(r'(username|password)\s*=\s*"([^"]*)"', config)}
    if set(found) != {"username", "password"}:
        raise ConnectorError(
            'Kafka property \'sasl.jaas.config\' must set username="..." and password="..."'
        )
    return {"sasl_plain_username": found["username"], "sasl_plain_password": found["password"]}


def _pem_only(properties: Mapping[str, str], kind: str) -> None:
    store_type = properties.get(f"ssl.{kind}.type", "PEM").strip().upper()
    if store_type != "PEM":
        raise ConnectorError(
            f"Kafka property 'ssl.{kind}.type' {store_type} is not supported: convert the "
            f"{kind} to PEM (e.g. with keytool and openssl) and set ssl.{kind}.type: PEM"
        )


def _ssl_context(properties: Mapping[str, str]) -> ssl.SSLContext:
    """A TLS context from librdkafka-style or PEM-typed Java ``ssl.*`` properties."""
    get = properties.get
    if get("ssl.truststore.location"):
        _pem_only(properties, "truststore")
    if get("ssl.keystore.location"):
        _pem_only(properties, "keystore")
    password = get("ssl.key.password") or get("ssl.keystore.password")
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=get("ssl.ca.location") or get("ssl.truststore.location"),
            cadata=get("ssl.truststore.certificates"),
        )
        certfile = get("ssl.certificate.location") or get("ssl.keystore.location")
        if certfile:
            context.load_cert_chain(certfile, get("ssl.key.location"), password)
        elif get("ssl.keystore.certificate.chain"):
            chain = get("ssl.keystore.certificate.chain", "")
            with _pem_file(chain) as cert, _pem_file(get("ssl.keystore.key", "")) as key:
                context.load_cert_chain(cert, key or None, password)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConnectorError(f"cannot set up Kafka TLS from the ssl.* properties: {exc}") from exc
    if get("ssl.endpoint.identification.algorithm", "https").strip() == "":
        context.check_hostname = False
    return context


@contextlib.contextmanager
def _pem_file(text: str) -> Iterator[str]:
    """A private temporary file holding `text` ('' when `text` is empty)."""
    if not text:
        yield ""
        return
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        yield path
    finally:
        os.unlink(path)
