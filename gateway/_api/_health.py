"""``/health`` (no token needed) and Prometheus ``/metrics`` in the text exposition format."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse

from actors import TriggerInfo
from flows import State

from .._runtime import Runtime
from ._deps import RuntimeDep
from ._models import HealthBody

router = APIRouter(tags=["health"])

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Histogram bucket bounds (seconds), 1 ms to 10 s."""

EXPOSITION_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/health", responses={503: {"model": HealthBody}})
async def health(runtime: RuntimeDep) -> JSONResponse:
    """``{"status": "UP"}`` while the runtime runs (503 ``DOWN`` otherwise); no token needed."""
    if runtime.running:
        return JSONResponse({"status": "UP"})
    return JSONResponse({"status": "DOWN"}, status_code=503)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Exposition:
    """Prometheus text exposition (format 0.0.4), written family by family."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        """Start a metric family."""
        self._lines.append(f"# HELP {name} {_escape(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """One sample."""
        self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(
        self,
        name: str,
        labels: Mapping[str, str],
        observations: Sequence[float],
        buckets: Iterable[float] = LATENCY_BUCKETS,
    ) -> None:
        """Cumulative buckets, sum and count of `observations`."""
        ordered = sorted(observations)
        index = 0
        for bound in [*buckets, math.inf]:
            while index < len(ordered) and ordered[index] <= bound:
                index += 1
            self.sample(f"{name}_bucket", {**labels, "le": _number(bound)}, index)
        self.sample(f"{name}_sum", labels, sum(ordered))
        self.sample(f"{name}_count", labels, len(ordered))

    def text(self) -> str:
        """The exposition, newline-terminated."""
        return "\n".join(self._lines) + "\n"


def trigger_name(info: TriggerInfo) -> str:
    """``namespace.flow/trigger``, as the runtime names triggers in its latencies."""
    return f"{info.namespace}.{info.flow_id}/{info.trigger_id}"


_TRIGGER_COUNTERS = (
    ("kestrel_trigger_events_total", "events", "Events received by the trigger."),
    (
        "kestrel_trigger_executions_created_total",
        "created",
        "Executions created from the trigger's events.",
    ),
    ("kestrel_trigger_duplicates_total", "duplicates", "Redelivered events (no new execution)."),
    ("kestrel_trigger_dead_letters_total", "dead_letters", "Events sent to the dead letters."),
    ("kestrel_trigger_reconnects_total", "reconnects", "Reconnections to the trigger's source."),
)


async def render_metrics(runtime: Runtime) -> str:
    """Every metric, from the runtime and the store."""
    out = Exposition()
    latencies = await runtime.trigger_view.latencies()
    name = "kestrel_event_to_execution_created_seconds"
    out.family(
        name,
        "histogram",
        "Event received to execution durably created, per trigger (recent window).",
    )
    for trigger in sorted(latencies):
        out.histogram(name, {"trigger": trigger}, latencies[trigger])
    first = await runtime.trigger_view.latencies("first_task")
    name = "kestrel_event_to_first_task_started_seconds"
    out.family(
        name,
        "histogram",
        "Event received to the first runnable task's body started, per trigger (recent window).",
    )
    for trigger in sorted(first):
        out.histogram(name, {"trigger": trigger}, first[trigger])

    infos = sorted(await runtime.trigger_view.triggers(), key=trigger_name)
    for metric, attribute, help_text in _TRIGGER_COUNTERS:
        out.family(metric, "counter", help_text)
        for info in infos:
            out.sample(metric, {"trigger": trigger_name(info)}, getattr(info, attribute))
    out.family("kestrel_trigger_status", "gauge", "1 for each trigger's current status.")
    for info in infos:
        out.sample(
            "kestrel_trigger_status", {"trigger": trigger_name(info), "status": str(info.status)}, 1
        )

    out.family(
        "kestrel_executions_total", "gauge", "Executions in the store, by their current state."
    )
    for state in State:
        if state is State.SKIPPED:
            continue
        page = await runtime.store.search_executions(states=[state], limit=1)
        out.sample("kestrel_executions_total", {"state": state.value}, page.total)
    return out.text()


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {EXPOSITION_TYPE: {}}}},
)
async def metrics(runtime: RuntimeDep) -> PlainTextResponse:
    """Prometheus metrics: latency histograms, trigger counters, executions by state."""
    return PlainTextResponse(await render_metrics(runtime), media_type=EXPOSITION_TYPE)
