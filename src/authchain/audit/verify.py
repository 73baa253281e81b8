"""Verification of a whole log: what `authchain audit verify` and the attribution engine run.

Pure: it reads what it is given (entries, checkpoints, stored tree nodes) and does no I/O of its
own, so it runs the same against any store or against an export.

For every entry, in index order:

1. the index is the next one (a deleted or reordered row leaves a gap);
2. the stored bytes are exactly the RFC 8785 canonical JSON of a valid event
   (:func:`~authchain.audit.events.check_leaf`), so a change that keeps valid JSON is refused even
   before hashing;
3. the leaf hash recomputed from the bytes equals the stored leaf hash (RFC 9162 section 2.1.1);
4. every tree node the entry completes, recomputed, equals the stored node (proofs are served from
   stored nodes, so they must agree with the entries);
5. at every size where a checkpoint was stored, the recomputed root equals the checkpoint's root,
   whose signature has been checked under the log's key (C2SP signed-note and tlog-checkpoint).
   All roots come from one recomputed tree, so consecutive checkpoints are consistent with each
   other by construction.

Verification may also start part-way (``start``): from the right edge of a tree already verified
(an :class:`~authchain.audit.merkle.CompactRange` whose root a trusted checkpoint vouches for), the
same steps run over the entries after it, so a start-up check recomputes only what was appended
since the last one (:mod:`authchain.audit.startup`).

Then: the latest checkpoint must cover the whole log (no unsigned tail, no checkpoint beyond the
last entry, which would mean the tail was cut off), and every *trusted* checkpoint (one saved
outside the store, e.g. by a witness) must match the recomputed tree at its size. Only that last
check catches a history rewritten and re-signed by whoever holds the log's key.

The first failure raises :class:`~authchain.errors.LogIntegrityError` (or its subclass
:class:`~authchain.errors.CheckpointError`) whose ``index`` is the first bad entry index when the
failure can be narrowed to one (or the first of a range, which the message names).
"""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final, TypeAlias

from authchain.audit.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from authchain.audit.events import check_leaf
from authchain.audit.merkle import EMPTY_ROOT, CompactRange
from authchain.audit.note import NoteVerifier
from authchain.errors import (
    AuthchainError,
    CheckpointError,
    LogIntegrityError,
    VerificationError,
)

__all__ = ["Entry", "VerifiedLog", "verify_log", "MAX_LEVEL"]

#: Deepest tree level a store can hold (2**48 entries); levels above the tree must be empty.
MAX_LEVEL: Final = 48

_PROGRESS_EVERY: Final = 1 << 14
# Entries per task sent to a worker process: large enough that pickling and scheduling are noise.
_CHUNK: Final = 4096
# Checkpoints per signature-checking task.
_SIGNATURE_BATCH: Final = 256


#: ``(index, leaf bytes, stored leaf hash)``: a row straight from a store's cursor, or a
#: :class:`~authchain.audit.store.LogEntry` (a named tuple of the same three).
Entry: TypeAlias = tuple[int, bytes, bytes]


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """What a successful verification established."""

    size: int
    root_hash: bytes
    checkpoints: int
    latest: Checkpoint
    trusted: tuple[Checkpoint, ...] = ()


def _open_checkpoints(
    verifier: NoteVerifier, origin: str | None, texts: list[str]
) -> list[Checkpoint | str]:
    """Worker side of a parallel verification: each checkpoint opened, or why it failed."""
    out: list[Checkpoint | str] = []
    for text in texts:
        try:
            out.append(open_checkpoint(text, verifier, origin=origin))
        except VerificationError as exc:
            out.append(exc.message)
    return out


