"""Kafka: the ``kafka.RealtimeTrigger`` trigger and the ``kafka.Produce`` task.

Importing this package registers both types (it is the ``kafka`` entry point of the
``kestrel.plugins`` group).
"""

from ._config import client_options, supported_properties
from ._listener import KafkaListener
from ._produce import close_producers
from ._serde import SerdeError, deserialize, serialize
from ._types import (
    AutoOffsetReset,
    KafkaFrom,
    KafkaProduce,
    KafkaRealtimeTrigger,
    KafkaRecord,
    KafkaSerde,
)

__all__ = [
    "AutoOffsetReset",
    "KafkaFrom",
    "KafkaListener",
    "KafkaProduce",
    "KafkaRealtimeTrigger",
    "KafkaRecord",
    "KafkaSerde",
    "SerdeError",
    "client_options",
    "close_producers",
    "deserialize",
    "serialize",
    "supported_properties",
]
