"""OpenTelemetry tracing as an interceptor: a trace per execution, a span per attempt.

Against a real Postgres (the execution service creates and runs the executions), with
an in-memory span exporter in place of the OTLP one.
"""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from actors import ExecutionService, opentelemetry_interceptor
from flows import State

pytestmark = pytest.mark.integration

FLOW = """
id: traced
namespace: tests.tracing
tasks:
  - {id: hello, type: core.Log, message: hi}
  - id: flaky
    type: python.Function
    function: tests.runtime.flowfuncs:fail_times
    kwargs: {key: "KEY", times: 1}
    retry: {type: constant, interval: PT0S, maxAttempts: 2}
"""

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


async def test_an_execution_is_one_trace_continuing_the_events_traceparent(
    service: ExecutionService,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service.interceptors.add(opentelemetry_interceptor(tracer_provider=provider))
    flow = await service.deploy(FLOW.replace("KEY", uuid.uuid4().hex))
    headers = {"Traceparent": f"00-{TRACE_ID}-{PARENT_SPAN}-01", "other": "x"}
    created = await service.create(flow, {}, trigger={"headers": headers}, event_at=None)
    assert (await service.wait(created.execution.id, within=20)).state is State.SUCCESS

    spans = {
        span.name + str(span.attributes.get("kestrel.attempt", "")): span
        for span in exporter.get_finished_spans()
    }
    assert set(spans) == {
        "execution tests.tracing.traced",
        "task hello1",
        "task flaky1",
        "task flaky2",
    }
    execution = spans["execution tests.tracing.traced"]
    assert format(execution.context.trace_id, "032x") == TRACE_ID  # the event's trace
    assert execution.parent is not None and format(execution.parent.span_id, "016x") == PARENT_SPAN
    assert execution.attributes["kestrel.execution.id"] == created.execution.id
    assert execution.attributes["kestrel.state"] == "SUCCESS"
    for name in ("task hello1", "task flaky1", "task flaky2"):
        span = spans[name]
        assert span.context.trace_id == execution.context.trace_id
        assert span.parent is not None and span.parent.span_id == execution.context.span_id
    failed = spans["task flaky1"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["kestrel.error.retriable"] is True
    assert "planned failure 1 of 1" in (failed.status.description or "")
    assert spans["task flaky2"].attributes["kestrel.state"] == "SUCCESS"
    assert spans["task hello1"].attributes["kestrel.on_worker"] is False


async def test_an_execution_without_a_traceparent_starts_its_own_trace(
    service: ExecutionService,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service.interceptors.add(opentelemetry_interceptor(tracer_provider=provider))
    flow = await service.deploy(FLOW.replace("KEY", uuid.uuid4().hex).replace("traced", "plain"))
    created = await service.create(flow, {}, trigger={"properties": {"k": "v"}})
    await service.wait(created.execution.id, within=20)
    (execution,) = [s for s in exporter.get_finished_spans() if s.name.startswith("execution")]
    assert execution.parent is None
    children = [s for s in exporter.get_finished_spans() if s.name.startswith("task")]
    assert len(children) == 3
    assert {s.context.trace_id for s in children} == {execution.context.trace_id}


def test_the_traceparent_is_read_from_headers_or_mqtt_user_properties() -> None:
    from opentelemetry import trace

    from actors._otel import trace_parent

    value = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    for trigger in (
        {"headers": {"traceparent": value}},  # Kafka, NATS, webhooks
        {
            "properties": {
                "traceparent": ["00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01", value]
            }
        },  # MQTT 5
    ):
        context = trace_parent(trigger)
        assert context is not None
        parent = trace.get_current_span(context).get_span_context()
        assert format(parent.trace_id, "032x") == TRACE_ID
    assert trace_parent({"headers": {"x": "y"}}) is None
    assert trace_parent(None) is None
