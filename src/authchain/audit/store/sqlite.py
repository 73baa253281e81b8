"""The embedded audit store: one SQLite file in WAL mode (docs/architecture.md).

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``, so a commit returns only after the WAL
is synced and an acknowledged append survives power loss, not just a crashed process. Each batch is
one ``BEGIN IMMEDIATE`` transaction holding its entries, the tree nodes they complete and the
checkpoint signed over the new size; a crash before the commit leaves none of it.

Tables:

- ``entries(idx, event_id, txn, token, leaf_hash, leaf)``: the events exactly as hashed, with the
  columns lookups need (unique ``event_id``; partial indexes on ``txn`` and ``token``).
- ``nodes(key, hash)``: every complete subtree above the leaves, keyed ``level << 48 | index`` so
  a proof's O(log n) nodes are rowid lookups and a level is one range scan.
- ``checkpoints(size, note)``: the signed checkpoint of every integrated batch.
- ``log_config(key, value)``: the origin and the log's Ed25519 key (see below).
- ``meta(key, value)``: the authority's own state.
- ``once(scope, key, idx, value, expires_at)``: the single-use ledger. Each row is a value spent by
  the entry ``idx``, written in that entry's transaction; the primary key ``(scope, key)`` lets a
  value be spent once, whichever process appends. Rows past ``expires_at`` are pruned. Logs created
  before the ledger existed get the table when they are opened.

The log's signing key is created on first open and kept in ``log_config``, unless one is passed in
(then only its public key is stored). Whoever can write this file can also re-sign a rewritten
history with that key: keep checkpoints outside the store (``--trusted-checkpoint``, witnesses).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

import nacl.signing

from authchain.audit.checkpoint import (
    DEFAULT_ORIGIN,
    Checkpoint,
    SignedCheckpoint,
    sign_checkpoint,
)
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import EMPTY_ROOT, NodeKey, NodeReader
from authchain.audit.note import NoteSigner, NoteVerifier
from authchain.audit.store import LogEntry
from authchain.audit.store.base import (
    DEFAULT_MAX_BATCH,
    BaseStore,
    ClaimRow,
    PreparedEntry,
    Snapshot,
)
from authchain.errors import (
    AuthchainError,
    CheckpointError,
    ConfigurationError,
    DuplicateEventError,
    InvalidKeyError,
    NotFoundError,
    StorageError,
)

__all__ = ["SQLiteStore", "FORMAT"]

#: Written on creation; a file without it is not an Authchain audit log.
FORMAT: Final = "authchain-audit-log/1"

# Node keys: level in the high bits, index below. 48 bits of index is 2.8e14 entries.
_LEVEL_SHIFT: Final = 48
_INDEX_MASK: Final = (1 << _LEVEL_SHIFT) - 1

_SCHEMA: Final = """
CREATE TABLE log_config (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE entries (
    idx INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    txn TEXT,
    token TEXT,
    leaf_hash BLOB NOT NULL,
    leaf BLOB NOT NULL
);
CREATE UNIQUE INDEX entries_by_event_id ON entries (event_id);
CREATE INDEX entries_by_txn ON entries (txn) WHERE txn IS NOT NULL;
CREATE INDEX entries_by_token ON entries (token) WHERE token IS NOT NULL;
CREATE TABLE nodes (key INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# The single-use ledger, created when missing so logs of earlier releases gain it on open.
_LEDGER: Final = (
    "CREATE TABLE IF NOT EXISTS once (scope TEXT NOT NULL, key TEXT NOT NULL, "
    "idx INTEGER NOT NULL, value TEXT, expires_at INTEGER NOT NULL, PRIMARY KEY (scope, key)) "
    "WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS once_by_expiry ON once (expires_at)",
)

# SQLite's default limit on host parameters is 32766 (since 3.32); stay well below.
_MAX_PARAMS: Final = 500


_T = TypeVar("_T")


def _node_key(level: int, index: int) -> int:
    return (level << _LEVEL_SHIFT) | index


def _connect(path: str, *, mode: str) -> sqlite3.Connection:
    uri = f"file:{Path(path).absolute().as_posix()}?mode={mode}"
    try:
        conn = sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0
        )
    except sqlite3.Error as exc:
        raise ConfigurationError(f"cannot open the audit log at {path}: {exc}") from exc
    try:
        # WAL: readers never block the writer; FULL: the WAL is synced at every commit, so an
        # acknowledged append survives power loss (https://sqlite.org/pragma.html#pragma_synchronous).
        mode_row = conn.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode_row is None or str(mode_row[0]).lower() != "wal":
            raise ConfigurationError(f"{path}: the audit log needs WAL mode, got {mode_row}")
        conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigurationError(f"{path} is not an Authchain audit log: {exc}") from exc
    return conn


class _TxReader:
    """Node reads inside the writer's transaction."""

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection) -> None:
        self._store = store
        self._conn = conn

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        return self._store._nodes_from(self._conn, keys)


