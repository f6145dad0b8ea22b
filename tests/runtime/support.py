"""Helpers shared by the runtime tests that run against a real Postgres."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    check: Callable[[], Awaitable[Any]], within: float = 20, every: float = 0.02
) -> Any:
    """Poll `check` every `every` seconds until it returns something truthy; that value.

    Fails the test when `within` seconds pass first.
    """
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(every)
