"""``findings``: every finding over the log, or over one task, from the log alone."""

from __future__ import annotations

from collections.abc import Iterator

from authchain.attribution.findings import Finding, make_finding
from authchain.attribution.rules import scan_records
from authchain.audit.records import Record, read
from authchain.audit.store import LogStore
from authchain.errors import AuthchainError, LogIntegrityError

__all__ = ["findings"]


def findings(store: LogStore, *, txn: str | None = None, verify: bool = True) -> list[Finding]:
    """Findings over the whole log (or one task's entries). With ``verify``, the log is first
    recomputed against its signed checkpoints: a log that does not verify yields ``LOG_INTEGRITY``
    naming the first bad index, and the per-entry findings are still reported (they may be forged)."""
    out: list[Finding] = []
    flagged: set[int] = set()
    if verify:
        try:
            store.verify()
        except LogIntegrityError as exc:
            evidence = [exc.index] if exc.index is not None else []
            flagged.update(evidence)
            out.append(
                make_finding("LOG_INTEGRITY", f"the log does not verify: {exc.message}", evidence)
            )
    unreadable: list[tuple[int, str]] = []
    for finding in scan_records(_readable(store, txn, unreadable)):
        # An entry that does not verify proves nothing: a token compared with an edited issuance
        # is not shown as forged (the edit is the finding).
        if finding.code != "FORGED_TOKEN" or not flagged.intersection(finding.evidence):
            out.append(finding)
    # An entry whose stored bytes are no longer an event, or whose event is not a record the
    # authority writes, is itself evidence of tampering; the others are still scanned rather than
    # lost with it.
    for index, message in unreadable:
        if index not in flagged:
            out.append(make_finding("LOG_INTEGRITY", message, [index]))
    return out


def _readable(
    store: LogStore, txn: str | None, unreadable: list[tuple[int, str]]
) -> Iterator[tuple[int, Record]]:
    if txn is not None:
        try:
            # Read whole: if one of the task's entries is not a valid record, this raises before
            # yielding anything.
            task = [(index, read(event, index)) for index, event in store.events_for_task(txn)]
        except LogIntegrityError:
            pass  # read the log entry by entry instead, skipping what does not read
        else:
            yield from task
            return
    for entry in store.raw_entries(0, store.size()):
        try:
            event = entry.event()
        except AuthchainError:
            unreadable.append((entry.index, f"entry {entry.index} is not a valid event"))
            continue
        try:
            record = read(event, entry.index)
        except LogIntegrityError as exc:
            unreadable.append((entry.index, exc.message))
            continue
        if txn is None or event.txn == txn:
            yield entry.index, record