class _Checkpoints:
    """Stored checkpoints, verified one at a time as the entry stream reaches their sizes.

    With a worker pool, signatures are checked ahead in batches (an Ed25519 check costs far more
    than an entry when every append was its own batch); each result is still acted on only when
    the stream reaches its checkpoint, so failures are reported in the same order either way.
    """

    def __init__(
        self,
        stored: Iterable[SignedCheckpoint],
        verifier: NoteVerifier,
        origin: str | None,
        pool: ProcessPoolExecutor | None = None,
        ahead: int = 2,
    ) -> None:
        self._it: Iterator[SignedCheckpoint] | None = iter(stored)
        self._verifier = verifier
        self._origin = origin
        self._pool = pool
        self._ahead = max(ahead, 1)
        # Batches read ahead: the checkpoints, and the future of their opened forms. A store that
        # fails while being read ahead leaves its error in place of the next batch.
        self._batches: deque[
            tuple[list[SignedCheckpoint], Future[list[Checkpoint | str]]] | AuthchainError
        ] = deque()
        self._current: list[tuple[SignedCheckpoint, Checkpoint | str]] = []
        self._position = 0
        self.count = 0
        self.last: Checkpoint | None = None
        self.next: Checkpoint | None = None
        self._advance()

    def _read_ahead(self) -> None:
        assert self._pool is not None
        while self._it is not None and len(self._batches) < self._ahead:
            batch: list[SignedCheckpoint] = []
            failure: AuthchainError | None = None
            try:
                for signed in self._it:
                    batch.append(signed)
                    if len(batch) == _SIGNATURE_BATCH:
                        break
            except AuthchainError as exc:
                failure = exc
            if len(batch) < _SIGNATURE_BATCH:
                self._it = None
            if batch:
                texts = [signed.text for signed in batch]
                future = self._pool.submit(_open_checkpoints, self._verifier, self._origin, texts)
                self._batches.append((batch, future))
            if failure is not None:
                self._batches.append(failure)

    def _next_opened(self) -> tuple[SignedCheckpoint, Checkpoint | str] | None:
        if self._pool is None:
            assert self._it is not None
            signed = next(self._it, None)
            if signed is None:
                return None
            try:
                return signed, open_checkpoint(signed.text, self._verifier, origin=self._origin)
            except VerificationError as exc:
                return signed, exc.message
        if self._position == len(self._current):
            self._read_ahead()
            if not self._batches:
                return None
            item = self._batches.popleft()
            if isinstance(item, AuthchainError):
                raise item
            batch, future = item
            self._current = list(zip(batch, future.result(), strict=True))
            self._position = 0
            self._read_ahead()
        opened = self._current[self._position]
        self._position += 1
        return opened

    def _advance(self) -> None:
        opened = self._next_opened()
        if opened is None:
            self.next = None
            return
        signed, checkpoint = opened
        number = self.count + 1
        if isinstance(checkpoint, str):
            raise CheckpointError(
                f"stored checkpoint #{number} (size {signed.size}) does not verify ({checkpoint})",
                size=signed.size,
            )
        if checkpoint.size != signed.size:
            raise CheckpointError(
                f"stored checkpoint #{number} is filed under size {signed.size} but signs size "
                f"{checkpoint.size}",
                size=signed.size,
            )
        previous = self.next or self.last
        if previous is not None and checkpoint.size <= previous.size:
            raise CheckpointError(
                f"stored checkpoint #{number} (size {checkpoint.size}) does not follow the one of "
                f"size {previous.size}: checkpoints were reordered or duplicated",
                size=checkpoint.size,
            )
        self.next = checkpoint

    def reached(self, size: int, root: bytes) -> None:
        """The stream has ``size`` entries whose root is ``root``: check checkpoints of that size."""
        while self.next is not None and self.next.size == size:
            checkpoint = self.next
            self.count += 1
            if not hmac.compare_digest(checkpoint.root_hash, root):
                start = self.last.size if self.last is not None else 0
                raise CheckpointError(
                    f"stored checkpoint #{self.count} (size {size}) was signed over different "
                    f"entries: entries {start}..{size - 1} are not the ones it signed",
                    index=start,
                    size=size,
                )
            self.last = checkpoint
            self._advance()


class _Nodes:
    """Stored tree nodes, read level by level in index order alongside the recomputation."""

    def __init__(self, source: Callable[[int], Iterable[tuple[int, bytes]]]) -> None:
        self._source = source
        self._levels: dict[int, Iterator[tuple[int, bytes]]] = {}

    def check(self, level: int, index: int, value: bytes) -> None:
        it = self._levels.get(level)
        if it is None:
            it = self._levels[level] = iter(self._source(level))
        stored = next(it, None)
        first, last = index << level, ((index + 1) << level) - 1
        if stored is None or stored[0] != index:
            raise LogIntegrityError(
                f"tree node (level {level}, index {index}) over entries {first}..{last} is missing "
                f"from the store",
                first,
            )
        if not hmac.compare_digest(stored[1], value):
            raise LogIntegrityError(
                f"entries {first}..{last} do not match the stored tree node (level {level}, index "
                f"{index}): one of these entries, or the node, was changed",
                first,
            )

    def finish(self, size: int) -> None:
        for level in range(1, MAX_LEVEL + 1):
            it = self._levels.get(level)
            if it is None:
                it = iter(self._source(level))
            extra = next(it, None)
            if extra is not None:
                raise LogIntegrityError(
                    f"the store holds tree node (level {level}, index {extra[0]}) beyond the log's "
                    f"{size} entries: entries were removed from the end",
                    size,
                )


def _trusted(
    trusted: Iterable[str | SignedCheckpoint], verifier: NoteVerifier, origin: str | None
) -> list[Checkpoint]:
    out = []
    for item in trusted:
        text = item.text if isinstance(item, SignedCheckpoint) else item
        try:
            out.append(open_checkpoint(text, verifier, origin=origin))
        except VerificationError as exc:
            raise CheckpointError(
                f"the trusted checkpoint does not verify under this log's key ({exc.message})"
            ) from exc
    out.sort(key=lambda c: c.size)
    return out


