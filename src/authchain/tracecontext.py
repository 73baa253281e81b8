"""W3C Trace Context (``traceparent``), shared by the authority, the server and the SDK.

Every audit event carries the trace id of the request that caused it and a span id of its own, so an
investigator can join the log with the agents' and tools' traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from authchain._ids import new_span_id, new_trace_id

__all__ = ["TraceContext"]

_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """A W3C ``traceparent`` (Trace Context section 3.2): version 00, trace id, parent id, flags."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @classmethod
    def parse(cls, header: str | None) -> TraceContext | None:
        """The context of a ``traceparent`` header, or ``None`` if it is absent or malformed.

        Section 3.2.2: ``version "-" trace-id "-" parent-id "-" trace-flags`` in lowercase hex, the
        ids not all zero, version ``ff`` invalid. A later version may append fields (section
        3.2.4), which are ignored; version 00 has exactly four.
        """
        if not header or len(header) > 512:
            return None
        parts = header.strip().split("-")
        if len(parts) < 4 or len(parts[0]) != 2 or not _HEX.issuperset(parts[0]):
            return None
        version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
        if version == "ff" or (version == "00" and len(parts) != 4):
            return None
        if len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
            return None
        if not _HEX.issuperset(trace_id + span_id + flags):
            return None
        if trace_id == "0" * 32 or span_id == "0" * 16:
            return None
        return cls(trace_id, span_id, bool(int(flags, 16) & 1))

    @classmethod
    def new(cls) -> TraceContext:
        return cls(new_trace_id(), new_span_id())

    def child(self) -> TraceContext:
        """A new span id under the same trace (section 3.2.2.4: each hop gets its own parent-id)."""
        return TraceContext(self.trace_id, new_span_id(), self.sampled)

    @classmethod
    def from_traceparent(cls, header: str | None) -> TraceContext:
        """A new span under the caller's trace, or a new trace when the header is absent or
        malformed: what one recorded event of a request gets."""
        parsed = cls.parse(header)
        return parsed.child() if parsed is not None else cls.new()

    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"
