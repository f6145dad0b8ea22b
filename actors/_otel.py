"""OpenTelemetry tracing as an interceptor (the ``otel`` extra): a trace per execution.

A new execution opens a span (``execution <namespace.flow>``); every attempt of its task
runs is a child span (``task <taskId>``) with the task run id, attempt number, worker and
outcome. When the event carried a W3C ``traceparent`` (a Kafka, NATS or webhook header,
an MQTT 5 user property), the execution's span continues that trace. Spans are exported
by the standard OTLP/HTTP exporter, or any `TracerProvider` given.

Import this module only when tracing is wanted: it needs ``opentelemetry-sdk``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from flows import State

from ._interceptors import (
    AttemptFinished,
    AttemptStarted,
    ExecutionCreated,
    ExecutionEnded,
    Interceptor,
    Next,
)

_PROPAGATOR = TraceContextTextMapPropagator()
_CARRIERS = ("headers", "properties")  # trigger variables that may hold a traceparent
_BAD_ENDS = frozenset({State.FAILED, State.KILLED, State.CANCELLED})


def otlp_tracer_provider(endpoint: str, service_name: str = "kestrel") -> TracerProvider:
    """A provider exporting spans in batches to an OTLP/HTTP collector at `endpoint`.

    Args:
        endpoint: The collector's traces URL, e.g. ``http://127.0.0.1:4318/v1/traces``.
        service_name: The ``service.name`` resource attribute.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def trace_parent(trigger: Mapping[str, Any] | None) -> Context | None:
    """The trace context a W3C ``traceparent`` in the trigger variables names, if any."""
    if not trigger:
        return None
    carrier: dict[str, str] = {}
    for name in _CARRIERS:
        values = trigger.get(name)
        if isinstance(values, Mapping):
            for key, value in values.items():
                chosen = value[-1] if isinstance(value, list) and value else value
                if isinstance(chosen, str):
                    carrier[str(key).lower()] = chosen
    if "traceparent" not in carrier:
        return None
    return _PROPAGATOR.extract(carrier)


class OpenTelemetryInterceptor(Interceptor):
    """Spans for executions created here and their attempts.

    Args:
        tracer_provider: Where spans go; the global provider when None.
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("kestrel", tracer_provider=tracer_provider)
        self._executions: dict[str, Span] = {}
        self._attempts: dict[str, dict[tuple[str, int], Span]] = {}  # by execution

    def execution_created(self, input: ExecutionCreated, next: Next[ExecutionCreated]) -> None:
        """Open the execution's span (continuing the event's trace when it names one)."""
        if input.created:
            execution = input.execution
            span = self._tracer.start_span(
                f"execution {input.flow.uid}",
                context=trace_parent(execution.trigger),
                kind=SpanKind.CONSUMER if execution.trigger else SpanKind.INTERNAL,
                attributes={
                    "kestrel.execution.id": execution.id,
                    "kestrel.flow.namespace": input.flow.namespace,
                    "kestrel.flow.id": input.flow.id,
                    "kestrel.flow.revision": execution.flow_revision,
                },
                start_time=None if input.event_at is None else int(input.event_at * 1e9),
            )
            self._executions[execution.id] = span
        next(input)

    def attempt_started(self, input: AttemptStarted, next: Next[AttemptStarted]) -> None:
        """Open the attempt's span under its execution's."""
        parent = self._executions.get(input.execution_id)
        span = self._tracer.start_span(
            f"task {input.task_id}",
            context=None if parent is None else trace.set_span_in_context(parent),
            attributes={
                "kestrel.execution.id": input.execution_id,
                "kestrel.task.id": input.task_id,
                "kestrel.task_run.id": input.task_run_id,
                "kestrel.attempt": input.attempt,
            },
        )
        running = self._attempts.setdefault(input.execution_id, {})
        running[(input.task_run_id, input.attempt)] = span
        next(input)

    def attempt_finished(self, input: AttemptFinished, next: Next[AttemptFinished]) -> None:
        """Close the attempt's span with its outcome."""
        running = self._attempts.get(input.execution_id, {})
        span = running.pop((input.task_run_id, input.attempt), None)
        if span is not None:
            outcome = input.outcome
            span.set_attribute("kestrel.state", outcome.state.value)
            span.set_attribute("kestrel.on_worker", input.on_worker)
            if outcome.worker is not None:
                span.set_attribute("kestrel.worker", outcome.worker)
            if outcome.error is not None:
                span.set_status(Status(StatusCode.ERROR, outcome.error.message))
                span.set_attribute("kestrel.error.type", outcome.error.type)
                span.set_attribute("kestrel.error.retriable", outcome.error.retriable)
            span.end()
        next(input)

    def execution_ended(self, input: ExecutionEnded, next: Next[ExecutionEnded]) -> None:
        """Close the execution's span (and any attempt span a kill left open)."""
        for left_open in self._attempts.pop(input.execution_id, {}).values():
            left_open.end()
        span = self._executions.pop(input.execution_id, None)
        if span is not None:
            span.set_attribute("kestrel.state", input.state.value)
            if input.state in _BAD_ENDS:
                span.set_status(Status(StatusCode.ERROR, f"execution {input.state.value}"))
            span.end()
        next(input)
