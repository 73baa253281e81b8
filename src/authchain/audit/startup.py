"""The check an authority runs on its log before it appends anything: fast, and never skipped.

Appending extends the stored tree from its right edge, so an authority that appends on top of a
broken log signs checkpoints over the breakage and buries it. :func:`verify_at_start` refuses that
with :class:`~authchain.errors.LogIntegrityError` naming the first bad index. It is incremental: a
start that verified the log remembers the latest checkpoint's signed note beside the log (the
store's ``meta``, :data:`VERIFIED_CHECKPOINT`), and the next start verifies, in order:

1. the latest stored checkpoint's signature under the log's key (C2SP signed-note), and that it
   covers every stored entry (no unsigned tail);
2. the remembered checkpoint's signature under the same key (a replaced key fails here), and that
   the log is not shorter than it (nothing verified was cut off);
3. the right edge of the stored tree at the remembered size, whose root must be the remembered root
   (RFC 9162 section 2.1: the edge's subtree hashes fold to the root, so they are the ones verified);
4. every entry appended since, exactly as a full verification checks it
   (:func:`~authchain.audit.verify.verify_log` from that edge: canonical event, leaf hash, every
   tree node it completes, every checkpoint stored in between), up to the latest checkpoint's root.

A log below :data:`FULL_BELOW` entries is verified whole at every start (well under a second) and
so is one with nothing remembered; a whole verification also checks that the log extends the
remembered checkpoint, if any. When the incremental check fails, the whole log is verified to name
the first bad index. What the incremental check leaves to ``authchain audit verify`` (and to the
inclusion proofs of ``trace``): an entry edited in place, before the remembered size, with its hash
and tree left alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from authchain.audit.checkpoint import SignedCheckpoint, open_checkpoint
from authchain.audit.merkle import CompactRange
from authchain.audit.store import LogStore
from authchain.audit.verify import VerifiedLog, verify_log
from authchain.errors import AuthchainError, LogIntegrityError, NotFoundError, VerificationError

__all__ = ["FULL_BELOW", "VERIFIED_CHECKPOINT", "StartCheck", "verify_at_start"]

#: The store ``meta`` key of the checkpoint (its signed note) the last verified start saw.
VERIFIED_CHECKPOINT: Final = "audit.verified_checkpoint"
#: Logs with fewer entries are verified whole at every start.
FULL_BELOW: Final = 65_536
# Logs at least this large are verified whole in worker processes (as ``authchain audit verify``).
_PARALLEL_FROM: Final = 100_000
# Tree nodes read per query while the tail is checked.
_NODE_BATCH: Final = 512


@dataclass(frozen=True, slots=True)
class StartCheck:
    """What a start-up check established: the log's ``size`` and ``root_hash`` (of its latest
    checkpoint), and ``since``, the first entry it recomputed (0 for a whole verification)."""

    size: int
    root_hash: bytes
    since: int

    @property
    def incremental(self) -> bool:
        return self.since > 0


def verify_at_start(store: LogStore, *, full_below: int = FULL_BELOW) -> StartCheck:
    """Verify ``store`` before anything is appended to it (see the module docstring), remember the
    checkpoint it verified, and return what was established.

    Raises:
        LogIntegrityError: the log does not verify; the message and ``index`` name the first bad
            entry when the failure narrows to one.
    """
    try:
        check = _check(store, full_below)
    except LogIntegrityError as exc:
        where = f"at entry {exc.index}" if exc.index is not None else "as a whole"
        raise LogIntegrityError(
            f"the audit log does not verify {where}: {exc.message}; refusing to append on top of "
            f"it (`authchain audit verify` shows the same)",
            exc.index,
        ) from exc
    return check


def _check(store: LogStore, full_below: int) -> StartCheck:
    verifier = store.verifier()
    stored = store.size()
    # (1) The latest checkpoint, which every later step is measured against.
    latest_note = store.latest_checkpoint()
    latest = open_checkpoint(latest_note.text, verifier, origin=store.origin)
    if latest.size < stored:
        raise LogIntegrityError(
            f"entries {latest.size}..{stored - 1} are not covered by any signed checkpoint",
            latest.size,
        )
    remembered_note = store.get_meta(VERIFIED_CHECKPOINT)
    # (2) What the last verified start saw.
    remembered = None
    if remembered_note is not None:
        try:
            remembered = open_checkpoint(remembered_note, verifier, origin=store.origin)
        except VerificationError as exc:
            raise LogIntegrityError(
                "the checkpoint remembered from the last verified start does not verify under "
                f"the log's key (was the key replaced?): {exc.message}"
            ) from exc
        if remembered.size > latest.size:
            raise LogIntegrityError(
                f"the log holds {latest.size} entries but a start verified {remembered.size}: "
                f"entries {latest.size}..{remembered.size - 1} were removed",
                latest.size,
            )
    if remembered is None or latest.size < full_below:
        result = _whole(store, remembered_note)
        check = StartCheck(result.size, result.root_hash, 0)
    else:
        try:
            _since(store, remembered.size, remembered.root_hash, latest_note)
            check = StartCheck(latest.size, latest.root_hash, remembered.size)
        except LogIntegrityError:
            # Name the first bad index: the whole log, against what the last start verified.
            result = _whole(store, remembered_note)
            check = StartCheck(result.size, result.root_hash, 0)
    if remembered_note != latest_note.text:
        store.put_meta(VERIFIED_CHECKPOINT, latest_note.text)
    return check


def _whole(store: LogStore, remembered: str | None) -> VerifiedLog:
    workers = min(os.cpu_count() or 1, 4) if store.size() >= _PARALLEL_FROM else 0
    return store.verify(trusted=[remembered] if remembered else (), workers=workers)


def _since(store: LogStore, size: int, root: bytes, latest: SignedCheckpoint) -> None:
    """Steps (3) and (4): the entries after ``size``, from the stored edge that folds to ``root``."""
    try:
        edge = CompactRange.from_reader(store, size)
    except NotFoundError as exc:
        raise LogIntegrityError(f"the stored tree at size {size} is incomplete") from exc
    if edge.root() != root:
        raise LogIntegrityError(
            f"the stored tree at size {size} is not the one the last start verified"
        )
    end = latest.size
    if end == size:
        # Nothing appended since: the latest checkpoint must be the one verified.
        if latest.root_hash != root:
            raise LogIntegrityError(
                f"the latest checkpoint (size {end}) signs another root than the one verified at "
                "the last start: the log was rewritten"
            )
        return
    checkpoints = (store.checkpoint_at(n) for n in range(size + 1, end + 1))
    verify_log(
        store.raw_entries(size, end),
        (c for c in checkpoints if c is not None),
        store.verifier(),
        nodes=_tail_nodes(store, size, end),
        origin=store.origin,
        start=edge,
    )


def _tail_nodes(
    store: LogStore, first: int, end: int
) -> Callable[[int], Iterator[tuple[int, bytes]]]:
    """For each level, the stored nodes that leaves ``first..end-1`` complete, in index order.

    Leaf ``i`` completes node ``j`` of level ``L`` when ``i + 1 == (j + 1) * 2**L``. A node missing
    from the store ends its level early, which the verification reports as a missing node.
    """

    def level(height: int) -> Iterator[tuple[int, bytes]]:
        # j + 1 runs over the multiples of 2**L in first + 1 .. end, divided by 2**L.
        low = ((first + (1 << height)) >> height) - 1
        high = (end >> height) - 1
        for start in range(low, high + 1, _NODE_BATCH):
            keys = [(height, j) for j in range(start, min(start + _NODE_BATCH, high + 1))]
            try:
                hashes = store.get_nodes(keys)
            except AuthchainError:
                for key in keys:
                    try:
                        (value,) = store.get_nodes([key])
                    except AuthchainError:
                        return
                    yield key[1], value
                return
            yield from zip((j for _, j in keys), hashes, strict=True)

    return level
