"""Models of the Postgres types: ``postgres.RealtimeTrigger``, ``.Trigger`` and ``.Query``.

``postgres.Trigger`` and ``postgres.Query`` keep Kestra's JDBC property names
(``io.kestra.plugin.jdbc.postgresql``); ``postgres.RealtimeTrigger`` is Kestrel's own.
Only static checks live here; the runtime is elsewhere.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from flows import (
    Duration,
    Listener,
    ListenerContext,
    Problems,
    RealtimeTrigger,
    RunContext,
    RunnableTask,
    Trigger,
    refuse,
    register_type,
    templated,
)

from ._sql import named_placeholders

_K = "io.kestra.plugin.jdbc.postgresql"
_URL = re.compile(r"^(?:jdbc:)?postgres(?:ql)?://[^\s]*$")
_IDENT = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"[^"\x00]+")'
_TABLE = re.compile(rf"^{_IDENT}(?:\.{_IDENT})?$")
_COLUMN = re.compile(rf"^{_IDENT}$")
_POSITIONAL = re.compile(r"(?<![\w$])\$(\d+)")
_MAX_IDENT_BYTES = 63


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _url_problems(url: str) -> Problems:
    if templated(url) or _URL.match(url):
        return []
    return [
        (
            "url",
            f"'{url}' is not a PostgreSQL URL: expected postgresql://user@host:port/db "
            "or jdbc:postgresql://host:port/db",
            url,
        )
    ]


def to_dsn(url: str) -> str:
    """A libpq/asyncpg DSN from a Kestra-style URL: ``jdbc:`` dropped, ``postgres://`` kept."""
    return url.removeprefix("jdbc:")


def _parameter_problems(sql: str, parameters: dict[str, Any] | list[Any] | None) -> Problems:
    """Placeholders that no parameter fills: ``$n`` with a list, ``:name`` with a mapping."""
    if parameters is None or templated(sql):
        return []
    if isinstance(parameters, list):
        used = [int(n) for n in _POSITIONAL.findall(sql)]
        if used and max(used) > len(parameters):
            return [
                (
                    "parameters",
                    f"sql uses ${max(used)} but 'parameters' has {len(parameters)} value(s)",
                    parameters,
                )
            ]
        return []
    bad = [k for k in parameters if not re.match(r"^[A-Za-z_]\w*$", k)]
    if bad:
        return [
            (
                "parameters",
                f"parameter name '{bad[0]}' is not an identifier (it is used as :{bad[0]} in sql)",
                parameters,
            )
        ]
    missing = sorted({n for n in named_placeholders(sql) if n not in parameters})
    if missing:
        return [
            (
                "parameters",
                "sql uses "
                + ", ".join(f":{m}" for m in missing)
                + " but 'parameters' does not set it",
                parameters,
            )
        ]
    return []


class PostgresSerde(StrEnum):
    """How a NOTIFY payload is read: as text, or parsed as JSON into an object."""

    STRING = "STRING"
    JSON = "JSON"


class FetchType(StrEnum):
    """What a query outputs (Kestra's): the first row, all rows, rows in a file, or nothing."""

    FETCH_ONE = "FETCH_ONE"
    FETCH = "FETCH"
    STORE = "STORE"
    NONE = "NONE"


def _positive(key: str, value: timedelta | None) -> Problems:
    if value is not None and value.total_seconds() <= 0:
        return [(key, f"{key} must be a positive duration", str(value))]
    return []


