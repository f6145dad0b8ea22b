"""Kestra's flow SLAs: MAX_DURATION bounds the run, EXECUTION_ASSERTION is checked at its end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flows import ExpressionError, State

from ._inline_tasks import text
from ._pauses import remaining
from ._run_port import RunPort
from ._scope import Scope


async def run_within_sla(port: RunPort, body: Callable[[], Awaitable[State]]) -> State:
    """`body`, bounded by the flow's MAX_DURATION SLA (FAIL or CANCEL) when it has one."""
    sla = next((s for s in port.flow.sla if s.type == "MAX_DURATION" and s.duration), None)
    if sla is None or sla.behavior == "NONE" or sla.duration is None:
        return await body()
    left = remaining(port.state.execution.created_at, sla.duration) or 0.0
    try:
        return await asyncio.wait_for(body(), left)
    except TimeoutError:
        port.journal.log(None, "ERROR", f"SLA '{sla.id}' missed: ran longer than {sla.duration}")
        return State.FAILED if sla.behavior == "FAIL" else State.CANCELLED


async def check_assertions(port: RunPort, final: State) -> State:
    """Kestra's EXECUTION_ASSERTION SLAs, checked when the execution ends.

    A false assertion adds its labels and, by its behavior, fails (FAIL) or cancels
    (CANCEL) the execution; NONE only labels it.
    """
    context = port.templates.context(None, Scope())
    for sla in port.flow.sla:
        if sla.type != "EXECUTION_ASSERTION" or sla.assert_ is None:
            continue
        try:
            held = await port.templates.condition(sla.assert_, context, prop=f"sla.{sla.id}")
        except ExpressionError as exc:
            port.journal.log(None, "ERROR", str(exc))
            held = False
        if held:
            continue
        labels = sla.labels if isinstance(sla.labels, dict) else {}
        if labels:
            port.journal.add_labels({str(k): text(v) for k, v in labels.items()})
        port.journal.log(None, "WARN", f"SLA '{sla.id}' violated: {sla.assert_}")
        if sla.behavior == "FAIL":
            return State.FAILED
        if sla.behavior == "CANCEL":
            return State.CANCELLED
    return final
