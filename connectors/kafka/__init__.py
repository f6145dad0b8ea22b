"""Kafka: the ``kafka.RealtimeTrigger`` trigger and the ``kafka.Produce`` task.

Importing this package registers both types (it is the ``kafka`` entry point of the
``kestrel.plugins`` group).
"""

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
    "KafkaProduce",
    "KafkaRealtimeTrigger",
    "KafkaRecord",
    "KafkaSerde",
]
