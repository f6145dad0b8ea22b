"""Models of the Kafka types: ``kafka.RealtimeTrigger`` and ``kafka.Produce``.

Property names are Kestra's (``io.kestra.plugin.kafka``) so a Kestra flow runs unchanged;
the few Kestrel extras (``maxInFlight``, ``deadLetterAfter``, ``autoOffsetReset``) have
defaults. Only static checks live here; the runtime is elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from flows import (
    ConnectorError,
    KestrelModel,
    Listener,
    ListenerContext,
    RealtimeTrigger,
    RunContext,
    RunnableTask,
    refuse,
    register_type,
    templated,
)

_K = "io.kestra.plugin.kafka"
_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _kafka_config(value: Any) -> Any:
    """Kafka client configs are strings; YAML scalars (500, true) are turned into them."""
    if not isinstance(value, dict):
        return value
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[key] = str(item)
        else:
            out[key] = item
    return out


def _topic_problem(topic: str) -> str | None:
    if templated(topic) or (_TOPIC.match(topic) and topic not in (".", "..")):
        return None
    return (
        f"'{topic}' is not a valid Kafka topic name: use 1 to 249 characters among "
        "letters, digits, '.', '_' and '-'"
    )


class KafkaSerde(StrEnum):
    """How a Kafka key or value is turned from (or into) bytes; Kestra's names.

    ``JSON`` payloads become objects, ``BYTES``/``BYTE_ARRAY``/``BYTE_BUFFER`` become
    base64 text, ``VOID`` is always null; the numeric types use Kafka's big-endian layout.
    """

    STRING = "STRING"
    JSON = "JSON"
    BYTES = "BYTES"
    BYTE_ARRAY = "BYTE_ARRAY"
    BYTE_BUFFER = "BYTE_BUFFER"
    INTEGER = "INTEGER"
    LONG = "LONG"
    SHORT = "SHORT"
    DOUBLE = "DOUBLE"
    FLOAT = "FLOAT"
    UUID = "UUID"
    VOID = "VOID"


class AutoOffsetReset(StrEnum):
    """Where a consumer group with no committed offset starts reading."""

    EARLIEST = "EARLIEST"
    LATEST = "LATEST"


KafkaConfig = Annotated[dict[str, str], Field(description="Kafka client configuration")]


@register_type("kafka.RealtimeTrigger", aliases=(f"{_K}.RealtimeTrigger",))
class KafkaRealtimeTrigger(RealtimeTrigger):
    """Start one execution per Kafka record, as soon as it is read.

    Reads ``topic`` (one name or a list) or every topic matching ``topicPattern`` as member
    of the consumer group ``groupId``. Offsets are committed only after the execution is
    durable (auto-commit is refused), and every execution carries the record's
    topic/partition/offset as its dedupe key, so a redelivered record never starts a second
    execution. A record that cannot be deserialized or keeps failing to be recorded is
    dead-lettered after ``deadLetterAfter`` attempts and never blocks its partition.

    Trigger variables: ``trigger.key``, ``value``, ``topic``, ``partition``, ``offset``,
    ``timestamp``, ``headers``.

    Attributes:
        topic: A topic name or a list of names; exactly one of `topic` or `topic_pattern`.
        topic_pattern: A regular expression; every matching topic is consumed.
        group_id: The consumer group.
        properties: Kafka consumer configs; ``bootstrap.servers`` is required.
        key_deserializer: How keys are read.
        value_deserializer: How values are read.
        serde_properties: Serializer settings; Kestra's older ``keyDeserializer`` and
            ``valueDeserializer`` placed here are honoured.
        since: A partition the group has never committed starts at its first record at or
            after this time (naive = UTC) instead of at ``autoOffsetReset``.
        partitions: Read only these partitions (manual assignment, no group rebalance).
        max_in_flight: Records read but not yet durable, at most; reading pauses beyond.
        dead_letter_after: Attempts before a record is dead-lettered.
        auto_offset_reset: Where a group with no committed offset starts.
    """

    topic: str | Annotated[list[str], Field(min_length=1)] | None = None
    topic_pattern: str | None = None
    group_id: Annotated[str, Field(min_length=1)]
    properties: KafkaConfig
    key_deserializer: KafkaSerde = KafkaSerde.STRING
    value_deserializer: KafkaSerde = KafkaSerde.STRING
    serde_properties: dict[str, Any] = Field(default_factory=dict)
    since: datetime | None = None
    partitions: list[Annotated[int, Field(ge=0)]] | None = None
    auto_offset_reset: AutoOffsetReset = AutoOffsetReset.EARLIEST

    _upper_enums = field_validator(
        "key_deserializer", "value_deserializer", "auto_offset_reset", mode="before"
    )(_upper)
    _configs = field_validator("properties", mode="before")(_kafka_config)

    @field_validator("since")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> KafkaRealtimeTrigger:
        problems: list[tuple[str, str, Any]] = []
        if (self.topic is None) == (self.topic_pattern is None):
            both = self.topic is not None
            problems.append(
                (
                    "topicPattern" if both else "topic",
                    "set either 'topic' or 'topicPattern', not both"
                    if both
                    else "missing 'topic' (a name or a list of names) or 'topicPattern'",
                    self.topic_pattern,
                )
            )
        for name in [self.topic] if isinstance(self.topic, str) else self.topic or []:
            problem = _topic_problem(name)
            if problem:
                problems.append(("topic", problem, name))
        if self.topic_pattern is not None and not templated(self.topic_pattern):
            try:
                re.compile(self.topic_pattern)
            except re.error as exc:
                message = f"topicPattern is not a valid regex: {exc}"
                problems.append(("topicPattern", message, self.topic_pattern))
        if self.partitions is not None and self.topic_pattern is not None:
            problems.append(
                (
                    "partitions",
                    "'partitions' needs 'topic'; it cannot be used with 'topicPattern'",
                    self.partitions,
                )
            )
        problems.extend(_check_bootstrap(self.properties))
        if self.properties.get("enable.auto.commit", "false").lower() == "true":
            problems.append(
                (
                    "properties",
                    "'enable.auto.commit' must stay false: offsets are committed only after the "
                    "execution is recorded",
                    self.properties,
                )
            )
        problems.extend(self._offset_reset())
        problems.extend(self._legacy_serde())
        refuse(self, problems)
        return self

    def _offset_reset(self) -> list[tuple[str, str, Any]]:
        configured = self.properties.get("auto.offset.reset")
        if configured is None:
            return []
        try:
            value = AutoOffsetReset(configured.upper())
        except ValueError:
            return [
                (
                    "properties",
                    f"'auto.offset.reset' must be earliest or latest, got '{configured}'",
                    self.properties,
                )
            ]
        if "auto_offset_reset" in self.model_fields_set and value is not self.auto_offset_reset:
            return [
                (
                    "autoOffsetReset",
                    f"autoOffsetReset {self.auto_offset_reset.value} "
                    f"contradicts properties 'auto.offset.reset: {configured}'",
                    self.auto_offset_reset.value,
                )
            ]
        self.auto_offset_reset = value
        return []

    def _legacy_serde(self) -> list[tuple[str, str, Any]]:
        """Kestra's older flows set the deserializers inside ``serdeProperties``."""
        out: list[tuple[str, str, Any]] = []
        for key, attr in (
            ("keyDeserializer", "key_deserializer"),
            ("valueDeserializer", "value_deserializer"),
        ):
            if key not in self.serde_properties or attr in self.model_fields_set:
                continue
            raw = self.serde_properties[key]
            try:
                setattr(self, attr, KafkaSerde(_upper(raw)))
            except ValueError:
                allowed = ", ".join(s.value for s in KafkaSerde)
                out.append(("serdeProperties", f"{key} '{raw}' is not one of {allowed}", raw))
        return out

    @property
    def topics(self) -> list[str]:
        """The topic names as a list (empty with `topic_pattern`)."""
        if self.topic is None:
            return []
        return [self.topic] if isinstance(self.topic, str) else list(self.topic)

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """A `KafkaListener` for this trigger.

        Raises:
            ConnectorError: ``properties`` holds a property the consumer does not support
                (each is named) or a bad value, or contradicts ``groupId``.
        """
        from ._config import client_options
        from ._listener import KafkaListener

        options = client_options(self.properties, "consumer")
        if options.pop("group_id", self.group_id) != self.group_id:
            raise ConnectorError(
                f"properties 'group.id' contradicts groupId '{self.group_id}': remove it"
            )
        options.pop("auto_offset_reset", None)  # folded into auto_offset_reset already
        return KafkaListener(self, ctx, options)


