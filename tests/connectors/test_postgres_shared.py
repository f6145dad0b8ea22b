"""Postgres NOTIFY triggers of one process share one LISTEN connection per database.

The server side is counted in ``pg_stat_activity`` (the shared connections'
``application_name``) on a database of the test's own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from connectors.postgres import PostgresRealtimeTrigger
from flows import ConnectorError, Event, PoisonMessage
from tests.chaos.test_postgres_restart import (  # the fixture: one restartable server
    RestartablePostgres,
    own_postgres,  # noqa: F401
)
from tests.connectors.fakes import Pump, PumpedListeners
from tests.polling import eventually

pytestmark = pytest.mark.integration

APPLICATION_NAME = "kestrel listen"  # connectors/postgres/_listen.py


async def sql(dsn: str, statement: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(statement, *args)
    finally:
        await conn.close()


async def backends(dsn: str) -> int:
    """Sessions of this database held by Kestrel's listeners (any ``kestrel`` one)."""
    rows = await sql(
        dsn,
        """SELECT application_name FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()""",
    )
    names = [row["application_name"] for row in rows]
    return sum(1 for name in names if name == APPLICATION_NAME) + sum(
        1
        for name in names
        if name == ""  # a listener's connection of its own has none
    )


class Triggers(PumpedListeners):
    """NOTIFY listeners of one test, pumped as the host does."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.dsn = dsn

    async def start(self, name: str, channel: str, **props: Any) -> Pump:
        trigger = PostgresRealtimeTrigger.model_validate(
            {"id": name, "type": "postgres.RealtimeTrigger", "url": self.dsn}
            | {"channel": channel, **props}
        )
        return await self.run(name, trigger)


@pytest.fixture
async def triggers(fresh_database: str) -> AsyncIterator[Triggers]:
    made = Triggers(fresh_database)
    yield made
    await made.close()


async def _count_is(dsn: str, wanted: int) -> bool:
    return await backends(dsn) == wanted


async def test_notify_triggers_share_one_connection_and_keep_their_own_messages(
    fresh_database: str, triggers: Triggers
) -> None:
    dsn = fresh_database
    one, two = f"ch_{uuid.uuid4().hex}", f"ch_{uuid.uuid4().hex}"
    a = await triggers.start("a", one, deserializer="JSON")
    b = await triggers.start("b", two)
    same = await triggers.start("same", one)  # a second trigger on a's channel

    await eventually(lambda: _count_is(dsn, 1), what="one listening session")

    for channel, payload in ((one, "not json"), (two, "to b"), (one, '{"n": 1}')):
        await sql(dsn, "SELECT pg_notify($1, $2)", channel, payload)
    poison, good = await a.take(2)
    assert isinstance(poison, PoisonMessage)  # a's poison message: nobody else minds
    assert isinstance(good, Event) and good.variables["payload"] == {"n": 1}
    got_b = await b.get()
    assert isinstance(got_b, Event) and got_b.variables == {"channel": two, "payload": "to b"}
    both = await same.take(2)
    assert [d.variables["payload"] for d in both if isinstance(d, Event)] == [
        "not json",
        '{"n": 1}',
    ]
    assert await b.quiet() == []

    # Stopping a leaves the channel to `same` (asyncpg UNLISTENs after the last callback).
    await triggers.stop("a")
    await sql(dsn, "SELECT pg_notify($1, 'after a')", one)
    after = await same.get()
    assert isinstance(after, Event) and after.variables["payload"] == "after a"
    assert await backends(dsn) == 1

    await triggers.close()
    await eventually(lambda: _count_is(dsn, 0), what="the shared session closed")


async def test_a_lost_connection_ends_every_trigger_on_it_and_one_reconnect_serves_all(
    fresh_database: str, triggers: Triggers
) -> None:
    dsn = fresh_database
    one, two = f"ch_{uuid.uuid4().hex}", f"ch_{uuid.uuid4().hex}"
    a = await triggers.start("a", one)
    b = await triggers.start("b", two)
    await eventually(lambda: _count_is(dsn, 1), what="one listening session")

    await sql(
        dsn,
        """SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = $1""",
        APPLICATION_NAME,
    )
    assert isinstance(await a.ended(), ConnectorError)
    assert isinstance(await b.ended(), ConnectorError)

    # What the host does for each: close, connect again (the first one opens it).
    for name, channel in (("a", one), ("b", two)):
        await triggers.stop(name)
        await triggers.start(name, channel)
    assert await backends(dsn) == 1
    await sql(dsn, "SELECT pg_notify($1, 'a again'), pg_notify($2, 'b again')", one, two)
    got_a, got_b = await triggers.running["a"][1].get(), await triggers.running["b"][1].get()
    assert isinstance(got_a, Event) and got_a.variables["payload"] == "a again"
    assert isinstance(got_b, Event) and got_b.variables["payload"] == "b again"


async def test_a_server_restart_recovers_every_trigger_on_the_shared_connection(
    own_postgres: RestartablePostgres,  # noqa: F811 (the imported fixture)
) -> None:
    dsn = own_postgres.admin_dsn
    triggers = Triggers(dsn)
    one, two = f"ch_{uuid.uuid4().hex}", f"ch_{uuid.uuid4().hex}"
    try:
        a = await triggers.start("a", one)
        b = await triggers.start("b", two)
        await eventually(lambda: _count_is(dsn, 1), what="one listening session")

        await asyncio.to_thread(own_postgres.restart, 0.5)
        assert isinstance(await a.ended(), ConnectorError)
        assert isinstance(await b.ended(), ConnectorError)
        await eventually(triggers.recovered, within=60, what="both listeners running")
        assert await backends(dsn) == 1

        await sql(dsn, "SELECT pg_notify($1, 'a back'), pg_notify($2, 'b back')", one, two)
        got_a = await triggers.running["a"][1].get()
        got_b = await triggers.running["b"][1].get()
        assert isinstance(got_a, Event) and got_a.variables["payload"] == "a back"
        assert isinstance(got_b, Event) and got_b.variables["payload"] == "b back"
    finally:
        await triggers.close()