def _check_chunk(first: int, leaves: list[bytes]) -> tuple[int, str] | None:
    """Worker side of a parallel verification: step (2) for a run of entries."""
    for offset, leaf in enumerate(leaves):
        try:
            check_leaf(leaf)
        except VerificationError as exc:
            return first + offset, exc.message
    return None


def _pool(workers: int) -> ProcessPoolExecutor:
    # fork is cheap and re-imports nothing, but forking a process that runs other threads (a
    # server) can deadlock the child: then forkserver, which starts workers from a clean process.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def verify_log(
    entries: Iterable[Entry],
    checkpoints: Iterable[SignedCheckpoint],
    verifier: NoteVerifier,
    *,
    nodes: Callable[[int], Iterable[tuple[int, bytes]]] | None = None,
    trusted: Iterable[str | SignedCheckpoint] = (),
    origin: str | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 0,
    start: CompactRange | None = None,
) -> VerifiedLog:
    """Verify a whole log; return what was established or raise :class:`LogIntegrityError`.

    ``entries`` and ``checkpoints`` must come in increasing index and size order (as a store
    serves them); ``nodes(level)`` yields a level's stored ``(index, hash)`` pairs in order (skip
    the node check with ``None``, e.g. for an export). ``origin`` defaults to the key name.

    With ``workers`` > 1, step (2) runs in that many worker processes while this one hashes and
    rebuilds the tree; the result, including which failure is reported first, is the same.

    With ``start``, the first ``start.size`` entries are taken as verified (the caller has checked
    ``start.root()`` against a checkpoint it trusts): ``entries`` begin at index ``start.size``,
    ``checkpoints`` and ``nodes`` hold only those after it, and the tree grows from ``start``.
    """
    trusted_list = _trusted(trusted, verifier, origin)
    if workers > 1:
        with _pool(workers) as pool:
            run = _Run(checkpoints, verifier, nodes, trusted_list, origin, progress, pool, workers)
            return run.verify(entries, start)
    run = _Run(checkpoints, verifier, nodes, trusted_list, origin, progress, None, 0)
    return run.verify(entries, start)