class _SQLiteSnapshot(Snapshot):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def raw_entries(self) -> Iterator[tuple[int, bytes, bytes]]:
        # The cursor itself: rows come out as (idx, leaf, leaf_hash) tuples, built in C.
        return self._conn.execute("SELECT idx, leaf, leaf_hash FROM entries ORDER BY idx")

    def checkpoints(self) -> Iterator[SignedCheckpoint]:
        return _checkpoint_rows(self._conn)

    def nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        return _node_rows(self._conn, level)


def _checkpoint_rows(conn: sqlite3.Connection) -> Iterator[SignedCheckpoint]:
    for size, note in conn.execute("SELECT size, note FROM checkpoints ORDER BY size"):
        yield _parse_checkpoint(size, note)


def _parse_checkpoint(size: int, note: object) -> SignedCheckpoint:
    try:
        if not isinstance(note, str):
            raise CheckpointError("not text")
        signed = SignedCheckpoint.parse(note)
    except AuthchainError as exc:
        raise CheckpointError(
            f"the stored checkpoint of size {size} is malformed: {exc.message}", size=size
        ) from exc
    if signed.size != size:
        raise CheckpointError(
            f"the stored checkpoint filed under size {size} signs size {signed.size}", size=size
        )
    return signed


def _node_rows(conn: sqlite3.Connection, level: int) -> Iterator[tuple[int, bytes]]:
    low = _node_key(level, 0)
    return conn.execute(
        "SELECT key - ?, hash FROM nodes WHERE key >= ? AND key < ? ORDER BY key",
        (low, low, _node_key(level + 1, 0)),
    )


