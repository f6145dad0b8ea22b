"""The one error tree: where each error sits, and that its fields survive the Ray boundary."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest
import ray.cloudpickle
from ray.exceptions import ActorDiedError, RayTaskError

from actors import TaskFailure, unwrap_ray_error
from actors._store import Lease
from connectors.kafka import KafkaSerde
from connectors.kafka import deserialize as kafka_deserialize
from connectors.mqtt._serde import deserialize as mqtt_deserialize
from connectors.mqtt._types import MqttSerde
from connectors.nats._serde import deserialize as nats_deserialize
from connectors.nats._types import NatsSerde
from flows import (
    ConflictError,
    ConnectorError,
    ExpressionError,
    KestrelError,
    NotFoundError,
    NotStartedError,
    SerdeError,
    StaleLeaseError,
    StoreError,
    TaskError,
    UnavailableError,
)

LEASE = Lease(kind="execution", key="e1", owner="a", epoch=3, expires_at=dt.datetime.now(dt.UTC))


def test_api_errors_are_kestrel_errors_not_store_errors() -> None:
    for cls in (NotFoundError, ConflictError, NotStartedError, UnavailableError):
        assert issubclass(cls, KestrelError) and not issubclass(cls, StoreError)
    assert issubclass(SerdeError, ConnectorError)
    assert issubclass(StaleLeaseError, StoreError)


@pytest.mark.parametrize("dumps", [pickle.dumps, ray.cloudpickle.dumps])
def test_error_fields_survive_pickling(dumps: object) -> None:
    stale = StaleLeaseError(LEASE, "b", 4)
    back = pickle.loads(dumps(stale))  # type: ignore[operator]
    assert (back.lease, back.holder, back.holder_epoch) == (LEASE, "b", 4)
    assert str(back) == str(stale) and "held by 'b' at epoch 4" in str(back)
    task = pickle.loads(dumps(TaskError("bad config", retriable=False)))  # type: ignore[operator]
    assert task.retriable is False and str(task) == "bad config"
    expr = ExpressionError("undefined", expression="{{ x }}", task="t", prop="message")
    again = pickle.loads(dumps(expr))  # type: ignore[operator]
    assert (again.expression, again.task, again.prop) == ("{{ x }}", "t", "message")
    assert str(again) == str(expr)


def test_task_failure_is_typed_and_stored_as_json() -> None:
    failure = TaskFailure.of(TaskError("secret-x failed", retriable=False))
    assert failure == TaskFailure("secret-x failed", "TaskError", retriable=False)
    masked = failure.masked(lambda text: text.replace("secret-x", "******"))
    assert masked.to_json() == {"message": "****** failed", "type": "TaskError", "retriable": False}
    assert TaskFailure.of(ValueError("x")).retriable is True


def test_every_connector_raises_the_one_serde_error() -> None:
    with pytest.raises(SerdeError):
        kafka_deserialize(b"{nope", KafkaSerde.JSON)
    with pytest.raises(SerdeError):
        mqtt_deserialize(b"{nope", MqttSerde.JSON)
    with pytest.raises(SerdeError, match="not JSON"):
        nats_deserialize(NatsSerde.JSON, b"{nope")
    with pytest.raises(SerdeError, match="UTF-8"):
        nats_deserialize(NatsSerde.STRING, b"\xff")


def test_ray_wrappers_unwrap_to_the_typed_cause() -> None:
    cause = NotFoundError("task run nope is not in execution e1")
    wrapped = RayTaskError("replay", "Traceback ...\x1b[31m ray::ExecutionActor", cause)
    assert unwrap_ray_error(wrapped.as_instanceof_cause()) is cause
    died = unwrap_ray_error(ActorDiedError())
    assert isinstance(died, UnavailableError) and "Traceback" not in str(died)