@register_type("postgres.RealtimeTrigger")
class PostgresRealtimeTrigger(RealtimeTrigger):
    """Start one execution per Postgres event, in one of two modes.

    * **LISTEN/NOTIFY** (``channel`` only): one execution per notification, with
      millisecond latency. Postgres does not keep notifications sent while nobody
      listens, so this mode is at most once: use it for reactions, not ingestion.
      ``channel`` is matched exactly as ``pg_notify('<channel>', payload)`` sends it.
    * **Cursor table** (``table`` + ``cursorColumn``): one execution per new row, in
      ``cursorColumn`` order, durable. The cursor advances only after the execution is
      recorded, and the row's cursor value is its dedupe key, so every row starts exactly
      one execution even across restarts. ``cursorColumn`` must be unique and increase
      with commit order (a ``bigserial``/identity id); on first deployment reading starts
      at the table's first row. New rows are looked for every ``pollInterval``, and at
      once when a NOTIFY arrives on ``channel`` (optional wake-up, e.g. from an insert
      trigger).

    Trigger variables: ``trigger.channel`` and ``trigger.payload`` (NOTIFY: the text, or
    the decoded JSON; no dedupe key); ``trigger.data`` (the row, JSON-safe) with a cursor
    table, plus ``trigger.channel`` when a wake-up channel is set (no ``payload``: one
    wake-up may stand for many rows). A cursor row's dedupe key is
    ``pg:<table>:<cursor value>``. Cursor column types: integer types (serial, identity),
    numeric, timestamp, timestamptz, date, text/varchar.

    Attributes:
        url: ``postgresql://user@host:port/db`` or Kestra's ``jdbc:postgresql://...``.
        username: User name, when not in `url`.
        password: Password, when not in `url`.
        channel: The channel to LISTEN on (the events, or a cursor table's wake-up).
        table: Cursor mode: the table, optionally ``schema.table``.
        cursor_column: Cursor mode: the unique, increasing column.
        poll_interval: Cursor mode: how often to look for new rows without a wake-up.
        batch_size: Cursor mode: rows read per query.
        deserializer: How NOTIFY payloads are read; STRING by default.
        max_in_flight: Events read but not yet durable, at most.
        dead_letter_after: Attempts before an event is dead-lettered.
    """

    url: Annotated[str, Field(min_length=1)]
    username: str | None = None
    password: str | None = None
    channel: str | None = None
    table: str | None = None
    cursor_column: str | None = None
    poll_interval: Duration = timedelta(seconds=1)
    batch_size: Annotated[int, Field(ge=1)] = 100
    deserializer: PostgresSerde = PostgresSerde.STRING

    _serde = field_validator("deserializer", mode="before")(_upper)

    @property
    def mode(self) -> Literal["notify", "cursor"]:
        """``cursor`` with a table, else ``notify``."""
        return "cursor" if self.table is not None else "notify"

    def dsn(self) -> str:
        """The URL as a libpq/asyncpg DSN."""
        return to_dsn(self.url)

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """A `NotifyListener` (``channel`` only) or a `CursorListener` (``table``)."""
        if self.mode == "cursor":
            from ._cursor import CursorListener

            return CursorListener(self, ctx)
        from ._notify import NotifyListener

        return NotifyListener(self, ctx)

    @model_validator(mode="after")
    def _consistent(self) -> PostgresRealtimeTrigger:
        problems = _url_problems(self.url)
        if self.channel is None and self.table is None:
            problems.append(
                (
                    "channel",
                    "missing 'channel' (LISTEN/NOTIFY) or 'table' with "
                    "'cursorColumn' (durable cursor)",
                    None,
                )
            )
        if self.channel is not None and (
            not self.channel
            or "\x00" in self.channel
            or len(self.channel.encode()) > _MAX_IDENT_BYTES
        ):
            problems.append(("channel", "a channel name has 1 to 63 bytes, no NUL", self.channel))
        if self.table is not None:
            if not _TABLE.match(self.table):
                problems.append(
                    (
                        "table",
                        f"'{self.table}' is not a table name: use table or "
                        'schema.table (identifiers, or "quoted" ones)',
                        self.table,
                    )
                )
            if self.cursor_column is None:
                problems.append(
                    (
                        "cursorColumn",
                        "'table' needs 'cursorColumn', the unique "
                        "increasing column to read new rows by (e.g. id)",
                        None,
                    )
                )
        elif self.cursor_column is not None:
            problems.append(("cursorColumn", "'cursorColumn' needs 'table'", self.cursor_column))
        elif "poll_interval" in self.model_fields_set or "batch_size" in self.model_fields_set:
            key = "pollInterval" if "poll_interval" in self.model_fields_set else "batchSize"
            problems.append(
                (
                    key,
                    f"'{key}' is for a cursor table; set 'table' and 'cursorColumn' or remove it",
                    None,
                )
            )
        if self.cursor_column is not None and not _COLUMN.match(self.cursor_column):
            problems.append(
                ("cursorColumn", f"'{self.cursor_column}' is not a column name", self.cursor_column)
            )
        problems.extend(_positive("pollInterval", self.poll_interval))
        refuse(self, problems)
        return self


