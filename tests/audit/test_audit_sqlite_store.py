"""SQLite specifics: durability settings, group commit, failed writes, keys, two writers."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from conftest import make_event

from authchain.audit.store.sqlite import SQLiteStore
from authchain.errors import ConfigurationError, InvalidKeyError, StorageError


def test_the_log_is_in_wal_mode_and_commits_are_fully_synced(sqlite_path: Path) -> None:
    with SQLiteStore(sqlite_path) as store:
        store.append(make_event())
        # synchronous=FULL (2): the WAL is synced at every commit, so an acknowledged append
        # survives power loss; it is a per-connection setting, so check the writer's.
        assert store._writer.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert store._writer.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with sqlite3.connect(sqlite_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class _GatedSigner:
    """Wraps the log's signer so the first batch's transaction can be held open."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def signature_line(self, text: str) -> str:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(10)
        return str(self.inner.signature_line(text))


def test_appends_queued_during_a_write_are_committed_together(sqlite_path: Path) -> None:
    store = SQLiteStore(sqlite_path)
    gate = _GatedSigner(store._signer)
    store._signer = gate  # type: ignore[assignment]
    first = threading.Thread(target=store.append, args=(make_event(),))
    first.start()
    assert gate.entered.wait(10)
    # While the first batch is inside its transaction, nine more appenders queue up.
    others = [threading.Thread(target=store.append, args=(make_event(),)) for _ in range(9)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 10
    while len(store._queue) < 9 and time.monotonic() < deadline:
        time.sleep(0.001)
    gate.release.set()
    for t in [first, *others]:
        t.join()
    # One transaction (and one checkpoint) for the first append, one for the nine queued ones.
    assert [c.size for c in store.checkpoints()] == [0, 1, 10]
    assert store.verify().size == 10
    store.close()


def _fail_checkpoint_writes(path: Path, fail: bool) -> None:
    with sqlite3.connect(path) as conn:
        if fail:
            conn.execute(
                "CREATE TRIGGER fail_checkpoints BEFORE INSERT ON checkpoints "
                "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        else:
            conn.execute("DROP TRIGGER fail_checkpoints")


def test_a_failed_write_fails_every_waiter_and_leaves_nothing_visible(sqlite_path: Path) -> None:
    store = SQLiteStore(sqlite_path)
    store.append_many([make_event() for _ in range(3)])
    _fail_checkpoint_writes(sqlite_path, fail=True)
    errors: list[BaseException] = []

    def append() -> None:
        try:
            store.append(make_event())
        except StorageError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 6
    with pytest.raises(StorageError, match="disk says no"):
        store.append_many([make_event() for _ in range(4)])
    assert store.size() == 3
    assert [c.size for c in store.checkpoints()] == [0, 3]
    _fail_checkpoint_writes(sqlite_path, fail=False)
    assert store.append(make_event()) == 3
    assert store.verify().size == 4
    store.close()


def test_two_stores_on_one_file_never_fork_the_tree(sqlite_path: Path) -> None:
    a = SQLiteStore(sqlite_path)
    b = SQLiteStore(sqlite_path)
    for i in range(10):
        (a if i % 2 else b).append_many([make_event() for _ in range(i + 1)])
    assert a.size() == b.size() == 55
    assert a.verify().size == 55
    assert b.inclusion_proof(17).root == a.root()
    a.close()
    b.close()


def test_verification_sees_one_snapshot_while_appends_continue(sqlite_path: Path) -> None:
    store = SQLiteStore(sqlite_path)
    store.append_many([make_event() for _ in range(2000)])
    stop = threading.Event()

    def keep_appending() -> None:
        while not stop.is_set():
            store.append(make_event())

    writer = threading.Thread(target=keep_appending)
    writer.start()
    try:
        for _ in range(3):
            assert store.verify().size >= 2000
    finally:
        stop.set()
        writer.join()
    store.close()


def test_an_external_signing_key_is_not_kept_in_the_file(sqlite_path: Path) -> None:
    key = nacl.signing.SigningKey.generate()
    with SQLiteStore(sqlite_path, signing_key=key, origin="example.org/audit") as store:
        store.append(make_event())
        assert store.verifier_key().startswith("example.org/audit+")
        assert store.latest_checkpoint().text.startswith("example.org/audit\n1\n")
    with sqlite3.connect(sqlite_path) as raw:
        names = {row[0] for row in raw.execute("SELECT key FROM log_config")}
    assert "signing_seed" not in names
    with SQLiteStore(sqlite_path) as reader:
        assert reader.verify().size == 1
        with pytest.raises(ConfigurationError, match="signing key"):
            reader.append(make_event())
    with pytest.raises(InvalidKeyError):
        SQLiteStore(sqlite_path, signing_key=nacl.signing.SigningKey.generate())
    with SQLiteStore(sqlite_path, signing_key=bytes(key)) as writer:
        assert writer.append(make_event()) == 1


def test_a_log_cannot_be_reopened_under_another_origin(sqlite_path: Path) -> None:
    SQLiteStore(sqlite_path, origin="a.example/log").close()
    with pytest.raises(ConfigurationError, match="origin"):
        SQLiteStore(sqlite_path, origin="b.example/log")


def test_opening_something_that_is_not_a_log_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no audit log"):
        SQLiteStore(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(ConfigurationError, match="not an Authchain audit log"):
        SQLiteStore(other, create=False)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigurationError):
        SQLiteStore(garbage, create=False)
