"""Models of the MQTT types: ``mqtt.RealtimeTrigger`` and ``mqtt.Publish``.

Property names are Kestra's (``io.kestra.plugin.mqtt``); Kestrel extras have defaults.
Only static checks live here; the runtime is elsewhere.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    field_validator,
    model_validator,
)

from flows import (
    Duration,
    Listener,
    ListenerContext,
    Problems,
    RealtimeTrigger,
    RunContext,
    RunnableTask,
    refuse,
    register_type,
    templated,
)

_K = "io.kestra.plugin.mqtt"
_SERVER = re.compile(r"^(tcp|ssl)://(\[[0-9a-fA-F:]+\]|[\w.\-]+):(\d{1,5})/?$")
_MAX_TOPIC_BYTES = 65535
_V5_NEVER_EXPIRES = 0xFFFFFFFF
DEFAULT_SESSION_EXPIRY = timedelta(days=7)
"""How long the broker keeps a persistent session (and its queued messages) of a V5
trigger that is disconnected, unless ``sessionExpiryInterval`` says otherwise."""


def topic_problem(topic: str, *, wildcards: bool) -> str | None:
    """Why `topic` is not a valid MQTT topic (or topic filter when `wildcards`), or None.

    ``+`` matches one whole level, ``#`` the remaining levels (so it is the last level).
    A filter may be a shared subscription ``$share/<group>/<filter>``.
    """
    if templated(topic):
        return None
    if not topic:
        return "an MQTT topic cannot be empty"
    if "\x00" in topic or len(topic.encode()) > _MAX_TOPIC_BYTES:
        return f"'{topic}' is not an MQTT topic: no NUL character, at most 65535 bytes"
    if not wildcards:
        if "+" in topic or "#" in topic:
            return f"'{topic}' has a wildcard ('+' or '#'); a published topic cannot"
        return None
    if topic.startswith("$share/"):
        parts = topic.split("/", 2)
        if len(parts) < 3 or not parts[1] or "+" in parts[1] or "#" in parts[1]:
            return f"'{topic}': a shared subscription is $share/<group>/<filter>"
        topic = parts[2]
    levels = topic.split("/")
    for index, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            return f"'{topic}': a wildcard ('+', '#') must be a whole level, got '{level}'"
        if level == "#" and index != len(levels) - 1:
            return f"'{topic}': '#' can only be the last level"
    return None


def _server_problem(server: str) -> str | None:
    if templated(server):
        return None
    match = _SERVER.match(server)
    if match is None or not 0 < int(match.group(3)) < 65536:
        return (
            f"'{server}' is not an MQTT server URI: expected tcp://host:port or "
            "ssl://host:port (e.g. tcp://localhost:1883)"
        )
    return None


class MqttVersion(StrEnum):
    """The MQTT protocol version: V3 is 3.1.1, V5 is 5.0."""

    V3 = "V3"
    V5 = "V5"


_VERSIONS = {"v3": "V3", "3": "V3", "3.1.1": "V3", "311": "V3", "v5": "V5", "5": "V5", "5.0": "V5"}


def _version(value: Any) -> Any:
    """Accept ``V3``/``V5`` (Kestra's) and the protocol's own ``3.1.1``/``5``."""
    if isinstance(value, int | float):
        value = str(value)
    return _VERSIONS.get(value.strip().lower(), value) if isinstance(value, str) else value


class MqttSerde(StrEnum):
    """How a payload is read or written: text, JSON, or base64 of the raw bytes (Kestra's)."""

    STRING = "STRING"
    JSON = "JSON"
    BYTES = "BYTES"


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _qos(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value not in (0, 1, 2):
        raise ValueError(f"qos must be 0, 1 or 2, got {value}")
    return value


def _connection_problems(
    server: str, crt: str | None, username: str | None, password: str | None
) -> Problems:
    out: Problems = []
    if problem := _server_problem(server):
        out.append(("server", problem, server))
    if crt is not None and server.startswith("tcp://"):
        out.append(("crt", "'crt' (a CA certificate) needs an ssl:// server", crt))
    if password is not None and username is None:
        out.append(("username", "'password' needs 'username'", None))
    return out


_VERSION_FIELD = Field(
    default=MqttVersion.V5,
    alias="mqttVersion",
    validation_alias=AliasChoices("mqttVersion", "version"),
    description="V3 (3.1.1) or V5; `version` is accepted too",
)


@register_type("mqtt.RealtimeTrigger", aliases=(f"{_K}.RealtimeTrigger",))
class MqttRealtimeTrigger(RealtimeTrigger):
    """Start one execution per MQTT message on ``topic`` (wildcards ``+`` and ``#`` allowed).

    With ``qos`` 1 or 2 the session is persistent by default (``cleanSession: false``):
    the broker queues messages while the listener is away, and each message is
    acknowledged (PUBACK/PUBREC, manual ack) only after its execution is durable, so a
    message is never lost and a redelivery never starts a second execution. That needs a
    fixed ``clientId``; without one it is derived from namespace, flow and trigger ids. With
    ``qos`` 0 delivery is at most once. ``qos: 2`` subscribes at QoS 1: paho confirms a
    QoS 2 message (PUBREC) before the listener sees it, after which the broker never
    sends it again, while a QoS 1 PUBACK can wait for the execution; the dedupe key
    still gives one execution per message. On V5 a persistent session lasts
    ``sessionExpiryInterval`` (7 days by default) after a disconnect. A message that keeps
    failing is dead-lettered after ``deadLetterAfter`` deliveries.
    ``serdeType`` defaults to JSON, like Kestra's trigger.

    Trigger variables: ``trigger.id``, ``topic``, ``qos``, ``retain``, ``properties``
    (V5 user properties), ``payload``.

    Attributes:
        server: ``tcp://host:port`` or ``ssl://host:port``.
        mqtt_version: ``V3`` (3.1.1) or ``V5``; YAML key ``mqttVersion`` or ``version``.
        topic: A topic filter or a list of them.
        qos: Maximum quality of service of the subscription: 0, 1 or 2.
        client_id: The MQTT client id (fixed, for a persistent session).
        clean_session: Start with a fresh session and drop it at disconnect.
        session_expiry_interval: V5: how long the broker keeps the session.
        username: User name.
        password: Password, with `username`.
        crt: CA certificate (PEM content or path) for an ssl:// server.
        connection_timeout: How long to wait for the connection.
        https_hostname_verification_enabled: Check the server's host name on ssl://.
        serde_type: How payloads are read.
        max_in_flight: Messages read but not yet durable, at most.
        dead_letter_after: Deliveries before a message is dead-lettered.
    """

    server: Annotated[str, Field(min_length=1)]
    mqtt_version: MqttVersion = _VERSION_FIELD
    topic: str | Annotated[list[str], Field(min_length=1)]
    qos: Annotated[int, Field(ge=0, le=2)] = 1
    client_id: Annotated[str, Field(min_length=1, max_length=65535)] | None = None
    clean_session: bool = False
    session_expiry_interval: Duration | None = None
    username: str | None = None
    password: str | None = None
    crt: str | None = None
    connection_timeout: Duration | None = None
    https_hostname_verification_enabled: bool | None = None
    serde_type: MqttSerde = MqttSerde.JSON

    _version_spelling = field_validator("mqtt_version", mode="before")(_version)
    _serde = field_validator("serde_type", mode="before")(_upper)
    _qos_values = field_validator("qos", mode="before")(_qos)

    @property
    def topics(self) -> list[str]:
        """The topic filters as a list."""
        return [self.topic] if isinstance(self.topic, str) else list(self.topic)

    def session_expiry_seconds(self) -> int:
        """V5 Session Expiry Interval to connect with: 0 for a clean session."""
        if self.clean_session:
            return 0
        expiry = self.session_expiry_interval or DEFAULT_SESSION_EXPIRY
        return min(int(expiry.total_seconds()), _V5_NEVER_EXPIRES)

    @model_validator(mode="after")
    def _consistent(self) -> MqttRealtimeTrigger:
        problems = _connection_problems(self.server, self.crt, self.username, self.password)
        for topic in self.topics:
            if problem := topic_problem(topic, wildcards=True):
                problems.append(("topic", problem, topic))
        expiry = self.session_expiry_interval
        if expiry is not None:
            if self.mqtt_version is MqttVersion.V3:
                problems.append(
                    (
                        "sessionExpiryInterval",
                        "'sessionExpiryInterval' is MQTT 5 "
                        "only; with V3 the session lasts until a clean session",
                        str(expiry),
                    )
                )
            elif self.clean_session:
                problems.append(
                    (
                        "sessionExpiryInterval",
                        "'sessionExpiryInterval' keeps a "
                        "session; it contradicts 'cleanSession: true'",
                        str(expiry),
                    )
                )
            elif expiry.total_seconds() <= 0:
                problems.append(
                    (
                        "sessionExpiryInterval",
                        "sessionExpiryInterval must be a positive duration",
                        str(expiry),
                    )
                )
        refuse(self, problems)
        return self

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """An `MqttListener` for this trigger (it connects in ``connect``)."""
        from ._listener import MqttListener

        return MqttListener(self, ctx)


@register_type("mqtt.Publish", aliases=(f"{_K}.Publish",))
class MqttPublish(RunnableTask):
    """Publish one message (Kestra's ``from``) on ``topic``.

    ``from`` is the payload: with ``serdeType: JSON`` (the default) any value is sent as
    JSON (a string too, quoted, as Kestra does); with STRING it must be text, with BYTES
    base64 text of the bytes. The task waits for the broker's acknowledgement (QoS 1
    and 2) and outputs ``messagesCount``. Connections are kept open and reused by later
    tasks of the same worker; without ``clientId`` a random id is used.

    Attributes:
        server: ``tcp://host:port`` or ``ssl://host:port``.
        mqtt_version: ``V3`` (3.1.1) or ``V5``; YAML key ``mqttVersion`` or ``version``.
        client_id: The MQTT client id.
        topic: The topic, without wildcards.
        qos: Quality of service: 0, 1 or 2; the task waits for the acknowledgement.
        retain: Ask the broker to keep the message for future subscribers.
        from_: The payload (Kestra's ``from``).
        serde_type: How the payload is written.
        username: User name.
        password: Password, with `username`.
        crt: CA certificate (PEM content or path) for an ssl:// server.
        connection_timeout: How long to wait for the connection.
        https_hostname_verification_enabled: Check the server's host name on ssl://.
    """

    server: Annotated[str, Field(min_length=1)]
    mqtt_version: MqttVersion = _VERSION_FIELD
    client_id: Annotated[str, Field(min_length=1, max_length=65535)] | None = None
    topic: Annotated[str, Field(min_length=1)]
    qos: Annotated[int, Field(ge=0, le=2)] = 1
    retain: bool = False
    from_: Any = Field(alias="from")
    serde_type: MqttSerde = MqttSerde.JSON
    username: str | None = None
    password: str | None = None
    crt: str | None = None
    connection_timeout: Duration | None = None
    https_hostname_verification_enabled: bool | None = None

    _version_spelling = field_validator("mqtt_version", mode="before")(_version)
    _serde = field_validator("serde_type", mode="before")(_upper)
    _qos_values = field_validator("qos", mode="before")(_qos)

    @model_validator(mode="after")
    def _consistent(self) -> MqttPublish:
        problems = _connection_problems(self.server, self.crt, self.username, self.password)
        if problem := topic_problem(self.topic, wildcards=False):
            problems.append(("topic", problem, self.topic))
        if self.serde_type is not MqttSerde.JSON and not isinstance(self.from_, str):
            problems.append(
                (
                    "from",
                    f"with serdeType {self.serde_type.value} 'from' must be "
                    f"text; use serdeType JSON to send a {type(self.from_).__name__}",
                    self.from_,
                )
            )
        refuse(self, problems)
        return self

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Publish ``from`` on ``topic``; outputs ``{"messagesCount": 1}``.

        Raises:
            TaskError: Bad payload for ``serdeType`` (not retriable), or the broker is
                unreachable, refused the message or did not acknowledge it in time.
        """
        from ._publish import publish

        return await publish(self, ctx)
