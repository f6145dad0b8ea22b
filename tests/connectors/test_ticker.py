"""Listeners' periodic chores share one timer per loop and period (connectors._ticker)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from connectors import _ticker
from tests.polling import eventually

PERIOD = 0.01


def _timers(loop: asyncio.AbstractEventLoop) -> int:
    """Live timers of the ticker of `PERIOD` on `loop` (0 or 1)."""
    ticker = _ticker._TICKERS.get(loop, {}).get(PERIOD)
    return 0 if ticker is None or ticker._timer is None else 1


async def test_members_of_a_period_share_one_timer_until_the_last_leaves() -> None:
    loop = asyncio.get_running_loop()
    calls = {"a": 0, "b": 0}

    def counter(name: str) -> None:
        calls[name] += 1

    a = _ticker.join(PERIOD, lambda: counter("a"))
    b = _ticker.join(PERIOD, lambda: counter("b"))
    assert _timers(loop) == 1
    await eventually(lambda: calls["a"] >= 3 and calls["b"] >= 3, what="both called")
    a.leave()
    a.leave()  # idempotent
    after = calls["a"]
    await eventually(lambda: calls["b"] >= after + 3, what="b still called")
    assert calls["a"] == after
    b.leave()
    assert _timers(loop) == 0


async def test_a_member_that_raises_is_logged_and_the_others_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def broken() -> None:
        calls.append("broken")
        raise RuntimeError("bug")

    members = [_ticker.join(PERIOD, broken), _ticker.join(PERIOD, lambda: calls.append("ok"))]
    try:
        with caplog.at_level(logging.ERROR, logger=_ticker.__name__):
            await eventually(lambda: calls.count("ok") >= 2 and calls.count("broken") >= 2)
        assert "periodic listener chore failed" in caplog.text
    finally:
        for member in members:
            member.leave()
