"""One timer per event loop and period for the periodic chores of many listeners.

A listener host runs hundreds of listeners; when each keeps its own timer for a chore
that is almost always a no-op (a JetStream consumer's keeper, an MQTT keep alive check),
the process wakes once per listener and period: 249 JetStream and 249 MQTT triggers at
5 s were about 100 wake-ups a second of an idle host. Listeners instead `join` the
loop's ticker for their period: one timer calls every member in turn, and stops when
the last one leaves.

A member's callback is synchronous and cheap (it decides whether there is anything to
do, and starts a task when there is); one that raises is logged and stays a member.
The first call comes at the ticker's next tick, so within one period of joining, not
exactly one period after.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable

_log = logging.getLogger(__name__)


class Membership:
    """A callback's place on a ticker; `leave` (idempotent) ends it."""

    __slots__ = ("_ticker",)

    def __init__(self, ticker: _Ticker) -> None:
        self._ticker: _Ticker | None = ticker

    def leave(self) -> None:
        """Stop being called."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.remove(self)


class _Ticker:
    def __init__(self, loop: asyncio.AbstractEventLoop, period: float) -> None:
        self._loop = loop
        self._period = period
        self._members: dict[Membership, Callable[[], None]] = {}  # in join order
        self._timer: asyncio.TimerHandle | None = None

    def add(self, callback: Callable[[], None]) -> Membership:
        member = Membership(self)
        self._members[member] = callback
        if self._timer is None:
            self._timer = self._loop.call_later(self._period, self._fire)
        return member

    def remove(self, member: Membership) -> None:
        self._members.pop(member, None)
        if not self._members and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        for callback in list(self._members.values()):
            try:
                callback()
            except Exception:  # one listener's bug must not stop the others' chores
                _log.exception("periodic listener chore failed")
        if self._members and self._timer is None:
            self._timer = self._loop.call_later(self._period, self._fire)


_TICKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, _Ticker]] = (
    weakref.WeakKeyDictionary()
)


def join(period: float, callback: Callable[[], None]) -> Membership:
    """Call `callback` every `period` seconds on the running loop, with its other members.

    Args:
        period: Seconds between two calls (members with the same period share a timer).
        callback: Called on the loop's thread; must not block.
    """
    loop = asyncio.get_running_loop()
    tickers = _TICKERS.setdefault(loop, {})
    ticker = tickers.get(period)
    if ticker is None:
        ticker = tickers[period] = _Ticker(loop, period)
    return ticker.add(callback)
