"""What every store shares: group commit, integration into the tree, checkpoint signing, proofs.

A concrete store implements the storage primitives (marked abstract below) in its own query
language; everything here is the same for SQLite and PostgreSQL.

Group commit. Appending threads queue their prepared entries; whichever thread finds no write in
progress becomes the writer, takes everything queued (up to ``max_batch`` events), and in ONE
transaction writes the entries, the tree nodes they complete, and the checkpoint signed over the
new size. Only when that transaction has committed (durably: the stores sync on commit) do the
waiters get their indexes. If it fails, every waiter in the batch gets a :class:`StorageError` and
nothing of the batch is visible.

Single use. An append may carry :class:`~authchain.audit.store.Claim` values it spends. Inside the
same write transaction the writer looks the batch's claims up; a request whose claim is already
held (or taken by an earlier request of the same batch) is refused with :class:`ReplayError` and
left out, and the rest of the batch is written together with its claims. A claim costs no extra
sync, and two processes sharing a store cannot both spend one value: the write lock serialises
them, and the claim's primary key is the backstop.

Sequencing. The in-memory right edge of the tree (:class:`CompactRange`) is trusted only if the
durable size read inside the write transaction matches it; otherwise (another process appended)
it is reloaded from the stored nodes first, so two writers can never fork the tree.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from authchain.audit import merkle
from authchain.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    open_checkpoint,
    sign_checkpoint,
)
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import (
    CompactRange,
    ConsistencyProof,
    InclusionProof,
    NodeKey,
    NodeReader,
)
from authchain.audit.note import NoteSigner, NoteVerifier
from authchain.audit.store import Claim, LogEntry
from authchain.audit.verify import VerifiedLog, verify_log
from authchain.errors import (
    AuthchainError,
    ConfigurationError,
    DuplicateEventError,
    LogIntegrityError,
    NotFoundError,
    ProofError,
    ReplayError,
    StorageError,
)

__all__ = ["BaseStore", "PreparedEntry", "Snapshot", "DEFAULT_MAX_BATCH"]

#: Events per transaction. Large enough to amortise the sync and the signature, small enough that a
#: batch's transaction stays short.
DEFAULT_MAX_BATCH: Final = 16384


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An event ready to store: its leaf bytes, leaf hash and the columns lookups index."""

    event_id: str
    txn: str | None
    token: str | None
    leaf: bytes
    leaf_hash: bytes

    @classmethod
    def of(cls, event: AuditEvent) -> PreparedEntry:
        leaf = event.leaf_bytes()
        return cls(event.id, event.txn, event.token, leaf, merkle.leaf_hash(leaf))


#: A claim as stored: ``(scope, key, index of the event that claimed it, value, expires_at)``.
ClaimRow = tuple[str, str, int, str | None, int]


class _Request:
    __slots__ = ("entries", "claims", "indexes", "error", "done")

    def __init__(self, entries: list[PreparedEntry], claims: Sequence[Claim] = ()) -> None:
        self.entries = entries
        self.claims = claims
        self.indexes: list[int] = []
        self.error: AuthchainError | None = None
        self.done = False


class Snapshot(ABC):
    """One consistent read-only view of a store, for verification."""

    @abstractmethod
    def raw_entries(self) -> Iterator[tuple[int, bytes, bytes]]:
        """Every entry as ``(index, leaf, leaf_hash)`` in index order."""

    @abstractmethod
    def checkpoints(self) -> Iterator[SignedCheckpoint]: ...

    @abstractmethod
    def nodes(self, level: int) -> Iterator[tuple[int, bytes]]: ...


