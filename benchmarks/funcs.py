"""The function every benchmarked flow runs: it does nothing, so we time the path, not it."""

from __future__ import annotations


async def noop() -> dict[str, object]:
    """Return no outputs (a coroutine: it runs on the worker's loop, no thread hop)."""
    return {}
