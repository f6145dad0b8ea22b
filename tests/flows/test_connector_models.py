"""The connector types (Kafka, NATS, MQTT, Postgres) parse, alias and validate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from connectors.kafka import (
    AutoOffsetReset,
    KafkaProduce,
    KafkaRealtimeTrigger,
    KafkaRecord,
    KafkaSerde,
)
from connectors.mqtt import MqttPublish, MqttRealtimeTrigger, MqttSerde, MqttVersion
from connectors.nats import DeliverPolicy, NatsMessage, NatsPublish, NatsRealtimeTrigger, NatsSerde
from connectors.postgres import (
    FetchType,
    PostgresQuery,
    PostgresRealtimeTrigger,
    PostgresSerde,
    PostgresTrigger,
)
from flows import REGISTRY, Flow, FlowError, parse_flow

KAFKA = {"bootstrap.servers": "localhost:9092"}
NATS_URL = "nats://localhost:4222"
MQTT_SERVER = "tcp://localhost:1883"
PG_URL = "postgresql://postgres@localhost:5432/postgres"
LOG = {"id": "log", "type": "core.Log", "message": "hi"}


def flow_text(task: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"id": "t", "namespace": "kestrel.tests", "tasks": [task or LOG]}
    if trigger is not None:
        doc["triggers"] = [trigger]
    return yaml.safe_dump(doc, sort_keys=False)


def parse(task: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None) -> Flow:
    return parse_flow(flow_text(task, trigger), "flow.yaml")


def task_of(task: dict[str, Any]) -> Any:
    return parse(task=task).tasks[0]


def trigger_of(trigger: dict[str, Any]) -> Any:
    return parse(trigger=trigger).triggers[0]


def problems(
    task: dict[str, Any] | None = None, trigger: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    with pytest.raises(FlowError) as info:
        parse(task, trigger)
    found = [(p.path, p.message) for p in info.value.problems]
    for p in info.value.problems:
        assert p.file == "flow.yaml"
        assert p.line > 0, p
    return found


def at(key: str, path: str) -> str:
    """The problem path of property `path` of the first task or trigger ("" = the item)."""
    return f"{key}[0].{path}" if path else f"{key}[0]"


def assert_problem(found: list[tuple[str, str]], path: str, *words: str) -> None:
    """Some problem is at `path` and its message contains every word."""
    at = [m for p, m in found if p == path]
    assert at, f"no problem at {path}; got {found}"
    assert any(all(w in m for w in words) for m in at), f"{words} not in {at}"


# --- registration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls", "kind", "aliases"),
    [
        ("kafka.RealtimeTrigger", KafkaRealtimeTrigger, "trigger",
         {"io.kestra.plugin.kafka.RealtimeTrigger"}),
        ("kafka.Produce", KafkaProduce, "task", {"io.kestra.plugin.kafka.Produce"}),
        ("nats.RealtimeTrigger", NatsRealtimeTrigger, "trigger",
         {"io.kestra.plugin.nats.RealtimeTrigger"}),
        ("nats.Publish", NatsPublish, "task",
         {"io.kestra.plugin.nats.Produce", "io.kestra.plugin.nats.Publish"}),
        ("mqtt.RealtimeTrigger", MqttRealtimeTrigger, "trigger",
         {"io.kestra.plugin.mqtt.RealtimeTrigger"}),
        ("mqtt.Publish", MqttPublish, "task", {"io.kestra.plugin.mqtt.Publish"}),
        ("postgres.RealtimeTrigger", PostgresRealtimeTrigger, "trigger", set()),
        ("postgres.Trigger", PostgresTrigger, "trigger",
         {"io.kestra.plugin.jdbc.postgresql.Trigger"}),
        ("postgres.Query", PostgresQuery, "task", {"io.kestra.plugin.jdbc.postgresql.Query"}),
    ],
)  # fmt: skip
def test_registered_with_kestra_aliases(name: str, cls: type, kind: str, aliases: set[str]) -> None:
    info = REGISTRY.resolve(name)
    assert info.cls is cls
    assert info.kind == kind
    assert aliases <= set(info.aliases)
    for alias in aliases:
        assert REGISTRY.resolve(alias).name == name
    assert cls.__doc__ and len(cls.__doc__.splitlines()) > 3


# --- kafka -----------------------------------------------------------------------------


def test_kafka_trigger_parses_with_defaults() -> None:
    trigger = trigger_of({
        "id": "orders", "type": "kafka.RealtimeTrigger", "topic": "orders",
        "groupId": "order-alerts", "properties": KAFKA, "valueDeserializer": "JSON",
    })  # fmt: skip
    assert isinstance(trigger, KafkaRealtimeTrigger)
    assert trigger.type == "kafka.RealtimeTrigger"
    assert trigger.topics == ["orders"]
    assert trigger.key_deserializer is KafkaSerde.STRING
    assert trigger.value_deserializer is KafkaSerde.JSON
    assert (trigger.max_in_flight, trigger.dead_letter_after) == (1000, 3)
    assert trigger.auto_offset_reset is AutoOffsetReset.EARLIEST


def test_kafka_trigger_kestra_alias_and_kestra_shapes() -> None:
    trigger = trigger_of({
        "id": "realtime_trigger", "type": "io.kestra.plugin.kafka.RealtimeTrigger",
        "topic": ["orders", "returns"], "groupId": "kestraConsumer",
        "properties": {"bootstrap.servers": "a:9092,b:9092", "max.poll.records": 500,
                       "auto.offset.reset": "latest"},
        "serdeProperties": {"valueDeserializer": "JSON"},
        "since": "2024-06-01T00:00:00", "partitions": [0, 2], "maxInFlight": 10,
    })  # fmt: skip
    assert isinstance(trigger, KafkaRealtimeTrigger)
    assert trigger.type == "kafka.RealtimeTrigger"  # canonical name kept
    assert trigger.properties["max.poll.records"] == "500"
    assert trigger.value_deserializer is KafkaSerde.JSON  # Kestra's older place for it
    assert trigger.auto_offset_reset is AutoOffsetReset.LATEST
    assert trigger.since == datetime(2024, 6, 1, tzinfo=UTC)
    assert trigger.partitions == [0, 2]


def test_kafka_trigger_topic_pattern() -> None:
    trigger = trigger_of({
        "id": "t", "type": "kafka.RealtimeTrigger", "topicPattern": r"orders\..*",
        "groupId": "g", "properties": KAFKA,
    })  # fmt: skip
    assert trigger.topics == []
    assert trigger.topic_pattern == r"orders\..*"


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"topic": None}, "", ("'topic'", "'topicPattern'")),
        ({"topicPattern": "orders.*"}, "topicPattern", ("'topic'", "'topicPattern'", "not both")),
        ({"topic": "bad topic"}, "topic", ("'bad topic'", "Kafka topic")),
        ({"topic": None, "topicPattern": "ord(("}, "topicPattern", ("topicPattern", "regex")),
        ({"topic": None, "topicPattern": "o.*", "partitions": [0]}, "partitions",
         ("'partitions'", "'topicPattern'")),
        ({"properties": {"client.id": "x"}}, "properties", ("bootstrap.servers",)),
        ({"properties": {"bootstrap.servers": "localhost"}}, "properties",
         ("bootstrap.servers", "host:port")),
        ({"properties": {**KAFKA, "enable.auto.commit": True}}, "properties",
         ("enable.auto.commit",)),
        ({"properties": {**KAFKA, "auto.offset.reset": "latest"}, "autoOffsetReset": "EARLIEST"},
         "autoOffsetReset", ("autoOffsetReset", "auto.offset.reset")),
        ({"serdeProperties": {"valueDeserializer": "AVRO"}}, "serdeProperties",
         ("valueDeserializer", "AVRO")),
        ({"valueDeserializer": "AVRO"}, "valueDeserializer", ("STRING", "JSON")),
        ({"groupId": None}, "", ("missing", "groupId")),
        ({"maxInFlight": 0}, "maxInFlight", ("greater than or equal to 1",)),
        ({"deadLetterAfter": 0}, "deadLetterAfter", ("greater than or equal to 1",)),
        ({"partitions": [-1]}, "partitions[0]", ("greater than or equal to 0",)),
    ],
)  # fmt: skip
def test_kafka_trigger_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    trigger = {
        "id": "k",
        "type": "kafka.RealtimeTrigger",
        "topic": "orders",
        "groupId": "g",
        "properties": KAFKA,
    }
    trigger.update(changes)
    trigger = {k: v for k, v in trigger.items() if v is not None}
    assert_problem(problems(trigger=trigger), at("triggers", path), *words)


def test_kafka_trigger_reports_every_problem_at_once() -> None:
    found = problems(trigger={
        "id": "k", "type": "kafka.RealtimeTrigger", "topic": "a b", "topicPattern": "x",
        "groupId": "g", "properties": {"enable.auto.commit": "true"},
    })  # fmt: skip
    paths = [p for p, _ in found]
    assert paths.count("triggers[0].properties") == 2
    assert "triggers[0].topic" in paths
    assert "triggers[0].topicPattern" in paths


def test_kafka_produce_forms() -> None:
    one = task_of({
        "id": "p", "type": "kafka.Produce", "properties": KAFKA, "topic": "orders",
        "from": {"key": "k1", "value": {"total": 3}, "headers": {"h": "v"}, "partition": 1},
        "valueSerializer": "json",
    })  # fmt: skip
    assert isinstance(one, KafkaProduce)
    assert isinstance(one.from_, KafkaRecord)
    assert one.value_serializer is KafkaSerde.JSON
    assert one.records()[0].value == {"total": 3}
    many = task_of({
        "id": "p", "type": "io.kestra.plugin.kafka.Produce", "properties": KAFKA,
        "from": [{"topic": "a", "value": 1}, {"topic": "b", "value": 2, "timestamp": 17}],
    })  # fmt: skip
    assert many.type == "kafka.Produce"
    assert [r.topic for r in many.records()] == ["a", "b"]
    rendered = task_of(
        {
            "id": "p",
            "type": "kafka.Produce",
            "properties": KAFKA,
            "topic": "t",
            "from": "{{ trigger.uri }}",
        }
    )
    assert rendered.from_ == "{{ trigger.uri }}"
    assert rendered.records() == []
    shortcut = task_of(
        {
            "id": "p",
            "type": "kafka.Produce",
            "properties": KAFKA,
            "topic": "t",
            "key": "k",
            "value": "v",
        }
    )
    assert shortcut.records()[0].key == "k"
    assert shortcut.transactional is True


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({}, "", ("'from'", "'value'")),
        ({"from": {"value": 1}, "key": "k"}, "key", ("'key'", "'from'")),
        ({"from": {"value": 1, "colour": "red"}}, "from.colour", ("unknown property 'colour'",)),
        ({"from": [{"value": 1}, {"value": 2, "partition": -1}]}, "from[1].partition",
         ("greater than or equal to 0",)),
        ({"from": 5}, "from", ("'from'", "record")),
        ({"topic": None, "from": [{"value": 1}]}, "", ("'topic'",)),
        ({"topic": "no spaces allowed", "value": 1}, "topic", ("Kafka topic",)),
        ({"properties": {}, "value": 1}, "properties", ("bootstrap.servers",)),
        ({"value": 1, "keySerializer": "PROTOBUF"}, "keySerializer", ("STRING",)),
    ],
)  # fmt: skip
def test_kafka_produce_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    task = {"id": "p", "type": "kafka.Produce", "properties": KAFKA, "topic": "orders"}
    task.update(changes)
    task = {k: v for k, v in task.items() if v is not None}
    assert_problem(problems(task=task), at("tasks", path), *words)


# --- nats ------------------------------------------------------------------------------


def test_nats_trigger_core_mode() -> None:
    trigger = trigger_of(
        {
            "id": "n",
            "type": "nats.RealtimeTrigger",
            "url": NATS_URL,
            "subject": "orders.*.created",
            "queueGroup": "workers",
        }
    )
    assert isinstance(trigger, NatsRealtimeTrigger)
    assert trigger.jetstream is False
    assert trigger.deserializer is NatsSerde.STRING
    assert trigger.queue_group == "workers"


def test_nats_trigger_jetstream_mode() -> None:
    trigger = trigger_of({
        "id": "n", "type": "nats.RealtimeTrigger", "url": NATS_URL, "subject": "telemetry.>",
        "stream": "TELEMETRY", "durableId": "pipeline", "deliverPolicy": "new",
        "ackWait": "PT30S", "deserializer": "json",
    })  # fmt: skip
    assert trigger.jetstream is True
    assert trigger.deliver_policy is DeliverPolicy.NEW
    assert trigger.ack_wait == timedelta(seconds=30)
    assert trigger.deserializer is NatsSerde.JSON


def test_nats_trigger_kestra_alias_durable_without_stream_is_jetstream() -> None:
    trigger = trigger_of({
        "id": "watch", "type": "io.kestra.plugin.nats.RealtimeTrigger", "url": NATS_URL,
        "username": "nats_user", "password": "nats_password", "subject": "kestra.trigger",
        "durableId": "natsTrigger", "deliverPolicy": "All",
    })  # fmt: skip
    assert trigger.type == "nats.RealtimeTrigger"
    assert trigger.jetstream is True
    assert trigger.stream is None  # looked up by subject at run time


def test_nats_since_implies_by_start_time() -> None:
    trigger = trigger_of(
        {
            "id": "n",
            "type": "nats.RealtimeTrigger",
            "subject": "a.b",
            "since": "2024-06-01T00:00:00Z",
        }
    )
    assert trigger.url == NATS_URL  # NATS's default server
    assert trigger.deliver_policy is DeliverPolicy.BY_START_TIME
    assert trigger.jetstream is True


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"url": "http://localhost:4222"}, "url", ("NATS server URL",)),
        ({"subject": "orders.>.created"}, "subject", ("'>'", "last token")),
        ({"subject": "orders.cre*"}, "subject", ("whole token",)),
        ({"subject": "orders..created"}, "subject", ("empty",)),
        ({"durableId": "my.consumer"}, "durableId", ("durableId", "'.'")),
        ({"stream": "ORDERS", "queueGroup": "q"}, "queueGroup", ("'queueGroup'", "JetStream")),
        ({"durableId": "d", "deliverPolicy": "ByStartTime"}, "", ("ByStartTime", "'since'")),
        ({"since": "2024-01-01T00:00:00Z", "deliverPolicy": "All"}, "since",
         ("'since'", "ByStartTime")),
        ({"deliverPolicy": "ByStartSequence"}, "", ("'startSequence'",)),
        ({"deliverPolicy": "Sometimes"}, "deliverPolicy", ("ByStartTime",)),
        ({"username": "u"}, "", ("'password'",)),
        ({"token": "t", "username": "u", "password": "p"}, "token", ("'token'",)),
        ({"creds": "/etc/nats/user.creds", "token": "t"}, "creds", ("'creds'",)),
        ({"ackWait": "soon"}, "ackWait", ("ISO-8601 duration",)),
        ({"ackWait": "PT0S", "stream": "S"}, "ackWait", ("ackWait", "positive")),
        ({"deserializer": "AVRO"}, "deserializer", ("STRING",)),
    ],
)  # fmt: skip
def test_nats_trigger_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    trigger = {"id": "n", "type": "nats.RealtimeTrigger", "url": NATS_URL, "subject": "orders.>"}
    trigger.update(changes)
    assert_problem(problems(trigger=trigger), at("triggers", path), *words)


def test_nats_publish_forms() -> None:
    single = task_of(
        {
            "id": "p",
            "type": "nats.Publish",
            "subject": "alerts",
            "payload": {"a": 1},
            "headers": {"h": "v"},
            "jetstream": True,
            "msgId": "{{ execution.id }}",
        }
    )
    assert isinstance(single, NatsPublish)
    assert single.payload == {"a": 1}
    kestra = task_of({
        "id": "produce", "type": "io.kestra.plugin.nats.Produce", "url": NATS_URL,
        "username": "nats_user", "password": "nats_password", "subject": "kestra.publish",
        "from": [{"headers": {"someHeaderKey": "someHeaderValue"}, "data": "Some message"},
                 {"data": "Another message"}],
    })  # fmt: skip
    assert kestra.type == "nats.Publish"
    assert isinstance(kestra.from_, list)
    assert isinstance(kestra.from_[0], NatsMessage)
    assert kestra.from_[1].data == "Another message"
    assert (
        task_of(
            {
                "id": "p",
                "type": "io.kestra.plugin.nats.Publish",
                "subject": "a",
                "from": {"data": "x"},
            }
        ).type
        == "nats.Publish"
    )


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"payload": None}, "", ("'from'", "'payload'")),
        ({"from": {"data": 1}}, "payload", ("'payload'", "'from'")),
        ({"subject": "alerts.*"}, "subject", ("wildcard",)),
        ({"subject": "alerts.>"}, "subject", ("wildcard",)),
        ({"payload": None, "from": [{"data": 1, "body": 2}]}, "from[0].body",
         ("unknown property 'body'",)),
        ({"payload": None, "from": [{"data": 1}, {"data": 2}], "msgId": "x"}, "msgId",
         ("'msgId'",)),
        ({"url": "nats:/broken"}, "url", ("NATS server URL",)),
    ],
)  # fmt: skip
def test_nats_publish_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    task = {
        "id": "p",
        "type": "nats.Publish",
        "url": NATS_URL,
        "subject": "alerts",
        "payload": "hi",
    }
    task.update(changes)
    task = {k: v for k, v in task.items() if v is not None}
    assert_problem(problems(task=task), at("tasks", path), *words)


def test_design_md_example_parses_verbatim() -> None:
    flow = parse_flow(
        """