class _Run:
    """One verification: the stream of entries against checkpoints, trusted checkpoints, nodes."""

    def __init__(
        self,
        checkpoints: Iterable[SignedCheckpoint],
        verifier: NoteVerifier,
        nodes: Callable[[int], Iterable[tuple[int, bytes]]] | None,
        trusted: list[Checkpoint],
        origin: str | None,
        progress: Callable[[int], None] | None,
        pool: ProcessPoolExecutor | None,
        workers: int,
    ) -> None:
        self.trusted = trusted
        self.pending_trusted = list(trusted)
        self.stored = _Checkpoints(checkpoints, verifier, origin, pool, ahead=2 * max(workers, 1))
        self.node_check = _Nodes(nodes) if nodes is not None else None
        self.progress = progress
        self.pool = pool
        self.in_flight: deque[Future[tuple[int, str] | None]] = deque()
        self.max_in_flight = 2 * workers
        self.compact = CompactRange()
        self.chunk: list[bytes] = []
        self.chunk_start = 0
        self.position = -1

    def reached(self, size: int, root: bytes) -> None:
        self.stored.reached(size, root)
        while self.pending_trusted and self.pending_trusted[0].size == size:
            checkpoint = self.pending_trusted.pop(0)
            if not hmac.compare_digest(checkpoint.root_hash, root):
                raise CheckpointError(
                    f"the log does not match the trusted checkpoint of size {size}: its first "
                    f"{size} entries were rewritten (and its checkpoints re-signed)",
                    size=size,
                )

    def _collect(self, block: bool, before: int | None = None) -> None:
        """Raise the earliest worker failure among finished chunks (all chunks if ``block``)."""
        while self.in_flight and (block or self.in_flight[0].done()):
            failure = self.in_flight.popleft().result()
            if failure is not None and (before is None or failure[0] <= before):
                index, message = failure
                raise LogIntegrityError(f"entry {index}: {message}", index)

    def verify(self, entries: Iterable[Entry], start: CompactRange | None = None) -> VerifiedLog:
        if start is not None:
            self.compact = start.copy()
        try:
            return self._verify(entries)
        except LogIntegrityError:
            if self.pool is None:
                raise
            # A failure found here may come after one step (2) would find in an earlier entry, or
            # in the same one (step 2 precedes step 3): the earliest is the one to report. Finish
            # step (2) up to this point, in the workers' chunks and in the one not yet sent.
            # The bound is where the stream was, not the failure's index: a failure over a range
            # (a tree node, a checkpoint) names the start of the range but is found at its end.
            bound = self.position
            self._collect(block=True, before=bound)
            for offset, leaf in enumerate(self.chunk):
                index = self.chunk_start + offset
                if index > bound:
                    break
                try:
                    check_leaf(leaf)
                except VerificationError as inner:
                    raise LogIntegrityError(f"entry {index}: {inner.message}", index) from inner
            raise

    def _verify(self, entries: Iterable[Entry]) -> VerifiedLog:
        compact = self.compact
        self.reached(compact.size, compact.root() if compact.size else EMPTY_ROOT)
        hashes = compact.hashes
        sha256 = hashlib.sha256
        node_check = self.node_check
        progress = self.progress
        parallel = self.pool is not None
        chunk = self.chunk
        expected = compact.size
        self.chunk_start = expected
        next_stop = _next_stop(self.stored, self.pending_trusted)
        checked = -1  # the last entry whose step (2) has run (or been sent to a worker)
        try:
            for index, leaf, stored_hash in entries:
                # (1) No gap: a missing index means a deleted (or moved) row.
                if index != expected:
                    raise LogIntegrityError(
                        f"entry {expected} is missing (the next stored entry is {index})", expected
                    )
                # (2) Canonical JSON of a valid event (here, or in a worker).
                if parallel:
                    chunk.append(leaf)
                    if len(chunk) == _CHUNK:
                        self._submit(self.chunk_start, chunk)
                        chunk = self.chunk = []
                        self.chunk_start = index + 1
                else:
                    try:
                        check_leaf(leaf)
                    except VerificationError as exc:
                        raise LogIntegrityError(f"entry {index}: {exc.message}", index) from exc
                checked = index
                # (3) The stored leaf hash is the hash of the stored event (RFC 9162 2.1.1).
                h = sha256(b"\x00" + leaf).digest()
                if not hmac.compare_digest(h, stored_hash):
                    raise LogIntegrityError(
                        f"entry {index}: the stored leaf hash is not the hash of the stored event "
                        f"(the event was changed)",
                        index,
                    )
                # (4) Integrate, checking each node this leaf completes against the stored one.
                node, level = index, 0
                while node & 1:
                    h = sha256(b"\x01" + hashes[level] + h).digest()  # type: ignore[operator]
                    hashes[level] = None
                    level += 1
                    node >>= 1
                    if node_check is not None:
                        node_check.check(level, node, h)
                if level == len(hashes):
                    hashes.append(h)
                else:
                    hashes[level] = h
                expected = index + 1
                compact.size = expected
                # (5) Checkpoints (stored and trusted) of this size.
                if expected == next_stop:
                    self.reached(expected, compact.root())
                    next_stop = _next_stop(self.stored, self.pending_trusted)
                if progress is not None and not expected % _PROGRESS_EVERY:
                    progress(expected)
        except LogIntegrityError:
            self.position = checked
            raise
        if chunk:
            self._submit(self.chunk_start, chunk)
            self.chunk = []
        self._collect(block=True)
        if progress is not None:
            progress(expected)
        return self._finish(expected)

    def _submit(self, first: int, chunk: list[bytes]) -> None:
        assert self.pool is not None
        self._collect(block=False)
        while len(self.in_flight) >= self.max_in_flight:
            failure = self.in_flight.popleft().result()
            if failure is not None:
                index, message = failure
                raise LogIntegrityError(f"entry {index}: {message}", index)
        self.in_flight.append(self.pool.submit(_check_chunk, first, chunk))

    def _finish(self, size: int) -> VerifiedLog:
        stored = self.stored
        # The checkpoints must end where the log ends.
        if stored.next is not None:
            beyond = stored.next
            raise CheckpointError(
                f"stored checkpoint #{stored.count + 1} covers {beyond.size} entries but the log "
                f"holds {size}: entries {size}..{beyond.size - 1} were removed",
                index=size,
                size=beyond.size,
            )
        if self.pending_trusted:
            beyond = self.pending_trusted[0]
            raise CheckpointError(
                f"the trusted checkpoint covers {beyond.size} entries but the log holds {size}: the "
                f"log was truncated",
                index=size,
                size=beyond.size,
            )
        latest = stored.last
        if latest is None:
            raise CheckpointError("the log has no signed checkpoint", index=0)
        if latest.size != size:
            raise CheckpointError(
                f"entries {latest.size}..{size - 1} are not covered by any signed checkpoint (the "
                f"latest covers {latest.size})",
                index=latest.size,
                size=latest.size,
            )
        if self.node_check is not None:
            self.node_check.finish(size)
        return VerifiedLog(size, latest.root_hash, stored.count, latest, tuple(self.trusted))


def _next_stop(stored: _Checkpoints, trusted: list[Checkpoint]) -> int:
    sizes = [c.size for c in (stored.next, trusted[0] if trusted else None) if c is not None]
    return min(sizes) if sizes else -1