class SQLiteStore(BaseStore):
    """The embedded :class:`~authchain.audit.store.LogStore`: a SQLite file in WAL mode.

    ``origin`` names the log (and its key) when the file is created; opening an existing log with a
    different origin is refused. ``signing_key`` (a PyNaCl ``SigningKey`` or 32-byte seed) signs
    checkpoints instead of the key kept in the file. ``create=False`` refuses a missing file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        origin: str | None = None,
        signing_key: nacl.signing.SigningKey | bytes | None = None,
        create: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        super().__init__(max_batch=max_batch)
        self.path = os.fspath(path)
        if not create and not os.path.exists(self.path):
            raise ConfigurationError(f"no audit log at {self.path}")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = _connect(self.path, mode="rwc" if create else "rw")
        try:
            self._open(origin, signing_key, create)
        except BaseException:
            self._writer.close()
            raise

    # ----------------------------------------------------------------------------------------------
    # Opening.

    def _open(
        self,
        origin: str | None,
        signing_key: nacl.signing.SigningKey | bytes | None,
        create: bool,
    ) -> None:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                exists = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_config'"
                ).fetchone()
                if exists is None:
                    if not create:
                        raise ConfigurationError(f"{self.path} is not an Authchain audit log")
                    self._create(conn, origin or DEFAULT_ORIGIN, signing_key)
                for statement in _LEDGER:
                    conn.execute(statement)
                config = dict(conn.execute("SELECT key, value FROM log_config").fetchall())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot open the audit log at {self.path}: {exc}") from exc
        if config.get("format") != FORMAT:
            raise ConfigurationError(f"{self.path} is not an Authchain audit log ({FORMAT})")
        stored_origin = str(config["origin"])
        if origin is not None and origin != stored_origin:
            raise ConfigurationError(
                f"the audit log at {self.path} has origin {stored_origin!r}, not {origin!r}"
            )
        self._origin = stored_origin
        public_key = bytes(config["public_key"])
        self._verifier = NoteVerifier.from_public_key(stored_origin, public_key)
        if signing_key is not None:
            signer = NoteSigner(stored_origin, signing_key)
            if signer.verifier.public_key != public_key:
                raise InvalidKeyError("the signing key given is not this audit log's key")
            self._signer = signer
        elif "signing_seed" in config:
            self._signer = NoteSigner(stored_origin, bytes(config["signing_seed"]))

    def _create(
        self,
        conn: sqlite3.Connection,
        origin: str,
        signing_key: nacl.signing.SigningKey | bytes | None,
    ) -> None:
        for statement in _SCHEMA.strip().split(";"):
            if statement.strip():
                conn.execute(statement)
        generated = None
        if signing_key is None:
            signing_key = generated = nacl.signing.SigningKey.generate()
        signer = NoteSigner(origin, signing_key)
        rows: list[tuple[str, object]] = [
            ("format", FORMAT),
            ("origin", origin),
            ("public_key", signer.verifier.public_key),
        ]
        if generated is not None:
            rows.append(("signing_seed", bytes(generated)))
        conn.executemany("INSERT INTO log_config (key, value) VALUES (?, ?)", rows)
        # The empty log is a log too: its checkpoint commits to size 0.
        empty = sign_checkpoint(Checkpoint(origin, 0, EMPTY_ROOT), signer)
        conn.execute("INSERT INTO checkpoints (size, note) VALUES (0, ?)", (empty.text,))

    # ----------------------------------------------------------------------------------------------
    # Connections.

    def _reader(self) -> sqlite3.Connection:
        # One read connection per thread (WAL readers never block the writer). They are closed
        # with the store; a server's thread pool is bounded, so so is their number.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StorageError("the audit store is closed")
            conn = _connect(self.path, mode="rw")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _close_storage(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        self._writer.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._reader()
        except sqlite3.Error as exc:
            raise StorageError(f"audit log read failed: {exc}") from exc

    # ----------------------------------------------------------------------------------------------
    # Writing (called by BaseStore under its writer role).

    def _begin_write(self) -> tuple[int, NodeReader]:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT idx FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            self._rollback()
            raise StorageError(f"cannot start an audit log transaction: {exc}") from exc
        return (0 if row is None else row[0] + 1), _TxReader(self, conn)

    def _insert(
        self,
        first: int,
        entries: Sequence[PreparedEntry],
        nodes: Sequence[tuple[int, int, bytes]],
        checkpoint: SignedCheckpoint,
    ) -> None:
        conn = self._writer
        try:
            conn.executemany(
                "INSERT INTO entries (idx, event_id, txn, token, leaf_hash, leaf) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (first + i, e.event_id, e.txn, e.token, e.leaf_hash, e.leaf)
                    for i, e in enumerate(entries)
                ],
            )
        except sqlite3.IntegrityError as exc:
            if "event_id" in str(exc):
                raise DuplicateEventError("an event with this id is already in the log") from exc
            raise StorageError(f"audit log write failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"audit log write failed: {exc}") from exc
        try:
            conn.executemany(
                "INSERT INTO nodes (key, hash) VALUES (?, ?)",
                [(_node_key(level, index), value) for level, index, value in nodes],
            )
            conn.execute(
                "INSERT INTO checkpoints (size, note) VALUES (?, ?)",
                (checkpoint.size, checkpoint.text),
            )
        except sqlite3.Error as exc:
            raise StorageError(f"audit log write failed: {exc}") from exc

    def _claims_held(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, str | None]]:
        by_scope: dict[str, list[str]] = {}
        for scope, key in keys:
            by_scope.setdefault(scope, []).append(key)
        held: dict[tuple[str, str], tuple[int, str | None]] = {}
        try:
            for scope, scope_keys in by_scope.items():
                for chunk in _chunks(scope_keys, _MAX_PARAMS):
                    marks = ",".join("?" * len(chunk))
                    for key, idx, value in self._writer.execute(
                        f"SELECT key, idx, value FROM once WHERE scope = ? AND key IN ({marks})",
                        [scope, *chunk],
                    ):
                        held[(scope, key)] = (int(idx), value)
        except sqlite3.Error as exc:
            raise StorageError(f"audit log read failed: {exc}") from exc
        return held

    def _insert_claims(self, rows: Sequence[ClaimRow]) -> None:
        try:
            self._writer.executemany(
                "INSERT INTO once (scope, key, idx, value, expires_at) VALUES (?, ?, ?, ?, ?)", rows
            )
        except sqlite3.Error as exc:
            raise StorageError(f"audit log write failed: {exc}") from exc

    def _commit(self) -> None:
        try:
            self._writer.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"audit log commit failed: {exc}") from exc

    def _rollback(self) -> None:
        try:
            if self._writer.in_transaction:
                self._writer.execute("ROLLBACK")
        except sqlite3.Error:  # pragma: no cover - a failed rollback leaves SQLite to roll back
            pass

    def _stored_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self._reading() as conn:
            for chunk in _chunks(list(ids), _MAX_PARAMS):
                marks = ",".join("?" * len(chunk))
                found.update(
                    row[0]
                    for row in conn.execute(
                        f"SELECT event_id FROM entries WHERE event_id IN ({marks})", chunk
                    )
                )
        return found

    # ----------------------------------------------------------------------------------------------
    # Reading.

    def size(self) -> int:
        with self._reading() as conn:
            row = conn.execute("SELECT idx FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
        return 0 if row is None else int(row[0]) + 1

    def get_leaf(self, index: int) -> bytes:
        with self._reading() as conn:
            row = conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise NotFoundError(f"no entry at index {index}")
        return bytes(row[0])

    def raw_entries(self, start: int = 0, end: int | None = None) -> Iterator[LogEntry]:
        with self._reading() as conn:
            cursor = conn.execute(
                "SELECT idx, leaf, leaf_hash FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, (1 << 62) if end is None else end),
            )
            yield from map(LogEntry._make, cursor)

    def _lookup(self, sql: str, args: Sequence[object]) -> list[tuple[int, AuditEvent]]:
        with self._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [(idx, self._event(idx, leaf)) for idx, leaf in rows]

    def find_by_id(self, event_id: str) -> tuple[int, AuditEvent] | None:
        found = self._lookup("SELECT idx, leaf FROM entries WHERE event_id = ?", (event_id,))
        return found[0] if found else None

    def find_by_token(
        self, token_hash: str, kinds: Iterable[str] | None = None
    ) -> list[tuple[int, AuditEvent]]:
        found = self._lookup(
            "SELECT idx, leaf FROM entries WHERE token = ? ORDER BY idx", (token_hash,)
        )
        if kinds is None:
            return found
        wanted = set(kinds)
        return [(idx, event) for idx, event in found if event.kind in wanted]

    def events_for_task(self, txn: str) -> list[tuple[int, AuditEvent]]:
        return self._lookup("SELECT idx, leaf FROM entries WHERE txn = ? ORDER BY idx", (txn,))

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        with self._reading() as conn:
            return self._nodes_from(conn, keys)

    def _nodes_from(self, conn: sqlite3.Connection, keys: Sequence[NodeKey]) -> list[bytes]:
        leaves = sorted({index for level, index in keys if level == 0})
        inner = sorted({_node_key(level, index) for level, index in keys if level > 0})
        found: dict[int, bytes] = {}
        for chunk in _chunks(leaves, _MAX_PARAMS):
            marks = ",".join("?" * len(chunk))
            for idx, value in conn.execute(
                f"SELECT idx, leaf_hash FROM entries WHERE idx IN ({marks})", chunk
            ):
                found[idx] = value
        for chunk in _chunks(inner, _MAX_PARAMS):
            marks = ",".join("?" * len(chunk))
            for key, value in conn.execute(
                f"SELECT key, hash FROM nodes WHERE key IN ({marks})", chunk
            ):
                found[key] = value
        out: list[bytes] = []
        for level, index in keys:
            value = found.get(_node_key(level, index) if level else index)
            if value is None:
                raise NotFoundError(f"tree node (level {level}, index {index}) is not stored")
            out.append(bytes(value))
        return out

    def nodes(self, level: int) -> Iterator[tuple[int, bytes]]:
        with self._reading() as conn:
            yield from _node_rows(conn, level)

    def checkpoints(self) -> Iterator[SignedCheckpoint]:
        with self._reading() as conn:
            yield from _checkpoint_rows(conn)

    def checkpoint_at(self, size: int) -> SignedCheckpoint | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT size, note FROM checkpoints WHERE size = ?", (size,)
            ).fetchone()
        return None if row is None else _parse_checkpoint(row[0], row[1])

    def latest_checkpoint(self) -> SignedCheckpoint:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise CheckpointError("the audit log has no checkpoint")
        return _parse_checkpoint(row[0], row[1])

    @contextmanager
    def _snapshot(self) -> Iterator[Snapshot]:
        # One read transaction: the entries, nodes and checkpoints all come from the same commit,
        # even while appends continue.
        conn = _connect(self.path, mode="rw")
        try:
            conn.execute("BEGIN")
            yield _SQLiteSnapshot(conn)
        except sqlite3.Error as exc:
            raise StorageError(f"audit log read failed: {exc}") from exc
        finally:
            conn.close()

    # ----------------------------------------------------------------------------------------------
    # The authority's state.

    def get_meta(self, key: str) -> str | None:
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_meta(self, key: str, value: str) -> None:
        # Through the writer connection, serialised with appends.
        self._write_outside_log(
            f"cannot store {key!r}",
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # ----------------------------------------------------------------------------------------------
    # The single-use ledger.

    def claimed(self, scope: str, key: str) -> tuple[int, str | None] | None:
        with self._reading() as conn:
            row = conn.execute(
                "SELECT idx, value FROM once WHERE scope = ? AND key = ?", (scope, key)
            ).fetchone()
        return None if row is None else (int(row[0]), row[1])

    def prune_claims(self, before: int) -> int:
        return self._write_outside_log(
            "cannot prune the single-use ledger",
            "DELETE FROM once WHERE expires_at < ?",
            (before,),
        )

    def _write_outside_log(self, what: str, sql: str, params: tuple[object, ...]) -> int:
        with self._writer_turn():
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                try:
                    changed = self._writer.execute(sql, params).rowcount
                    self._writer.execute("COMMIT")
                except BaseException:
                    self._writer.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StorageError(f"{what}: {exc}") from exc
        return int(changed)


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
