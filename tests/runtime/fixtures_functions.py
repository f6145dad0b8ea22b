"""Functions the ``python.Function`` tests call (importable by in-process workers)."""

from __future__ import annotations

import asyncio
from typing import Any

from flows import RunContext


def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


def echo(value: Any) -> Any:
    return value


def nothing() -> None:
    return None


async def double(x: int) -> dict[str, int]:
    await asyncio.sleep(0)
    return {"double": 2 * x}


async def wait_forever() -> None:
    await asyncio.Event().wait()


def greet(ctx: RunContext, name: str) -> dict[str, Any]:
    ctx.log("INFO", f"hello {name}")
    return {"task": ctx.task_id, "namespace": ctx.namespace, "attempt": ctx.attempt}


async def greet_async(kestrel_ctx: RunContext) -> str:
    kestrel_ctx.log("WARN", "careful")
    return kestrel_ctx.flow_id


def fail(message: str) -> None:
    raise ValueError(message)


def unstorable() -> dict[str, Any]:
    return {"thing": object()}


NOT_CALLABLE = 42