def _check_bootstrap(properties: dict[str, str]) -> list[tuple[str, str, Any]]:
    servers = properties.get("bootstrap.servers", "").strip()
    if not servers:
        return [
            (
                "properties",
                "missing 'bootstrap.servers' in properties "
                "(e.g. bootstrap.servers: localhost:9092)",
                properties,
            )
        ]
    if templated(servers):
        return []
    bad = [s for s in servers.split(",") if not re.match(r"^[\w.\-\[\]:]+:\d{1,5}$", s.strip())]
    if bad:
        return [
            (
                "properties",
                f"bootstrap.servers '{servers}' is not a comma-separated list of host:port",
                properties,
            )
        ]
    return []


class KafkaRecord(KestrelModel):
    """One record to produce: Kestra's ``from`` entry.

    Attributes:
        key: The record key, serialized with ``keySerializer``.
        value: The record value, serialized with ``valueSerializer``; null is a tombstone.
        headers: Record headers.
        partition: A fixed partition; otherwise the key's hash picks it.
        timestamp: An ISO datetime or epoch milliseconds; otherwise the send time.
        topic: This record's topic, overriding the task's ``topic``.
    """

    key: Any = None
    value: Any = None
    headers: dict[str, str] | None = None
    partition: Annotated[int, Field(ge=0)] | None = None
    timestamp: datetime | int | str | None = None
    topic: str | None = None