class BaseStore(ABC):
    """The store-independent half of a :class:`~authchain.audit.store.LogStore`."""

    def __init__(self, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._writing = False
        self._closed = False
        self._max_batch = max_batch
        self._compact: CompactRange | None = None
        self._signer: NoteSigner | None = None
        self._verifier: NoteVerifier | None = None
        self._origin = ""

    # ----------------------------------------------------------------------------------------------
    # Primitives a concrete store implements.

    @abstractmethod
    def _begin_write(self) -> tuple[int, NodeReader]:
        """Start a write transaction holding the log's write lock; return the durable size and a
        node reader inside that transaction."""

    @abstractmethod
    def _insert(
        self,
        first: int,
        entries: Sequence[PreparedEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: SignedCheckpoint,
    ) -> None:
        """Insert the batch's entries from index ``first``, its nodes and its checkpoint. Raise
        :class:`DuplicateEventError` if an event id is already stored."""

    @abstractmethod
    def _claims_held(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, str | None]]:
        """Inside the write transaction: which of ``keys`` (scope, key) are claimed, with the index
        and value of each claim."""

    @abstractmethod
    def _insert_claims(self, rows: Sequence[ClaimRow]) -> None:
        """Inside the write transaction: store the batch's claims."""

    @abstractmethod
    def claimed(self, scope: str, key: str) -> tuple[int, str | None] | None: ...

    @abstractmethod
    def prune_claims(self, before: int) -> int: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...

    @abstractmethod
    def _stored_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are already in the log."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Snapshot]: ...

    @abstractmethod
    def _close_storage(self) -> None: ...

    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def get_leaf(self, index: int) -> bytes: ...

    @abstractmethod
    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]: ...

    @abstractmethod
    def raw_entries(self, start: int = 0, end: int | None = None) -> Iterator[LogEntry]: ...

    @abstractmethod
    def checkpoints(self) -> Iterator[SignedCheckpoint]: ...

    @abstractmethod
    def checkpoint_at(self, size: int) -> SignedCheckpoint | None: ...

    @abstractmethod
    def latest_checkpoint(self) -> SignedCheckpoint: ...

    # ----------------------------------------------------------------------------------------------
    # Keys.

    @property
    def origin(self) -> str:
        return self._origin

    def verifier(self) -> NoteVerifier:
        if self._verifier is None:  # pragma: no cover - set by every concrete store's constructor
            raise ConfigurationError("the log has no key")
        return self._verifier

    def verifier_key(self) -> str:
        return self.verifier().vkey()

    # ----------------------------------------------------------------------------------------------
    # Appending.

    def append(self, event: AuditEvent, *, once: Sequence[Claim] = ()) -> int:
        return self._append_prepared([PreparedEntry.of(event)], once)[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        if not events:
            return []
        # Canonical bytes and leaf hashes are computed by the calling thread, outside the lock.
        return self._append_prepared([PreparedEntry.of(event) for event in events])

    def _append_prepared(
        self, entries: list[PreparedEntry], claims: Sequence[Claim] = ()
    ) -> list[int]:
        """Append entries whose leaf bytes are canonical events (the bench's bulk loader uses this
        directly), spending ``claims``; group-committed like every append."""
        request = _Request(entries, claims)
        with self._cond:
            if self._closed:
                raise StorageError("the audit store is closed")
            if self._signer is None:
                raise ConfigurationError(
                    "this log's signing key is not available: open the store with signing_key="
                )
            self._queue.append(request)
            while not request.done:
                if self._writing:
                    self._cond.wait()
                    continue
                if self._closed:  # closed while this request waited: it was never written
                    self._queue.remove(request)
                    raise StorageError("the audit store was closed before the event was written")
                batch = self._take_batch()
                self._writing = True
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    for taken in batch:
                        if not taken.done:  # interrupted (KeyboardInterrupt): nothing acknowledged
                            self._finish(taken, StorageError("the write was interrupted"))
                    self._cond.acquire()
                    self._writing = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        return request.indexes

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        count = 0
        while self._queue and (not batch or count + len(self._queue[0].entries) <= self._max_batch):
            request = self._queue.pop(0)
            batch.append(request)
            count += len(request.entries)
        return batch

    def _write(self, batch: list[_Request]) -> None:
        pending = self._refuse_duplicates_within(batch)
        while pending:
            try:
                self._write_once(pending)
                return
            except DuplicateEventError:
                # Rare: an id already stored. Refuse the requests that carry one, retry the rest.
                stored = self._stored_ids([e.event_id for r in pending for e in r.entries])
                still: list[_Request] = []
                for request in pending:
                    dup = next((e.event_id for e in request.entries if e.event_id in stored), None)
                    if dup is None:
                        still.append(request)
                    else:
                        self._finish(
                            request, DuplicateEventError(f"event {dup} is already in the log")
                        )
                if len(still) == len(pending):  # pragma: no cover - defensive: no progress
                    for request in still:
                        self._finish(request, StorageError("the batch could not be written"))
                    return
                pending = still
            except AuthchainError as exc:
                error = (
                    exc
                    if isinstance(exc, StorageError)
                    else StorageError(f"the audit log could not be written: {exc.message}")
                )
                for request in pending:
                    self._finish(request, error)
                return
            except Exception as exc:  # noqa: BLE001 - every waiter must learn that nothing was written
                for request in pending:
                    self._finish(
                        request, StorageError(f"the audit log could not be written: {exc}")
                    )
                return

    def _refuse_duplicates_within(self, batch: list[_Request]) -> list[_Request]:
        seen: set[str] = set()
        ok: list[_Request] = []
        for request in batch:
            ids = [e.event_id for e in request.entries]
            if len(set(ids)) != len(ids) or not seen.isdisjoint(ids):
                self._finish(request, DuplicateEventError("an event id appears twice in one batch"))
                continue
            seen.update(ids)
            ok.append(request)
        return ok

    @staticmethod
    def _finish(request: _Request, error: AuthchainError) -> None:
        request.error = error
        request.done = True

    def _write_once(self, batch: list[_Request]) -> None:
        signer = self._signer
        assert signer is not None
        size, reader = self._begin_write()
        try:
            wanted = sorted({(c.scope, c.key) for request in batch for c in request.claims})
            held = self._claims_held(wanted) if wanted else {}
            accepted, replays, rows = _spend(batch, size, held)
            entries = [e for request in accepted for e in request.entries]
            compact = self._compact
            if entries:
                if compact is None or compact.size != size:
                    # First write, or another process appended since: reload the tree's right edge.
                    try:
                        compact = CompactRange.from_reader(reader, size)
                    except NotFoundError as exc:
                        raise LogIntegrityError(
                            f"the stored tree is incomplete at size {size}; "
                            "run `authchain audit verify`"
                        ) from exc
                compact = compact.copy()
                nodes = compact.extend([e.leaf_hash for e in entries])
                checkpoint = sign_checkpoint(
                    Checkpoint(self._origin, compact.size, compact.root()), signer
                )
                self._insert(size, entries, nodes, checkpoint)
                if rows:
                    self._insert_claims(rows)
            self._commit()
        except BaseException:
            self._rollback()
            raise
        if entries:
            self._compact = compact
        index = size
        for request in accepted:
            request.indexes = list(range(index, index + len(request.entries)))
            index += len(request.entries)
            request.done = True
        # Only now, once the claims they lost to are durable, do the refused requests learn it.
        for request, error in replays:
            self._finish(request, error)

    # ----------------------------------------------------------------------------------------------
    # Reading.

    def get(self, index: int) -> AuditEvent:
        return self._event(index, self.get_leaf(index))

    @staticmethod
    def _event(index: int, leaf: bytes) -> AuditEvent:
        try:
            return AuditEvent.from_leaf(leaf)
        except AuthchainError as exc:
            raise LogIntegrityError(
                f"entry {index} is not a valid event: {exc.message}", index
            ) from exc

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, AuditEvent]]:
        for entry in self.raw_entries(start, end):
            yield entry.index, self._event(entry.index, entry.leaf)

    def _size_arg(self, size: int | None) -> int:
        current = self.size()
        if size is None:
            return current
        if not 0 <= size <= current:
            raise NotFoundError(f"size {size} is beyond the log's size {current}")
        return size

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_at(self, self._size_arg(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        n = self._size_arg(size)
        if not 0 <= index < n:
            raise NotFoundError(f"index {index} is not in the log of size {n}")
        return merkle.inclusion_proof(self, index, n)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        n = self._size_arg(new_size)
        if not 0 < old_size <= n:
            raise NotFoundError(
                f"no consistency proof from size {old_size} to {n}: need 1 <= old <= {n}"
            )
        return merkle.consistency_proof(self, old_size, n)

    def verify_inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        if size is None:
            signed = self.latest_checkpoint()
        else:
            found = self.checkpoint_at(size)
            if found is None:
                raise ProofError(f"the log signed no checkpoint of size {size}", index)
            signed = found
        checkpoint = open_checkpoint(signed.text, self.verifier(), origin=self._origin)
        if not 0 <= index < checkpoint.size:
            raise ProofError(
                f"entry {index} is not covered by the checkpoint of size {checkpoint.size}", index
            )
        proof = merkle.inclusion_proof(self, index, checkpoint.size)
        # The leaf hash is recomputed from the stored event, not read from the stored hash, so an
        # edited event fails here even if its stored hash was edited too.
        leaf = merkle.leaf_hash(self.get_leaf(index))
        merkle.verify_inclusion(leaf, index, checkpoint.size, proof.path, checkpoint.root_hash)
        return proof

    def verify(
        self,
        *,
        trusted: Iterable[str] = (),
        verifier: NoteVerifier | None = None,
        progress: Callable[[int], None] | None = None,
        workers: int = 0,
    ) -> VerifiedLog:
        with self._snapshot() as snap:
            return verify_log(
                snap.raw_entries(),
                snap.checkpoints(),
                verifier or self.verifier(),
                nodes=snap.nodes,
                trusted=trusted,
                origin=self._origin,
                progress=progress,
                workers=workers,
            )

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """Hold the writer role for a write outside the log (meta, pruning): serialised with the
        appends by the same condition, so it never interleaves with a batch's transaction."""
        with self._cond:
            if self._closed:
                raise StorageError("the audit store is closed")
            while self._writing:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    # ----------------------------------------------------------------------------------------------
    # Lifecycle.

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._writing:
                self._cond.wait()
        self._close_storage()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _spend(
    batch: list[_Request], size: int, held: dict[tuple[str, str], tuple[int, str | None]]
) -> tuple[list[_Request], list[tuple[_Request, ReplayError]], list[ClaimRow]]:
    """Split the batch into the requests whose claims are free (in order) and those whose
    claims are taken; returns the claim rows to store for the former."""
    if not held and not any(request.claims for request in batch):
        return batch, [], []
    accepted: list[_Request] = []
    replays: list[tuple[_Request, ReplayError]] = []
    rows: list[ClaimRow] = []
    index = size
    for request in batch:
        conflict = next(
            (
                (c.scope, c.key, held[(c.scope, c.key)])
                for c in request.claims
                if (c.scope, c.key) in held
            ),
            None,
        )
        if conflict is not None:
            scope, key, (first, value) = conflict
            replays.append(
                (
                    request,
                    ReplayError(
                        f"{scope} {key[:80]!r} was already claimed by log entry {first}",
                        scope=scope,
                        first_index=first,
                        first_value=value,
                    ),
                )
            )
            continue
        for claim in {(c.scope, c.key): c for c in request.claims}.values():
            held[(claim.scope, claim.key)] = (index, claim.value)
            rows.append((claim.scope, claim.key, index, claim.value, claim.expires_at))
        accepted.append(request)
        index += len(request.entries)
    return accepted, replays, rows
