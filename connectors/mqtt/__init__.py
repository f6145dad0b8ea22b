"""MQTT: the ``mqtt.RealtimeTrigger`` trigger and the ``mqtt.Publish`` task.

Importing this package registers both types (it is the ``mqtt`` entry point of the
``kestrel.plugins`` group).
"""

from ._listener import MqttListener, default_client_id, subscription_qos
from ._publish import close_publish_clients
from ._types import (
    DEFAULT_SESSION_EXPIRY,
    MqttPublish,
    MqttRealtimeTrigger,
    MqttSerde,
    MqttVersion,
    topic_problem,
)

__all__ = [
    "DEFAULT_SESSION_EXPIRY",
    "MqttListener",
    "MqttPublish",
    "MqttRealtimeTrigger",
    "MqttSerde",
    "MqttVersion",
    "close_publish_clients",
    "default_client_id",
    "subscription_qos",
    "topic_problem",
]