def _from_kind(value: Any) -> str:
    # Tags hold a '[' so that error locations skip them (flows' convention for union tags).
    if isinstance(value, dict | KafkaRecord):
        return "record[]"
    return "list[record]" if isinstance(value, list) else "str[rendered]"


def _from_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(
            f"'from' must be a record, a list of records or a string, got {type(value).__name__}"
        )
    return value


KafkaFrom = Annotated[
    Annotated[KafkaRecord, Tag("record[]")]
    | Annotated[list[KafkaRecord], Tag("list[record]")]
    | Annotated[str, BeforeValidator(_from_text), Tag("str[rendered]")],
    Discriminator(_from_kind),
]
"""Kestra's ``from``: a record, a list of records, or a string rendered at run time into
JSON (one record or a list) or an internal-storage URI of records."""


@register_type("kafka.Produce", aliases=(f"{_K}.Produce",))
class KafkaProduce(RunnableTask):
    """Send one or more records to Kafka; outputs ``messagesCount``.

    Give the records with Kestra's ``from`` (one record, a list, or a rendered string), or
    one record with the ``key``/``value``/``headers``/``partition``/``timestamp``
    shortcut. Each record goes to its own ``topic`` or the task's. With ``transactional``
    (Kestra's default) all records of the task are committed atomically.

    Attributes:
        properties: Kafka producer configs; ``bootstrap.servers`` is required.
        topic: The default topic of the records.
        from_: Kestra's ``from``.
        key: Shortcut: the key of a single record.
        value: Shortcut: the value of a single record.
        headers: Shortcut: the headers of a single record.
        partition: Shortcut: the partition of a single record.
        timestamp: Shortcut: the timestamp of a single record.
        key_serializer: How keys are written.
        value_serializer: How values are written.
        serde_properties: Serializer settings.
        transactional: Send all records in one Kafka transaction.
    """

    properties: KafkaConfig
    topic: str | None = None
    from_: KafkaFrom | None = Field(default=None, alias="from")
    key: Any = None
    value: Any = None
    headers: dict[str, str] | None = None
    partition: Annotated[int, Field(ge=0)] | None = None
    timestamp: datetime | int | str | None = None
    key_serializer: KafkaSerde = KafkaSerde.STRING
    value_serializer: KafkaSerde = KafkaSerde.STRING
    serde_properties: dict[str, Any] = Field(default_factory=dict)
    transactional: bool = True

    _upper_enums = field_validator("key_serializer", "value_serializer", mode="before")(_upper)
    _configs = field_validator("properties", mode="before")(_kafka_config)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaProduce:
        problems = _check_bootstrap(self.properties)
        single = [
            k
            for k in ("key", "value", "headers", "partition", "timestamp")
            if getattr(self, k) is not None
        ]
        if self.from_ is not None and single:
            problems.append(
                (
                    single[0],
                    f"'{single[0]}' cannot be combined with 'from'; put it "
                    "in the record(s) of 'from'",
                    getattr(self, single[0]),
                )
            )
        elif self.from_ is None and "value" not in self.model_fields_set:
            problems.append(
                ("from", "missing 'from' (a record or a list of records) or 'value'", None)
            )
        if self.topic is not None and (problem := _topic_problem(self.topic)):
            problems.append(("topic", problem, self.topic))
        for index, record in enumerate(self.records()):
            if record.topic is None and self.topic is None:
                problems.append(
                    ("topic", f"record {index} has no 'topic' and the task sets no 'topic'", None)
                )
                break
            if record.topic is not None and (problem := _topic_problem(record.topic)):
                problems.append(("from", problem, record.topic))
        refuse(self, problems)
        return self

    def records(self) -> list[KafkaRecord]:
        """The records known before rendering (empty when ``from`` is a string)."""
        if isinstance(self.from_, KafkaRecord):
            return [self.from_]
        if isinstance(self.from_, list):
            return list(self.from_)
        if self.from_ is None:
            return [
                KafkaRecord(
                    key=self.key,
                    value=self.value,
                    headers=self.headers,
                    partition=self.partition,
                    timestamp=self.timestamp,
                )
            ]
        return []

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Serialize the records and send them (in one transaction when ``transactional``).

        Producers are reused across tasks of a worker process with the same properties.

        Returns:
            ``{"messagesCount": n}``, Kestra's output.

        Raises:
            TaskError: A record cannot be serialized or ``properties`` are not supported
                (not retriable), or Kafka failed.
        """
        from ._produce import produce

        return await produce(self, ctx)
