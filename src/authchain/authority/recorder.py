"""The recorder: the only code that appends to the audit log.

Every decision and action the authority takes becomes one typed record
(:mod:`authchain.audit.records`) appended here, refusals included: denials are evidence too. An
append returns only once the entry is durable; if it fails, the caller issues nothing (fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from authchain._ids import uuid7
from authchain.audit.records import Record
from authchain.audit.store import LogStore
from authchain.errors import AuthchainError
from authchain.tracecontext import TraceContext

__all__ = ["Recorder"]

#: A refusal's ``reason`` is the error's message, cut to this many characters.
MAX_REASON = 500

_E = TypeVar("_E", bound=AuthchainError)


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC with microseconds: the one spelling of ``time`` an event accepts."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Recorder:
    """Appends records to ``store`` for one trust domain, stamping id, time and trace context."""

    def __init__(self, store: LogStore, *, trust_domain: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.trust_domain = trust_domain
        self._clock = clock

    def record(self, record: Record, trace: TraceContext | None = None) -> int:
        """Append ``record`` durably and return its log index. Raises :class:`StorageError`."""
        trace = trace or TraceContext.new()
        event = record.to_event(
            id=uuid7(),
            time=rfc3339(self._clock()),
            trust_domain=self.trust_domain,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
        )
        return self.store.append(event)

    def refuse(self, exc: _E, record: Record, trace: TraceContext | None = None) -> _E:
        """Record a refusal and return ``exc`` carrying the index of the entry that records it."""
        exc.log_index = self.record(record, trace)
        return exc


def refusal_fields(exc: AuthchainError) -> dict[str, Any]:
    """The members every refusal record takes from the error that caused it."""
    fields = {"error": exc.code, "reason": exc.message[:MAX_REASON]}
    if exc.input is not None:
        fields["input"] = str(exc.input)
    return fields
