"""Postgres: a realtime trigger, a polling trigger and a query task.

``postgres.RealtimeTrigger`` (LISTEN/NOTIFY or cursor table), ``postgres.Trigger``
(polling, Kestra's JDBC trigger) and ``postgres.Query``.

Importing this package registers the three types (it is the ``postgres`` entry point of
the ``kestrel.plugins`` group).
"""

from ._types import (
    FetchType,
    PostgresQuery,
    PostgresRealtimeTrigger,
    PostgresSerde,
    PostgresTrigger,
    to_dsn,
)

__all__ = [
    "FetchType",
    "PostgresQuery",
    "PostgresRealtimeTrigger",
    "PostgresSerde",
    "PostgresTrigger",
    "to_dsn",
]