@register_type("postgres.Trigger", aliases=(f"{_K}.Trigger",))
class PostgresTrigger(Trigger):
    """Run ``sql`` every ``interval``; start one execution when it returns rows.

    The rows are in ``trigger.rows`` (FETCH), ``trigger.row`` (FETCH_ONE) or a file
    ``trigger.uri`` (STORE), and their count in ``trigger.size``. ``afterSQL`` runs in the
    same transaction once the execution is recorded: mark the rows as taken there
    (``UPDATE ... SET status = 'PROCESSED'``) or the next poll returns them again.

    Attributes:
        url: ``postgresql://user@host:port/db`` or Kestra's ``jdbc:postgresql://...``.
        username: User name, when not in `url`.
        password: Password, when not in `url`.
        sql: The query.
        parameters: Values for ``$1``... (a list) or ``:name`` (a mapping) placeholders.
        after_sql: A statement run after the execution is recorded (YAML ``afterSQL``).
        interval: Time between two polls.
        fetch_type: What the trigger outputs (Kestra's default NONE: only ``size``).
        fetch_size: Rows fetched per round trip.
    """

    url: Annotated[str, Field(min_length=1)]
    username: str | None = None
    password: str | None = None
    sql: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] | list[Any] | None = None
    after_sql: str | None = Field(default=None, alias="afterSQL")
    interval: Duration = timedelta(minutes=1)
    fetch_type: FetchType = FetchType.NONE
    fetch_size: Annotated[int, Field(ge=1)] = 10000

    _fetch = field_validator("fetch_type", mode="before")(_upper)

    def dsn(self) -> str:
        """The URL as a libpq/asyncpg DSN."""
        return to_dsn(self.url)

    @property
    def max_in_flight(self) -> int:
        """One poll is in flight at a time (the next tick waits for its ack)."""
        return 1

    @property
    def dead_letter_after(self) -> int:
        """Attempts before a poll's event is dead-lettered (as realtime triggers' default)."""
        return 3

    def create_listener(self, ctx: ListenerContext) -> Listener:
        """The polling listener: the host runs this trigger like a realtime one.

        Events carry ``trigger.rows`` (FETCH; STORE too, without a file store),
        ``trigger.row`` (FETCH_ONE) and ``trigger.size``, and the dedupe key
        ``pg-poll:<scheduled tick, ISO-8601>``.
        """
        from ._poll import PollingListener

        return PollingListener(self, ctx)

    @model_validator(mode="after")
    def _consistent(self) -> PostgresTrigger:
        problems = _url_problems(self.url)
        problems.extend(_parameter_problems(self.sql, self.parameters))
        problems.extend(_positive("interval", self.interval))
        refuse(self, problems)
        return self


@register_type("postgres.Query", aliases=(f"{_K}.Query",))
class PostgresQuery(RunnableTask):
    """Run one SQL statement; outputs ``row`` (FETCH_ONE) or ``rows`` (FETCH), and ``size``.

    Values go through ``parameters`` (never formatted into the SQL): ``$1``, ``$2``... with a
    list, ``:name`` with a mapping. ``afterSQL`` runs in the same transaction.

    Attributes:
        url: ``postgresql://user@host:port/db`` or Kestra's ``jdbc:postgresql://...``.
        username: User name, when not in `url`.
        password: Password, when not in `url`.
        sql: The statement.
        parameters: Values for ``$1``... (a list) or ``:name`` (a mapping) placeholders.
        after_sql: A statement run after `sql`, same transaction (YAML ``afterSQL``).
        fetch_type: ``NONE`` (Kestra's default), ``FETCH_ONE`` or ``FETCH``.
    """

    url: Annotated[str, Field(min_length=1)]
    username: str | None = None
    password: str | None = None
    sql: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] | list[Any] | None = None
    after_sql: str | None = Field(default=None, alias="afterSQL")
    fetch_type: FetchType = FetchType.NONE

    _fetch = field_validator("fetch_type", mode="before")(_upper)

    def dsn(self) -> str:
        """The URL as a libpq/asyncpg DSN."""
        return to_dsn(self.url)

    async def run(self, ctx: RunContext) -> dict[str, Any]:
        """Run the statement on this process's pool for the server (see `close_pools`).

        Values come back JSON-safe: numerics as numbers, times as ISO-8601 text, UUIDs
        as text, ``bytea`` as base64 text, ``json``/``jsonb`` as data.

        Returns:
            ``{"row": {...} | None, "size": 0 | 1}`` for FETCH_ONE,
            ``{"rows": [...], "size": n}`` for FETCH, ``{"size": rows affected}`` for NONE.

        Raises:
            TaskError: The statement failed; retriable when the connection or the server
                failed or a conflict rolled the transaction back.
        """
        from ._query import run_query

        return await run_query(self, ctx)

    @model_validator(mode="after")
    def _consistent(self) -> PostgresQuery:
        problems = _url_problems(self.url)
        problems.extend(_parameter_problems(self.sql, self.parameters))
        if self.fetch_type is FetchType.STORE:
            problems.append(
                (
                    "fetchType",
                    "postgres.Query supports fetchType NONE, FETCH_ONE or "
                    "FETCH; STORE is not supported",
                    self.fetch_type.value,
                )
            )
        refuse(self, problems)
        return self
