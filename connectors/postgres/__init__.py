"""Postgres: a realtime trigger, a polling trigger and a query task.

``postgres.RealtimeTrigger`` (LISTEN/NOTIFY or cursor table), ``postgres.Trigger``
(polling, Kestra's JDBC trigger) and ``postgres.Query``.

Importing this package registers the three types (it is the ``postgres`` entry point of
the ``kestrel.plugins`` group).
"""

from ._connect import close_pools
from ._cursor import CursorListener
from ._notify import NotifyListener
from ._poll import PollingListener
from ._types import (
    FetchType,
    PostgresQuery,
    PostgresRealtimeTrigger,
    PostgresSerde,
    PostgresTrigger,
    to_dsn,
)

__all__ = [
    "CursorListener",
    "FetchType",
    "NotifyListener",
    "PollingListener",
    "PostgresQuery",
    "PostgresRealtimeTrigger",
    "PostgresSerde",
    "PostgresTrigger",
    "close_pools",
    "to_dsn",
]
