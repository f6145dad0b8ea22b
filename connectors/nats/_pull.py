"""Credit accounting for JetStream pull requests: never ask for more than there is room for."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

EXPIRES = 30.0
"""Seconds a pull request waits on the server for messages before it expires."""
GRACE = 5.0
"""Seconds past its expiry after which a request the server never closed is forgotten."""


@dataclass(slots=True)
class _Request:
    remaining: int
    deadline: float


class PullWindow:
    """The pull requests a consumer has open, and how many more messages to ask for.

    The server fills open requests oldest first; each message delivered uses one unit
    of the oldest request's credit, and a status (408 expired, 409...) closes it with
    what it had left. The owner asks `want` how many to request next: never more than
    ``limit - unacked - credit`` (so deliveries held plus deliveries promised stay
    within the limit), at most `batch` outstanding, and only once the outstanding
    credit has fallen to half of that (fewer, larger requests).

    Args:
        batch: Messages outstanding at most (the pull request size).
        limit: Deliveries held plus outstanding at most (``maxInFlight``).
    """

    def __init__(self, batch: int, limit: int) -> None:
        self._batch = max(1, batch)
        self._limit = max(1, limit)
        self._open: deque[_Request] = deque()

    @property
    def credit(self) -> int:
        """Messages the open requests may still bring."""
        return sum(r.remaining for r in self._open)

    @property
    def requests(self) -> int:
        """Open requests."""
        return len(self._open)

    def want(self, unacked: int) -> int:
        """How many messages to request now (0: none) with `unacked` deliveries held."""
        credit = self.credit
        room = self._limit - unacked - credit
        target = min(self._batch, self._limit - unacked)
        if room <= 0 or credit * 2 > target:
            return 0
        return max(0, min(room, target - credit))

    def opened(self, count: int, deadline: float) -> None:
        """Record a request for `count` messages that expires at `deadline` (monotonic)."""
        self._open.append(_Request(count, deadline))

    def delivered(self) -> None:
        """A message arrived: it used one unit of the oldest request."""
        if not self._open:
            return
        head = self._open[0]
        head.remaining -= 1
        if head.remaining <= 0:
            self._open.popleft()

    def ended(self) -> None:
        """The server closed the oldest request (expired, or refused) before filling it.

        Messages and statuses come in order on the one inbox, so everything that request
        delivered has been counted already: its remaining credit is gone.
        """
        if self._open:
            self._open.popleft()

    def expire(self, now: float) -> None:
        """Forget requests the server should have closed long ago (a lost status)."""
        while self._open and self._open[0].deadline + GRACE < now:
            self._open.popleft()

    def reset(self) -> None:
        """Forget every open request (after a reconnect the server may have lost them)."""
        self._open.clear()
