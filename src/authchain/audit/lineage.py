"""The walk up a token's parents, from the log alone: one implementation for every reader.

A task token's ``log`` claim names the entry that recorded its issuance. That entry (a
:class:`~authchain.audit.records.HopGranted`) names its parent token by hash, ``jti`` and issuance
entry (``parent_log``), and so on up to the :class:`~authchain.audit.records.TaskStarted` that names
the initiator. The authority walks it to refuse a token whose ancestor was revoked; ``trace`` walks
it to rebuild the authority path. Both walk it here, with the same checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from authchain.audit.records import HopGranted, Issuance, Record, TaskStarted

__all__ = ["ChainGap", "lineage"]

#: No task token chain is deeper than this (MAX_CHAIN_DEPTH is 16); a longer walk is a loop.
MAX_STEPS = 64


class ChainGap(Exception):  # noqa: N818 - a finding's name (CHAIN_GAP), not a failure of the walker
    """The walk cannot go on: ``message`` says why, ``evidence`` the log indexes that show it."""

    def __init__(self, message: str, evidence: list[int]) -> None:
        super().__init__(message)
        self.message = message
        self.evidence = evidence


def lineage(
    entry: Callable[[int], Record | None],
    start: int,
    *,
    jti: str | None = None,
    txn: str | None = None,
    token: str | None = None,
) -> Iterator[Issuance]:
    """The issuance records of a token and its ancestors, the token's own first.

    ``entry(index)`` returns the record at ``index`` (or None when there is none, or it cannot be
    read). ``jti``, ``txn`` and ``token`` (its hash, for messages) describe the token whose issuance
    ``start`` is said to be; each step checks the record it reaches issued exactly the token the step
    before named. Raises :class:`ChainGap` where the walk breaks, after yielding the steps that held.
    """
    cursor: int | None = start
    expected_jti = jti
    expected_hash = token
    seen: set[int] = set()
    while cursor is not None:
        if cursor in seen or len(seen) >= MAX_STEPS:
            raise ChainGap("the issuance entries form a loop", [cursor])
        seen.add(cursor)
        record = entry(cursor)
        if not isinstance(record, Issuance):
            raise ChainGap(
                f"the issuance of token {expected_hash or '(this token)'} is not in the log "
                f"at index {cursor}",
                [cursor] if record is not None else [],
            )
        if expected_jti is not None and record.jti != expected_jti:
            raise ChainGap(
                f"entry {cursor} did not issue the token with jti {expected_jti}", [cursor]
            )
        if txn is not None and record.txn != txn:
            raise ChainGap(f"entry {cursor} belongs to task {record.txn}, not {txn}", [cursor])
        yield record
        if isinstance(record, TaskStarted):
            return
        assert isinstance(record, HopGranted)
        expected_hash, expected_jti, cursor = (
            record.parent_token,
            record.parent_jti,
            record.parent_log,
        )