id: order-alerts
namespace: shop.orders
description: Alert on large orders
labels: {team: data}
inputs:
  - {id: threshold, type: INT, defaults: 100}
variables:
  channel: alerts
tasks:
  - id: check
    type: flow.If
    condition: "{{ trigger.value.total > inputs.threshold }}"
    then:
      - id: notify
        type: nats.Publish
        subject: "{{ vars.channel }}"
        payload: "{{ trigger.value | tojson }}"
errors:
  - {id: log-error, type: core.Log, message: "failed: {{ execution.id }}"}
triggers:
  - id: orders
    type: kafka.RealtimeTrigger
    topic: orders
    groupId: order-alerts
    properties: {bootstrap.servers: "localhost:9092"}
    valueDeserializer: JSON
"""
    )
    assert isinstance(flow.triggers[0], KafkaRealtimeTrigger)


# --- mqtt ------------------------------------------------------------------------------


def test_mqtt_trigger_defaults_and_wildcards() -> None:
    trigger = trigger_of(
        {
            "id": "m",
            "type": "mqtt.RealtimeTrigger",
            "server": MQTT_SERVER,
            "topic": ["factory/+/sensors/#", "$share/kestrel/plant/+/status"],
        }
    )
    assert isinstance(trigger, MqttRealtimeTrigger)
    assert trigger.mqtt_version is MqttVersion.V5
    assert trigger.qos == 1
    assert trigger.clean_session is False
    assert trigger.client_id is None
    assert trigger.serde_type is MqttSerde.JSON
    assert trigger.session_expiry_seconds() == 7 * 24 * 3600
    assert trigger.topics == ["factory/+/sensors/#", "$share/kestrel/plant/+/status"]


def test_mqtt_trigger_kestra_alias_and_version_spellings() -> None:
    kestra = trigger_of({
        "id": "realtime_trigger", "type": "io.kestra.plugin.mqtt.RealtimeTrigger",
        "server": MQTT_SERVER, "clientId": "kestraProducer", "mqttVersion": "V3",
        "topic": ["kestra/sensors/cpu", "kestra/sensors/mem"], "serdeType": "JSON",
    })  # fmt: skip
    assert kestra.type == "mqtt.RealtimeTrigger"
    assert kestra.mqtt_version is MqttVersion.V3
    for spelling, expected in (
        ("3.1.1", MqttVersion.V3),
        (5, MqttVersion.V5),
        ("v5", MqttVersion.V5),
    ):
        trigger = trigger_of(
            {
                "id": "m",
                "type": "mqtt.RealtimeTrigger",
                "server": MQTT_SERVER,
                "topic": "a/b",
                "version": spelling,
            }
        )
        assert trigger.mqtt_version is expected
    clean = trigger_of(
        {
            "id": "m",
            "type": "mqtt.RealtimeTrigger",
            "server": MQTT_SERVER,
            "topic": "a",
            "cleanSession": True,
            "qos": 0,
        }
    )
    assert clean.session_expiry_seconds() == 0


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"server": "localhost:1883"}, "server", ("tcp://host:port",)),
        ({"server": "mqtt://localhost:1883"}, "server", ("tcp://", "ssl://")),
        ({"server": "tcp://localhost"}, "server", ("host:port",)),
        ({"topic": "a/#/b"}, "topic", ("'#'", "last level")),
        ({"topic": ["ok/+", "a/b#"]}, "topic", ("whole level",)),
        ({"topic": "sensors/temp+"}, "topic", ("whole level",)),
        ({"topic": "$share//a"}, "topic", ("$share/<group>/<filter>",)),
        ({"topic": []}, "topic", ("at least 1",)),
        ({"qos": 3}, "qos", ("qos", "0, 1 or 2")),
        ({"mqttVersion": "V4"}, "mqttVersion", ("V3", "V5")),
        ({"mqttVersion": "V3", "sessionExpiryInterval": "PT1H"}, "sessionExpiryInterval",
         ("MQTT 5",)),
        ({"cleanSession": True, "sessionExpiryInterval": "PT1H"}, "sessionExpiryInterval",
         ("'cleanSession: true'",)),
        ({"crt": "/etc/ssl/ca.crt"}, "crt", ("'crt'", "ssl://")),
        ({"password": "secret"}, "", ("'username'",)),
        ({"serdeType": "AVRO"}, "serdeType", ("JSON",)),
    ],
)  # fmt: skip
def test_mqtt_trigger_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    trigger = {
        "id": "m",
        "type": "mqtt.RealtimeTrigger",
        "server": MQTT_SERVER,
        "topic": "factory/+/temperature",
    }
    trigger.update(changes)
    assert_problem(problems(trigger=trigger), at("triggers", path), *words)


def test_mqtt_publish_forms() -> None:
    task = task_of({
        "id": "publish", "type": "io.kestra.plugin.mqtt.Publish", "server": "ssl://localhost:8883",
        "clientId": "kestraProducer", "topic": "kestra/sensors/cpu", "crt": "/path/ca.crt",
        "serdeType": "JSON", "retain": True, "from": {"type": "sensors", "value": 1.23},
    })  # fmt: skip
    assert isinstance(task, MqttPublish)
    assert task.type == "mqtt.Publish"
    assert task.from_ == {"type": "sensors", "value": 1.23}
    assert task.retain is True
    text = task_of(
        {
            "id": "p",
            "type": "mqtt.Publish",
            "server": MQTT_SERVER,
            "topic": "a/b",
            "from": "on",
            "serdeType": "STRING",
            "qos": 2,
        }
    )
    assert text.serde_type is MqttSerde.STRING
    assert text.qos == 2


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"topic": "a/+/c"}, "topic", ("wildcard",)),
        ({"topic": "a/#"}, "topic", ("wildcard",)),
        ({"from": None}, "", ("missing", "from")),
        ({"serdeType": "STRING", "from": {"a": 1}}, "from", ("serdeType STRING", "JSON")),
        ({"server": "ws://localhost:9001"}, "server", ("tcp://",)),
        ({"qos": -1}, "qos", ("0, 1 or 2",)),
    ],
)  # fmt: skip
def test_mqtt_publish_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    task = {
        "id": "p",
        "type": "mqtt.Publish",
        "server": MQTT_SERVER,
        "topic": "alerts/cpu",
        "from": {"level": "high"},
    }
    task.update(changes)
    task = {k: v for k, v in task.items() if v is not None}
    assert_problem(problems(task=task), at("tasks", path), *words)


# --- postgres --------------------------------------------------------------------------


def test_postgres_realtime_trigger_modes() -> None:
    notify = trigger_of(
        {
            "id": "p",
            "type": "postgres.RealtimeTrigger",
            "url": PG_URL,
            "channel": "invoice_paid",
            "deserializer": "json",
        }
    )
    assert isinstance(notify, PostgresRealtimeTrigger)
    assert notify.mode == "notify"
    assert notify.deserializer is PostgresSerde.JSON
    cursor = trigger_of(
        {
            "id": "p",
            "type": "postgres.RealtimeTrigger",
            "url": "jdbc:postgresql://localhost:5432/postgres",
            "table": 'public."Signups"',
            "cursorColumn": "id",
            "channel": "signups_inserted",
        }
    )
    assert cursor.mode == "cursor"
    assert cursor.poll_interval == timedelta(seconds=1)
    assert cursor.dsn() == "postgresql://localhost:5432/postgres"
    assert cursor.deserializer is PostgresSerde.STRING


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"channel": None}, "", ("'channel'", "'table'")),
        ({"url": "mysql://localhost/db"}, "url", ("PostgreSQL URL",)),
        ({"channel": None, "table": "signups"}, "", ("'cursorColumn'",)),
        ({"cursorColumn": "id"}, "cursorColumn", ("'cursorColumn'", "'table'")),
        ({"pollInterval": "PT5S"}, "pollInterval", ("'pollInterval'", "cursor table")),
        ({"table": "signups; DROP TABLE x", "cursorColumn": "id"}, "table", ("table name",)),
        ({"table": "signups", "cursorColumn": "id desc"}, "cursorColumn", ("column name",)),
        ({"table": "t", "cursorColumn": "id", "pollInterval": "PT0S"}, "pollInterval",
         ("positive",)),
        ({"channel": "x" * 64}, "channel", ("63 bytes",)),
        ({"deserializer": "BYTES"}, "deserializer", ("STRING", "JSON")),
    ],
)  # fmt: skip
def test_postgres_realtime_trigger_refuses(
    changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    trigger = {"id": "p", "type": "postgres.RealtimeTrigger", "url": PG_URL, "channel": "events"}
    trigger.update(changes)
    trigger = {k: v for k, v in trigger.items() if v is not None}
    assert_problem(problems(trigger=trigger), at("triggers", path), *words)


def test_postgres_polling_trigger_kestra_alias() -> None:
    trigger = trigger_of({
        "id": "watch", "type": "io.kestra.plugin.jdbc.postgresql.Trigger", "interval": "PT5M",
        "url": "jdbc:postgresql://127.0.0.1:56982/", "username": "pg_user",
        "password": "pg_password", "sql": "SELECT id, status FROM my_table WHERE status = 'NEW'",
        "afterSQL": "UPDATE my_table SET status = 'PROCESSED' WHERE status = 'NEW'",
        "fetchType": "FETCH",
    })  # fmt: skip
    assert isinstance(trigger, PostgresTrigger)
    assert trigger.type == "postgres.Trigger"
    assert trigger.interval == timedelta(minutes=5)
    assert trigger.fetch_type is FetchType.FETCH
    assert trigger.after_sql is not None
    default = trigger_of(
        {
            "id": "w",
            "type": "postgres.Trigger",
            "url": PG_URL,
            "sql": "SELECT 1",
            "fetchType": "store",
        }
    )
    assert default.interval == timedelta(minutes=1)
    assert default.fetch_type is FetchType.STORE


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"sql": None}, "", ("missing", "sql")),
        ({"interval": "PT0S"}, "interval", ("interval", "positive")),
        ({"interval": "5 minutes"}, "interval", ("ISO-8601",)),
        ({"fetchType": "ALL"}, "fetchType", ("FETCH_ONE",)),
        ({"sql": "SELECT * FROM t WHERE a = $1 AND b = $2", "parameters": ["x"]}, "parameters",
         ("$2",)),
        ({"url": "jdbc:mysql://localhost/db"}, "url", ("PostgreSQL URL",)),
    ],
)  # fmt: skip
def test_postgres_polling_trigger_refuses(
    changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    trigger = {"id": "w", "type": "postgres.Trigger", "url": PG_URL, "sql": "SELECT 1"}
    trigger.update(changes)
    trigger = {k: v for k, v in trigger.items() if v is not None}
    assert_problem(problems(trigger=trigger), at("triggers", path), *words)


def test_postgres_query_forms() -> None:
    query = task_of(
        {
            "id": "q",
            "type": "postgres.Query",
            "url": PG_URL,
            "sql": "SELECT * FROM t WHERE id = $1 AND x::int > $2",
            "parameters": [1, 2],
            "fetchType": "FETCH_ONE",
        }
    )
    assert isinstance(query, PostgresQuery)
    assert query.fetch_type is FetchType.FETCH_ONE
    named = task_of(
        {
            "id": "q",
            "type": "io.kestra.plugin.jdbc.postgresql.Query",
            "url": PG_URL,
            "sql": "UPDATE t SET s = :status WHERE id = :id AND d > '10:30'::time",
            "parameters": {"id": 1, "status": "done"},
        }
    )
    assert named.type == "postgres.Query"
    assert named.fetch_type is FetchType.NONE


@pytest.mark.parametrize(
    ("changes", "path", "words"),
    [
        ({"fetchType": "STORE"}, "fetchType", ("STORE",)),
        ({"sql": "SELECT $3", "parameters": [1]}, "parameters", ("$3",)),
        ({"sql": "SELECT :a, :b", "parameters": {"a": 1}}, "parameters", (":b",)),
        ({"sql": "SELECT 1", "parameters": {"not valid": 1}}, "parameters", ("identifier",)),
        ({"url": "postgresql//localhost"}, "url", ("PostgreSQL URL",)),
        ({"sql": ""}, "sql", ("at least 1",)),
    ],
)  # fmt: skip
def test_postgres_query_refuses(changes: dict[str, Any], path: str, words: tuple[str, ...]) -> None:
    task = {"id": "q", "type": "postgres.Query", "url": PG_URL, "sql": "SELECT 1"}
    task.update(changes)
    assert_problem(problems(task=task), at("tasks", path), *words)


# --- templates are checked at run time, not here ---------------------------------------


def test_templated_values_skip_static_syntax_checks() -> None:
    parse(
        task={
            "id": "p",
            "type": "mqtt.Publish",
            "server": "{{ vars.broker }}",
            "topic": "alerts/{{ trigger.id }}",
            "from": "x",
        },
        trigger={
            "id": "n",
            "type": "nats.RealtimeTrigger",
            "url": "{{ envs.nats_url }}",
            "subject": "{{ envs.subject_prefix }}.>",
        },
    )
    task_of(
        {
            "id": "p",
            "type": "kafka.Produce",
            "properties": {"bootstrap.servers": "{{ vars.x }}"},
            "topic": "{{ vars.topic }}",
            "value": 1,
        }
    )
    task_of(
        {
            "id": "q",
            "type": "postgres.Query",
            "url": "{{ secret('PG_URL') }}",
            "sql": "SELECT {{ vars.columns }} FROM t WHERE id = $3",
            "parameters": [1],
        }
    )
