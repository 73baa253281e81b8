"""The recorder: the only code that appends to the audit log.

Every decision and action the authority takes becomes one typed record
(:mod:`authchain.audit.records`) appended here, refusals included: denials are evidence too. An
append returns only once the entry is durable; if it fails, the caller issues nothing (fail closed).

Single use. A one-time value (a DPoP proof's ``jti``, a presented proof, a report id, an ID token)
is spent by the record that relies on it: its :class:`~authchain.audit.store.Claim` is written in
that record's transaction (:meth:`LogStore.append`), so it survives a restart and holds across
processes sharing the store. A step that verifies such a value before the record exists (the one
authentication step of a request, the ID token of a task start) checks the ledger with
:meth:`Recorder.expect` and leaves the claim with the recorder for the request in progress; the
request's next record carries it. Requests run each in their own context (the server runs each in a
worker thread with a copy of the context), so a claim never crosses to another request.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from authchain._ids import uuid7
from authchain.audit.records import Record
from authchain.audit.store import Claim, LogStore
from authchain.errors import AuthchainError, Input, ReplayError
from authchain.tracecontext import TraceContext

__all__ = ["Recorder"]

#: A refusal's ``reason`` is the error's message, cut to this many characters.
MAX_REASON = 500

#: The scopes of the single-use ledger, and the request input a replay of each is about.
DPOP_PROOF: Final = "dpop"
PRESENTATION: Final = "presentation"
REPORT: Final = "report"
ID_TOKEN: Final = "id_token"
_INPUTS: Final[dict[str, Input]] = {
    DPOP_PROOF: Input.DPOP_PROOF,
    PRESENTATION: Input.PRESENTED_PROOF,
    REPORT: Input.REQUEST,
    ID_TOKEN: Input.SUBJECT_TOKEN,
}
#: How often (seconds of the authority's clock) expired claims are pruned from the ledger.
_PRUNE_EVERY: Final = 60
#: Claims are kept this long past their expiry, so clocks a step apart agree on what is spent.
_PRUNE_SLACK: Final = 5

_E = TypeVar("_E", bound=AuthchainError)

# The claims of the request in progress: (claim, the record type that spends it, or None for any).
_expected: contextvars.ContextVar[tuple[tuple[Claim, type[Record] | None], ...]] = (
    contextvars.ContextVar("authchain_expected_claims", default=())
)


def rfc3339(ts: float) -> str:
    """RFC 3339 UTC with microseconds: the one spelling of ``time`` an event accepts."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Recorder:
    """Appends records to ``store`` for one trust domain, stamping id, time and trace context."""

    def __init__(self, store: LogStore, *, trust_domain: str, clock: Callable[[], float]) -> None:
        self.store = store
        self.trust_domain = trust_domain
        self._clock = clock
        self._pruned_at = float("-inf")
        self._prune_lock = threading.Lock()

    def record(
        self, record: Record, trace: TraceContext | None = None, *, once: Sequence[Claim] = ()
    ) -> int:
        """Append ``record`` durably and return its log index, spending ``once`` and the claims the
        request in progress expects this kind of record to spend.

        Raises :class:`StorageError`; :class:`ReplayError` (naming the claim's input, with the first
        claim's index) when one of the values was spent before, and then nothing is appended.
        """
        trace = trace or TraceContext.new()
        expected = _expected.get()
        spent = [claim for claim, kind in expected if kind is None or isinstance(record, kind)]
        event = record.to_event(
            id=uuid7(),
            time=rfc3339(self._clock()),
            trust_domain=self.trust_domain,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
        )
        try:
            index = self.store.append(event, once=[*once, *spent])
        except ReplayError as exc:
            raise exc.about(_INPUTS.get(exc.scope or "", Input.REQUEST)) from None
        if spent:
            # Spent: the request's later records (if any) do not carry them again. A failed append
            # leaves them for the record the request writes instead (a replay, a refusal).
            _expected.set(tuple(item for item in expected if item[0] not in spent))
        self._prune()
        return index

    def refuse(self, exc: _E, record: Record, trace: TraceContext | None = None) -> _E:
        """Record a refusal and return ``exc`` carrying the index of the entry that records it."""
        exc.log_index = self.record(record, trace)
        return exc

    # ----------------------------------------------------------------------------------------------
    # Single use.

    def check_unspent(self, scope: str, key: str) -> None:
        """Raise :class:`ReplayError` (naming the first claim's entry) if ``key`` was spent in
        ``scope``. A read of the ledger; the spending itself happens in the record's transaction."""
        first = self.store.claimed(scope, key)
        if first is not None:
            index, value = first
            raise ReplayError(
                f"this {scope.replace('_', ' ')} was already used (log entry {index})",
                scope=scope,
                first_index=index,
                first_value=value,
            ).about(_INPUTS.get(scope, Input.REQUEST))

    def expect(self, claim: Claim, *, spent_by: type[Record] | None = None) -> None:
        """Check that ``claim`` is unspent, and leave it for the request in progress: its next
        record (of type ``spent_by``, if given) spends it in the same transaction.

        Raises :class:`ReplayError` when it was spent before (nothing is left then).
        """
        self.check_unspent(claim.scope, claim.key)
        _expected.set((*_expected.get(), (claim, spent_by)))

    def forget_expected(self) -> None:
        """Drop the claims the request in progress left: a new request starts here."""
        _expected.set(())

    def _prune(self) -> None:
        now = self._clock()
        if now - self._pruned_at < _PRUNE_EVERY or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._pruned_at = now
            self.store.prune_claims(int(now) - _PRUNE_SLACK)
        except AuthchainError:
            # Housekeeping: a failed prune leaves expired rows, which the next prune removes.
            pass
        finally:
            self._prune_lock.release()


def refusal_fields(exc: AuthchainError) -> dict[str, Any]:
    """The members every refusal record takes from the error that caused it."""
    fields = {"error": exc.code, "reason": exc.message[:MAX_REASON]}
    if exc.input is not None:
        fields["input"] = str(exc.input)
    return fields
