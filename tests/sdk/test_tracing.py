"""W3C Trace Context propagation and the OpenTelemetry spans of the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from authchain.sdk.tracing import (
    TraceContext,
    attribution_attributes,
    current_trace,
    execute_tool,
    invoke_agent,
    outgoing_traceparent,
    use_trace,
)

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has 4 fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ],
)
def test_malformed_traceparent_is_ignored(header: str | None) -> None:
    assert TraceContext.parse(header) is None


def test_traceparent_round_trips_and_a_later_version_may_add_fields() -> None:
    context = TraceContext.parse(PARENT)
    assert context == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    assert context.traceparent() == PARENT
    # Trace Context 3.2.4: a higher version is parsed as version 00, ignoring what follows.
    future = TraceContext.parse(PARENT.replace("00-", "01-", 1) + "-what-ever")
    assert future is not None and future.trace_id == context.trace_id


def test_child_keeps_the_trace_and_gets_its_own_span_id() -> None:
    parent = TraceContext.parse(PARENT)
    assert parent is not None
    child = parent.child()
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id


def test_outgoing_requests_continue_the_current_trace() -> None:
    parent = TraceContext.parse(PARENT)
    with use_trace(parent):
        outgoing = TraceContext.parse(outgoing_traceparent())
    assert outgoing is not None and outgoing.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_without_a_current_trace_an_outgoing_request_starts_one() -> None:
    assert TraceContext.parse(outgoing_traceparent()) is not None


def test_attribution_attributes_leave_out_what_is_unknown() -> None:
    attrs = attribution_attributes(txn="t1", initiator="alice", chain=("a", "b"))
    assert attrs == {
        "authchain.task": "t1",
        "authchain.initiator": "alice",
        "authchain.chain": ["a", "b"],
        "authchain.chain_depth": 2,
    }


@pytest.fixture
def exporter(span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    span_exporter.clear()
    yield span_exporter


def test_execute_tool_span_carries_gen_ai_and_authchain_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    exporter.clear()
    attrs = attribution_attributes(txn="t1", initiator="alice@example.org", decision_id="d1")
    with execute_tool(
        "crm-updater", call_id="jti-1", traceparent=PARENT, attributes=attrs, server=True
    ):
        inside = current_trace()
    [span] = exporter.get_finished_spans()
    assert span.name == "execute_tool crm-updater"
    assert span.kind is trace.SpanKind.SERVER
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.tool.name"] == "crm-updater"
    assert span.attributes["gen_ai.tool.call.id"] == "jti-1"
    assert span.attributes["authchain.task"] == "t1"
    assert span.attributes["authchain.initiator"] == "alice@example.org"
    assert span.attributes["authchain.decision_id"] == "d1"
    # The span joins the caller's trace, as the child of the caller's span.
    assert format(span.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent is not None and format(span.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert inside is not None and inside.span_id == format(span.context.span_id, "016x")


def test_invoke_agent_span_names_the_agent(exporter: InMemorySpanExporter) -> None:
    exporter.clear()
    with invoke_agent("planner", agent_id="spiffe://example.org/agent/planner"):
        pass
    [span] = exporter.get_finished_spans()
    assert span.name == "invoke_agent planner"
    assert span.attributes is not None
    assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert span.attributes["gen_ai.agent.id"] == "spiffe://example.org/agent/planner"
