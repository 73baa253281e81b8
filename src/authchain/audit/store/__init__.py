"""Storage of the audit log behind one protocol (docs/audit-log.md).

:class:`LogStore` is what the authority, the attribution engine and the CLI use. SQLite (WAL) is the
embedded default (:class:`~authchain.audit.store.sqlite.SQLiteStore`); a PostgreSQL store will
implement the same protocol and pass the same test suite (``tests/audit/test_store_contract.py``).

Everything that is not storage (canonical bytes, the Merkle tree, proofs, checkpoint signing, group
commit, verification) lives in :mod:`authchain.audit` and :class:`~authchain.audit.store.base.BaseStore`,
so a new store writes only SQL: a write transaction, inserts, and a handful of reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import NamedTuple, Protocol, Self

from authchain.audit.checkpoint import SignedCheckpoint
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import ConsistencyProof, InclusionProof, NodeKey
from authchain.audit.note import NoteVerifier
from authchain.audit.verify import VerifiedLog
from authchain.errors import ConfigurationError

__all__ = ["Claim", "LogEntry", "LogStore", "open_store"]


class LogEntry(NamedTuple):
    """One entry as stored: its index, its leaf bytes (the event's JCS) and the stored leaf hash.

    An immutable named tuple, so that it is also the ``(index, leaf, leaf_hash)`` row that
    :func:`~authchain.audit.verify_log` reads: verification streams millions of rows straight from
    a store's cursor, where building an object per row would cost more than checking it.
    """

    index: int  # type: ignore[assignment]  # the field shadows tuple.index(), which is unused
    leaf: bytes
    leaf_hash: bytes

    def event(self) -> AuditEvent:
        """The event, parsed strictly from the stored bytes (which must be canonical)."""
        return AuditEvent.from_leaf(self.leaf)


class Claim(NamedTuple):
    """A single-use value claimed by the event it is appended with (docs/audit-log.md).

    ``scope`` names the kind of value (``dpop``, ``presentation``, ``report``, ``id_token``) and
    ``key`` the value within it; a pair can be claimed once. The claim is written in the same
    transaction as its event, so the event exists exactly when the value is spent: a claim that
    conflicts with an earlier one (of this process, another process sharing the store, or before a
    restart) fails that append alone with :class:`~authchain.errors.ReplayError`. ``value`` is kept
    with the claim and handed back with that error (a report's digest); ``expires_at`` (Unix time)
    is when the value could no longer be accepted, after which :meth:`LogStore.prune_claims` may
    forget it.
    """

    scope: str
    key: str
    expires_at: int
    value: str | None = None


class LogStore(Protocol):
    """The audit log's storage: sequenced durable appends, lookups, proofs and checkpoints."""

    @property
    def origin(self) -> str:
        """The log's origin, which is also its signing key's name."""
        ...

    # -- appending ------------------------------------------------------------------------------

    def append(self, event: AuditEvent, *, once: Sequence[Claim] = ()) -> int:
        """Append one event; return its index once it is durable (thread-safe, group-committed).

        ``once`` are single-use values this event spends, written in the same transaction. If one
        was claimed before, nothing of this append is written and :class:`ReplayError` is raised,
        carrying the claim's ``scope`` and the first claim's ``first_index`` and ``first_value``;
        the other appends of the group commit proceed.
        """
        ...

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append events atomically and in order; return their indexes once durable."""
        ...

    # -- reading entries ------------------------------------------------------------------------

    def size(self) -> int:
        """The number of durable entries."""
        ...

    def get(self, index: int) -> AuditEvent:
        """The event at ``index`` (:class:`NotFoundError` if there is none)."""
        ...

    def get_leaf(self, index: int) -> bytes:
        """The stored bytes of the event at ``index``: exactly what its leaf hash covers."""
        ...

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, AuditEvent]]:
        """``(index, event)`` for ``start <= index < end`` in order."""
        ...

    def raw_entries(self, start: int = 0, end: int | None = None) -> Iterator[LogEntry]:
        """The stored entries in order, unparsed, for export and verification."""
        ...

    def find_by_id(self, event_id: str) -> tuple[int, AuditEvent] | None: ...

    def find_by_token(
        self, token_hash: str, kinds: Iterable[str] | None = None
    ) -> list[tuple[int, AuditEvent]]:
        """Events whose ``token`` is ``token_hash`` (its issuance, uses, revocation), in order."""
        ...

    def events_for_task(self, txn: str) -> list[tuple[int, AuditEvent]]:
        """Every event of task ``txn``, in log order."""
        ...

    # -- the tree ---------------------------------------------------------------------------------

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        """Hashes of complete subtrees ``(level, index)``; level 0 is the leaf hashes."""
        ...

    def nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        """Every stored node of ``level`` (>= 1) as ``(index, hash)`` in index order."""
        ...

    def root(self, size: int | None = None) -> bytes:
        """The RFC 9162 root of the first ``size`` entries (default: all)."""
        ...

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof: ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof: ...

    def verify_inclusion(self, index: int, size: int | None = None) -> InclusionProof:
        """Prove entry ``index`` against the signed checkpoint of ``size`` (default: the latest),
        recomputing its leaf hash from the stored event; raise :class:`ProofError` if it fails."""
        ...

    # -- checkpoints and keys -------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint: ...

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None: ...

    def checkpoints(self) -> Iterator[SignedCheckpoint]:
        """Every stored checkpoint in increasing size."""
        ...

    def verifier(self) -> NoteVerifier: ...

    def verifier_key(self) -> str:
        """The log's verifier key in C2SP vkey form: ``<name>+<key id>+<base64 key>``."""
        ...

    def verify(
        self,
        *,
        trusted: Iterable[str] = (),
        verifier: NoteVerifier | None = None,
        progress: Callable[[int], None] | None = None,
        workers: int = 0,
    ) -> VerifiedLog:
        """Recompute the whole log against its checkpoints (see :func:`verify_log`); with
        ``workers`` > 1 the per-entry event checks run in that many processes."""
        ...

    # -- single use -----------------------------------------------------------------------------

    def claimed(self, scope: str, key: str) -> tuple[int, str | None] | None:
        """The log index and value of the claim of ``key`` in ``scope``, or None if unclaimed (or
        pruned)."""
        ...

    def prune_claims(self, before: int) -> int:
        """Forget claims that expired before ``before`` (Unix time); returns how many."""
        ...

    # -- the authority's own state --------------------------------------------------------------

    def get_meta(self, key: str) -> str | None: ...

    def put_meta(self, key: str, value: str) -> None:
        """Store a value durably (its own transaction, not part of the log)."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def open_store(target: str, *, create: bool = True, origin: str | None = None) -> LogStore:
    """Open the store named by ``target``: a filesystem path (SQLite) or, later, a
    ``postgresql://`` URL. With ``create=False`` a missing log is a :class:`ConfigurationError`."""
    if target.startswith(("postgresql://", "postgres://")):
        raise ConfigurationError(
            "PostgreSQL audit stores are not available yet; use a SQLite file path for --db"
        )
    if "://" in target:
        raise ConfigurationError(
            f"unsupported store URL {target.split('://')[0]}://; use a file path"
        )
    from authchain.audit.store.sqlite import SQLiteStore

    return SQLiteStore(target, create=create, origin=origin)
