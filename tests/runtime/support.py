"""Helpers shared by the runtime tests that run against a real Postgres."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tests.polling import eventually


async def until(
    check: Callable[[], Awaitable[Any]], within: float = 20, every: float = 0.02
) -> Any:
    """Poll `check` every `every` seconds until it returns something truthy; that value.

    Fails the test when `within` seconds pass first.
    """
    return await eventually(check, within, interval=every)
