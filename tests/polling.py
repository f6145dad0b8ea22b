"""The one way tests wait: poll a condition until it holds or a deadline passes.

Tests never sleep to synchronise. They call :func:`eventually` (async) or
:func:`eventually_sync` with a check that returns a truthy value once the awaited state is
reached; the value is returned so the test can assert on it.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_WITHIN = 30.0
INTERVAL = 0.02


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    within: float = DEFAULT_WITHIN,
    what: str = "condition",
    interval: float = INTERVAL,
) -> T:
    """Await ``check()`` until it returns a truthy value; fail after ``within`` seconds.

    ``check`` may be sync or async. Exceptions it raises propagate (a broken check is a bug,
    not a "not yet").
    """
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        last = result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {within:g}s (last value: {last!r})")
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T],
    within: float = DEFAULT_WITHIN,
    what: str = "condition",
    interval: float = INTERVAL,
) -> T:
    """Blocking twin of :func:`eventually` for code outside an event loop."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {within:g}s (last value: {result!r})")
        time.sleep(interval)
