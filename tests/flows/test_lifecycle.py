"""The lifecycle contract (a failed start unwinds) and the one DSN redaction."""

from __future__ import annotations

import pytest

from actors import Store
from flows import Service, StoreError, redact_dsn
from tests.servers import free_port


class Parts(Service):
    """Opens three parts in order; the third fails when told to."""

    def __init__(self, fail: bool) -> None:
        super().__init__()
        self.fail = fail
        self.open: list[str] = []

    async def _start(self) -> None:
        self.open.append("store")
        self.open.append("actors")
        if self.fail:
            raise RuntimeError("third part failed")
        self.open.append("workers")

    async def _stop(self) -> None:
        self.open.clear()


async def test_a_failed_start_unwinds_what_it_opened_and_may_be_retried() -> None:
    parts = Parts(fail=True)
    with pytest.raises(RuntimeError, match="third part failed"):
        await parts.start()
    assert parts.open == [] and not parts.running
    await parts.stop()  # safe after a failed start
    parts = Parts(fail=True)
    with pytest.raises(RuntimeError):
        await parts.start()
    parts.fail = False
    await parts.start()
    assert parts.open == ["store", "actors", "workers"] and parts.running
    await parts.stop()
    assert parts.open == [] and not parts.running


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?password=pw&sslmode=off",
            "postgresql://u@h/db?password=***&sslmode=off",
        ),
        ("postgresql://h/db?sslpassword=pw", "postgresql://h/db?sslpassword=***"),
        ("postgresql://h/db", "postgresql://h/db"),
    ],
)
def test_redact_dsn_hides_every_password(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


async def test_the_store_never_shows_a_password_in_its_errors() -> None:
    store = Store(f"postgresql://u:pw-one@127.0.0.1:{free_port()}/db?password=pw-two")
    with pytest.raises(StoreError) as failed:
        await store.start()
    assert "pw-one" not in str(failed.value) and "pw-two" not in str(failed.value)
    assert "password=***" in str(failed.value)
    await store.stop()
