"""``findings``: every finding over the log, or over one task, from the log alone."""

from __future__ import annotations

from authchain.attribution.findings import Finding, make_finding
from authchain.attribution.rules import scan_events
from authchain.audit.store import LogStore
from authchain.errors import LogIntegrityError

__all__ = ["findings"]


def findings(store: LogStore, *, txn: str | None = None, verify: bool = True) -> list[Finding]:
    """Findings over the whole log (or one task's entries). With ``verify``, the log is first
    recomputed against its signed checkpoints: a log that does not verify yields ``LOG_INTEGRITY``
    naming the first bad index, and the per-entry findings are still reported (they may be forged)."""
    out: list[Finding] = []
    if verify:
        try:
            store.verify()
        except LogIntegrityError as exc:
            evidence = [exc.index] if exc.index is not None else []
            out.append(
                make_finding("LOG_INTEGRITY", f"the log does not verify: {exc.message}", evidence)
            )
    entries = store.events_for_task(txn) if txn is not None else store.entries(0, store.size())
    out.extend(scan_events(entries))
    return out
