"""NATS: the ``nats.RealtimeTrigger`` trigger (core or JetStream) and the ``nats.Publish`` task.

Importing this package registers both types (it is the ``nats`` entry point of the
``kestrel.plugins`` group).
"""

from ._connection import close_shared_connections
from ._consumer import default_durable
from ._jetstream import JetStreamListener
from ._listener import CoreListener
from ._types import (
    DEFAULT_URL,
    DeliverPolicy,
    NatsFrom,
    NatsMessage,
    NatsPublish,
    NatsRealtimeTrigger,
    NatsSerde,
    subject_problem,
)

__all__ = [
    "DEFAULT_URL",
    "CoreListener",
    "DeliverPolicy",
    "JetStreamListener",
    "NatsFrom",
    "NatsMessage",
    "NatsPublish",
    "NatsRealtimeTrigger",
    "NatsSerde",
    "close_shared_connections",
    "default_durable",
    "subject_problem",
]
