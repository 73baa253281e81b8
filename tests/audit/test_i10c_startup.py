"""Issue 10, point 14: the authority verifies its log before it appends, and refuses a broken one.

Each test breaks the SQLite file the way an insider with file access would (an SQL UPDATE or
DELETE behind the store's back), then "restarts": ``Authority(...)`` raises ``LogIntegrityError``
naming the first bad index, and ``authchain serve`` exits non-zero with one line. The check is
incremental: a start remembers the checkpoint it verified, and the next one recomputes only what
was appended since (``full_below=0`` forces that path on these small logs)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from conftest import make_event

from authchain.audit.startup import VERIFIED_CHECKPOINT, verify_at_start
from authchain.audit.store import open_store
from authchain.authority import Authority
from authchain.cli import main
from authchain.errors import LogIntegrityError


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


def _grow(db: Path, count: int) -> int:
    """Append ``count`` events in batches of 3 (several checkpoints); return the new size."""
    with open_store(str(db)) as store:
        for first in range(0, count, 3):
            store.append_many([make_event() for _ in range(min(3, count - first))])
        return store.size()


def _sql(db: Path, statement: str, *params: object) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute(statement, params).rowcount >= 1
        conn.commit()
    finally:
        conn.close()


def _edit_leaf(db: Path, index: int) -> None:
    conn = sqlite3.connect(db)
    try:
        (leaf,) = conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        edited = bytes(leaf).replace(b'"crm:read"', b'"crm:reaD"')
        assert edited != bytes(leaf)
        conn.execute("UPDATE entries SET leaf = ? WHERE idx = ?", (edited, index))
        conn.commit()
    finally:
        conn.close()


def _start(db: Path, **kwargs: int) -> tuple[int, int]:
    with open_store(str(db)) as store:
        check = verify_at_start(store, **kwargs)
        return check.size, check.since


# --------------------------------------------------------------------------------------------------
# Honest restarts.


def test_a_restart_recomputes_only_what_was_appended_since_the_last_verified_start(
    db: Path,
) -> None:
    first = _grow(db, 10)
    assert _start(db, full_below=0) == (first, 0)  # nothing remembered: the whole log
    second = _grow(db, 7)
    assert _start(db, full_below=0) == (second, first)  # from the remembered size
    assert _start(db, full_below=0) == (second, second)  # nothing new
    with open_store(str(db)) as store:
        assert store.get_meta(VERIFIED_CHECKPOINT) == store.latest_checkpoint().text


def test_an_authority_verifies_its_log_at_construction_and_remembers_it(db: Path) -> None:
    _grow(db, 5)
    with open_store(str(db)) as store:
        Authority(store)
        assert store.get_meta(VERIFIED_CHECKPOINT) == store.latest_checkpoint().text


# --------------------------------------------------------------------------------------------------
# Broken logs: nothing is appended on top of them.


def test_an_edited_entry_stops_the_authority_at_its_index(db: Path) -> None:
    _grow(db, 10)
    _edit_leaf(db, 4)
    with open_store(str(db)) as store, pytest.raises(LogIntegrityError) as caught:
        Authority(store)
    assert caught.value.index == 4
    assert "does not verify at entry 4" in caught.value.message
    assert "refusing to append" in caught.value.message
    with open_store(str(db)) as store:
        assert store.size() == 10  # nothing was appended


def test_an_entry_edited_after_a_verified_start_is_found_at_the_next(db: Path) -> None:
    _grow(db, 6)
    _start(db, full_below=0)
    _grow(db, 6)
    _edit_leaf(db, 8)  # appended since the verified start
    with pytest.raises(LogIntegrityError) as caught:
        _start(db, full_below=0)
    assert caught.value.index == 8


def test_a_small_log_is_verified_whole_so_an_old_edit_is_found_too(db: Path) -> None:
    _grow(db, 6)
    _start(db)
    _grow(db, 3)
    _edit_leaf(db, 1)  # before the remembered size
    with pytest.raises(LogIntegrityError) as caught:
        _start(db)
    assert caught.value.index == 1


def test_a_tree_node_edited_after_a_verified_start_is_found(db: Path) -> None:
    _grow(db, 4)
    _start(db, full_below=0)
    _grow(db, 8)
    # The level-1 node over entries 8 and 9, completed after the verified start.
    _sql(db, "UPDATE nodes SET hash = zeroblob(32) WHERE key = ?", (1 << 48) | 4)
    with pytest.raises(LogIntegrityError) as caught:
        _start(db, full_below=0)
    assert caught.value.index == 8


def test_a_tree_edge_that_is_not_the_verified_one_is_refused(db: Path) -> None:
    _grow(db, 8)
    _start(db, full_below=0)
    _grow(db, 3)
    _sql(db, "UPDATE nodes SET hash = zeroblob(32) WHERE key = ?", (3 << 48) | 0)
    with pytest.raises(LogIntegrityError):
        _start(db, full_below=0)


def test_entries_cut_off_below_the_verified_size_are_refused(db: Path) -> None:
    size = _grow(db, 9)
    _start(db, full_below=0)
    # Remove the last three entries with their checkpoints, as if they had never been written.
    _sql(db, "DELETE FROM entries WHERE idx >= ?", size - 3)
    _sql(db, "DELETE FROM checkpoints WHERE size > ?", size - 3)
    with pytest.raises(LogIntegrityError) as caught:
        _start(db, full_below=0)
    assert caught.value.index == size - 3
    assert "were removed" in caught.value.message


def test_an_unsigned_tail_is_refused(db: Path) -> None:
    size = _grow(db, 9)
    _start(db, full_below=0)
    _sql(db, "DELETE FROM checkpoints WHERE size = ?", size)
    with pytest.raises(LogIntegrityError) as caught:
        _start(db, full_below=0)
    assert caught.value.index == size - 3  # the last signed size


def test_a_remembered_checkpoint_that_does_not_verify_is_refused(db: Path) -> None:
    _grow(db, 3)
    _start(db, full_below=0)
    conn = sqlite3.connect(db)
    try:
        (note,) = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (VERIFIED_CHECKPOINT,)
        ).fetchone()
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = ?",
            (note.replace("\n3\n", "\n2\n"), VERIFIED_CHECKPOINT),
        )
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(LogIntegrityError, match="remembered from the last verified start"):
        _start(db, full_below=0)


def test_serve_on_a_broken_log_exits_non_zero_with_one_line(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _grow(db, 6)
    _edit_leaf(db, 2)
    assert main(["serve", "--db", str(db), "--port", "8799"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(
        "authchain: error: log_integrity: the audit log does not verify at entry 2"
    )
