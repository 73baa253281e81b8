"""W3C Trace Context propagation, and OpenTelemetry spans when OpenTelemetry is installed.

Every Authchain audit event carries a ``trace_id`` and ``span_id``, so a task's decisions and actions
line up with the application's own traces. The SDK keeps the current trace context in a context
variable: the middleware sets it from the incoming ``traceparent`` header, and the agent's HTTP auth
puts it on outgoing requests. When ``opentelemetry-api`` is importable and a tracer provider is
configured, the active OpenTelemetry span is the source of truth instead, and the SDK opens
``invoke_agent`` / ``execute_tool`` spans with the GenAI semantic-convention attributes
(``gen_ai.*``) and the task's attribution (``authchain.*``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = [
    "TraceContext",
    "current_trace",
    "outgoing_traceparent",
    "use_trace",
    "invoke_agent",
    "execute_tool",
    "attribution_attributes",
]

from authchain.tracecontext import TraceContext

_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "authchain_trace", default=None
)


def current_trace() -> TraceContext | None:
    """The active trace context: OpenTelemetry's current span if one is recording, else the SDK's."""
    otel = _otel_current()
    if otel is not None:
        return otel
    return _current.get()


@contextlib.contextmanager
def use_trace(context: TraceContext | None) -> Iterator[TraceContext]:
    """Run a block under ``context`` (a new trace if ``None``): SDK calls made inside it propagate it."""
    ctx = context or TraceContext.new()
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def outgoing_traceparent() -> str:
    """The ``traceparent`` for an outgoing request: a child of the current context, or a new trace."""
    current = current_trace()
    return (current.child() if current else TraceContext.new()).traceparent()


# --------------------------------------------------------------------------------------------------
# OpenTelemetry (optional).

try:  # pragma: no branch - which side runs depends on the environment
    from opentelemetry import trace as _otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _OTEL = True
except ImportError:  # pragma: no cover - exercised where OpenTelemetry is absent
    _OTEL = False


def _otel_current() -> TraceContext | None:
    if not _OTEL:
        return None
    span_context = _otel_trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return TraceContext(
        format(span_context.trace_id, "032x"),
        format(span_context.span_id, "016x"),
        bool(span_context.trace_flags & 1),
    )


def attribution_attributes(
    *,
    txn: str | None = None,
    initiator: str | None = None,
    actor: str | None = None,
    chain: Sequence[str] = (),
    decision_id: str | None = None,
    executor: str | None = None,
    token_log_index: int | None = None,
) -> dict[str, Any]:
    """The ``authchain.*`` span attributes of one verified call (absent values are left out)."""
    attrs: dict[str, Any] = {
        "authchain.task": txn,
        "authchain.initiator": initiator,
        "authchain.actor": actor,
        "authchain.decision_id": decision_id,
        "authchain.executor": executor,
        "authchain.token_log_index": token_log_index,
    }
    if chain:
        attrs["authchain.chain"] = list(chain)
        attrs["authchain.chain_depth"] = len(chain)
    return {k: v for k, v in attrs.items() if v is not None}


class _Span:
    """What the SDK's span helpers yield: set attributes and the outcome whether or not OpenTelemetry
    is installed, and read the trace context the block runs under."""

    __slots__ = ("_span", "context")

    def __init__(self, span: Any, context: TraceContext) -> None:
        self._span = span
        self.context = context

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._span is not None:
            self._span.set_attributes(dict(attributes))

    def set_error(self, error_type: str) -> None:
        """OpenTelemetry semantic conventions: ``error.type`` and an error status."""
        if self._span is not None:
            self._span.set_attribute("error.type", error_type)
            self._span.set_status(_otel_trace.Status(_otel_trace.StatusCode.ERROR, error_type))


@contextlib.contextmanager
def _span(
    name: str,
    attributes: Mapping[str, Any],
    *,
    parent: str | None,
    server: bool,
) -> Iterator[_Span]:
    incoming = TraceContext.parse(parent)
    if not _OTEL:
        with use_trace(incoming.child() if incoming else None) as ctx:
            yield _Span(None, ctx)
        return
    otel_parent = None
    if parent is not None and incoming is not None:
        otel_parent = TraceContextTextMapPropagator().extract({"traceparent": parent})
    tracer = _otel_trace.get_tracer("authchain.sdk")
    kind = _otel_trace.SpanKind.SERVER if server else _otel_trace.SpanKind.INTERNAL
    with tracer.start_as_current_span(
        name, context=otel_parent, kind=kind, attributes=dict(attributes), end_on_exit=True
    ) as span:
        active = _otel_current()
        if active is None:
            # No SDK tracer provider: spans are non-recording. Keep propagating the caller's trace.
            with use_trace(incoming.child() if incoming else None) as own:
                yield _Span(span, own)
        else:
            yield _Span(span, active)


@contextlib.contextmanager
def invoke_agent(
    agent_name: str,
    *,
    agent_id: str | None = None,
    traceparent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    server: bool = False,
) -> Iterator[_Span]:
    """An ``invoke_agent {agent_name}`` span (OpenTelemetry GenAI agent spans convention).

    Without OpenTelemetry this still sets the SDK's trace context, so events recorded inside the
    block join the caller's trace.
    """
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent_name,
    }
    if agent_id is not None:
        attrs["gen_ai.agent.id"] = agent_id
    attrs.update(attributes or {})
    with _span(f"invoke_agent {agent_name}", attrs, parent=traceparent, server=server) as span:
        yield span


@contextlib.contextmanager
def execute_tool(
    tool_name: str,
    *,
    call_id: str | None = None,
    traceparent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    server: bool = False,
) -> Iterator[_Span]:
    """An ``execute_tool {tool_name}`` span (OpenTelemetry GenAI semantic conventions)."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool_name,
        # A remote service the agent calls over HTTP is an "extension" tool in the convention's
        # terms (the agent makes the call; the tool runs elsewhere).
        "gen_ai.tool.type": "extension",
    }
    if call_id is not None:
        attrs["gen_ai.tool.call.id"] = call_id
    attrs.update(attributes or {})
    with _span(f"execute_tool {tool_name}", attrs, parent=traceparent, server=server) as span:
        yield span
