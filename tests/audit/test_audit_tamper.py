"""Tampering with a copy of a real store, one test per attack. `authchain audit verify` must exit
non-zero and name the first bad entry or checkpoint; the strongest attacks (a clean truncation, a
history rewritten and re-signed with the log's own key) need a checkpoint kept outside the store."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from conftest import make_event

from authchain import jcs
from authchain.audit.checkpoint import Checkpoint, sign_checkpoint
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import CompactRange, leaf_hash
from authchain.audit.note import NoteSigner
from authchain.audit.store.sqlite import SQLiteStore
from authchain.cli import main

BATCHES = (30, 1, 19, 25, 25)  # checkpoints at sizes 0, 30, 31, 50, 75, 100
SIZE = sum(BATCHES)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("original") / "audit.db"
    with SQLiteStore(path) as store:
        for n in BATCHES:
            store.append_many([make_event() for _ in range(n)])
    return path


@pytest.fixture
def db(original: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "audit.db"
    shutil.copyfile(original, copy)
    return copy


@pytest.fixture
def trusted(original: Path, tmp_path: Path) -> Path:
    """The latest checkpoint, saved outside the store before the attack (as a witness would)."""
    with SQLiteStore(original, create=False) as store:
        text = store.latest_checkpoint().text
    path = tmp_path / "trusted.checkpoint"
    path.write_text(text, encoding="utf-8")
    return path


def verify(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:  # noqa: E501
    code = main(["audit", "verify", "--db", str(db), *extra])
    captured = capsys.readouterr()
    if code:
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in captured.err
        return code, lines[0]
    return code, captured.out


@pytest.fixture
def sql(db: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db, isolation_level=None)
    yield conn
    conn.close()


def _event_at(conn: sqlite3.Connection, index: int) -> dict[str, object]:
    leaf = conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()[0]
    return dict(orjson.loads(leaf))


def _replace_event(conn: sqlite3.Connection, index: int, event: dict[str, object]) -> bytes:
    leaf = AuditEvent.from_dict(event).leaf_bytes()
    conn.execute("UPDATE entries SET leaf = ? WHERE idx = ?", (leaf, index))
    return leaf


def _rebuild_tree(conn: sqlite3.Connection) -> None:
    """What an attacker who knows the format does next: recompute leaf hashes and every node."""
    compact = CompactRange()
    conn.execute("BEGIN")
    conn.execute("DELETE FROM nodes")
    for idx, leaf in conn.execute("SELECT idx, leaf FROM entries ORDER BY idx").fetchall():
        h = leaf_hash(leaf)
        conn.execute("UPDATE entries SET leaf_hash = ? WHERE idx = ?", (h, idx))
        for level, index, value in compact.extend([h]):
            conn.execute("INSERT INTO nodes VALUES (?, ?)", ((level << 48) | index, value))
    conn.execute("COMMIT")


def test_untouched_copy_verifies(
    db: Path, trusted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = verify(db, capsys, "--trusted-checkpoint", str(trusted))
    assert code == 0
    assert f"verified {SIZE} entries and 6 signed checkpoints" in out


def test_edited_event_is_caught_at_its_index(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event_at(sql, 37) | {"outcome": "denied"}
    _replace_event(sql, 37, event)
    code, err = verify(db, capsys)
    assert code == 1
    assert "entry 37:" in err and "leaf hash" in err


def test_edited_decision_effect_is_caught_even_with_its_leaf_hash_recomputed(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event_at(sql, 37)
    event["decision"] = dict(event["decision"]) | {"effect": "deny"}  # type: ignore[arg-type]
    leaf = _replace_event(sql, 37, event)
    sql.execute("UPDATE entries SET leaf_hash = ? WHERE idx = 37", (leaf_hash(leaf),))
    code, err = verify(db, capsys)
    assert code == 1
    assert "entries 36..37" in err and "tree node" in err


def test_edited_policy_set_hash_with_the_whole_tree_rebuilt_is_caught_by_the_signed_checkpoint(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event_at(sql, 37)
    event["decision"] = dict(event["decision"]) | {"policy_set_hash": "0" * 64}  # type: ignore[arg-type]
    _replace_event(sql, 37, event)
    _rebuild_tree(sql)
    code, err = verify(db, capsys)
    assert code == 1
    # The last good checkpoint is at 31, the first covering entry 37 is at 50.
    assert "checkpoint #4 (size 50)" in err and "entries 31..49" in err


def test_edited_policy_ids_are_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event_at(sql, 64)
    event["decision"] = dict(event["decision"]) | {"policies": ["a-more-permissive-policy"]}  # type: ignore[arg-type]
    _replace_event(sql, 64, event)
    code, err = verify(db, capsys)
    assert code == 1 and "entry 64:" in err


def test_a_non_canonical_rewrite_of_the_same_event_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = sql.execute("SELECT leaf FROM entries WHERE idx = 12").fetchone()[0]
    sql.execute("UPDATE entries SET leaf = ? WHERE idx = 12", (leaf.replace(b'","', b'", "', 1),))
    code, err = verify(db, capsys)
    assert code == 1 and "entry 12:" in err and "canonical" in err


def test_deleted_middle_row_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sql.execute("DELETE FROM entries WHERE idx = 50")
    code, err = verify(db, capsys)
    assert code == 1 and "entry 50 is missing" in err


def test_deleted_tail_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sql.execute("DELETE FROM entries WHERE idx >= 90")
    code, err = verify(db, capsys)
    assert code == 1 and "entries 90..99 were removed" in err


def test_tail_deleted_with_its_nodes_but_not_its_checkpoints_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sql.execute("DELETE FROM entries WHERE idx >= 75")
    sql.execute("DELETE FROM nodes")
    _rebuild_tree(sql)
    code, err = verify(db, capsys)
    assert code == 1 and "entries 75..99 were removed" in err


def test_a_cleanly_truncated_log_is_caught_by_a_trusted_checkpoint(
    db: Path, trusted: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    # Cut at a checkpointed size and remove everything after it: what remains is a valid shorter
    # log signed by the log's key, so only a checkpoint kept elsewhere can tell.
    sql.execute("DELETE FROM entries WHERE idx >= 75")
    sql.execute("DELETE FROM checkpoints WHERE size > 75")
    _rebuild_tree(sql)
    assert verify(db, capsys)[0] == 0
    code, err = verify(db, capsys, "--trusted-checkpoint", str(trusted))
    assert code == 1 and "truncated" in err and "holds 75" in err


def test_swapped_rows_are_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = {
        idx: row
        for idx, *row in sql.execute(
            "SELECT idx, event_id, txn, token, leaf_hash, leaf FROM entries WHERE idx IN (21, 60)"
        )
    }
    sql.execute("BEGIN")
    sql.execute("UPDATE entries SET event_id = 'moving' || idx WHERE idx IN (21, 60)")
    for idx, other in ((21, 60), (60, 21)):
        sql.execute(
            "UPDATE entries SET event_id = ?, txn = ?, token = ?, leaf_hash = ?, leaf = ? "
            "WHERE idx = ?",
            (*rows[other], idx),
        )
    sql.execute("COMMIT")
    code, err = verify(db, capsys)
    # The whole rows moved, hashes included: the first tree node over them no longer matches.
    assert code == 1 and "entries 20..21" in err


def test_swapped_events_are_caught_at_the_first_index(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    a = sql.execute("SELECT leaf FROM entries WHERE idx = 21").fetchone()[0]
    b = sql.execute("SELECT leaf FROM entries WHERE idx = 60").fetchone()[0]
    sql.execute("UPDATE entries SET leaf = ? WHERE idx = 21", (b,))
    sql.execute("UPDATE entries SET leaf = ? WHERE idx = 60", (a,))
    code, err = verify(db, capsys)
    assert code == 1 and "entry 21:" in err


def test_edited_tree_node_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sql.execute("UPDATE nodes SET hash = zeroblob(32) WHERE key = ?", ((2 << 48) | 5,))
    code, err = verify(db, capsys)
    assert code == 1 and "entries 20..23" in err


def test_edited_checkpoint_is_caught(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    note = sql.execute("SELECT note FROM checkpoints WHERE size = 50").fetchone()[0]
    sql.execute(
        "UPDATE checkpoints SET note = ? WHERE size = 50", (note.replace("\n50\n", "\n49\n"),)
    )
    code, err = verify(db, capsys)
    assert code == 1 and "checkpoint" in err and "50" in err


def test_the_first_of_two_edits_is_the_one_named(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    for index in (80, 44):
        _replace_event(sql, index, _event_at(sql, index) | {"outcome": "failed"})
    code, err = verify(db, capsys)
    assert code == 1 and "entry 44:" in err


def _forge_history(db: Path, signing_seed: bytes | None) -> None:
    """Rewrite the whole log (one event's decision flipped) and re-sign every checkpoint."""
    with sqlite3.connect(db) as conn:
        leaves = [row[0] for row in conn.execute("SELECT leaf FROM entries ORDER BY idx")]
        origin = conn.execute("SELECT value FROM log_config WHERE key = 'origin'").fetchone()[0]
    events = [AuditEvent.from_leaf(leaf) for leaf in leaves]
    forged = events[33].to_dict()
    forged["decision"] = forged["decision"] | {"effect": "deny", "reasons": ["nobody allowed it"]}
    events[33] = AuditEvent.from_dict(forged)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    with SQLiteStore(db, origin=origin, signing_key=signing_seed) as store:
        start = 0
        for n in BATCHES:
            store.append_many(events[start : start + n])
            start += n


def test_history_rewritten_and_resigned_with_the_log_key_is_caught_by_a_trusted_checkpoint(
    db: Path, trusted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(db) as conn:
        seed = conn.execute("SELECT value FROM log_config WHERE key = 'signing_seed'").fetchone()[0]
    _forge_history(db, seed)
    # Signed by the real key and internally consistent: the store alone cannot tell.
    assert verify(db, capsys)[0] == 0
    code, err = verify(db, capsys, "--trusted-checkpoint", str(trusted))
    assert code == 1 and f"trusted checkpoint of size {SIZE}" in err and "rewritten" in err


def test_history_rewritten_under_a_new_key_is_caught_by_a_trusted_checkpoint(
    db: Path, trusted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vkey_before = main(["keys", "public", "--db", str(db)])
    original_vkey = capsys.readouterr().out.strip()
    assert vkey_before == 0
    _forge_history(db, None)
    code, err = verify(db, capsys, "--trusted-checkpoint", str(trusted))
    assert code == 1 and "does not verify under this log's key" in err
    code, err = verify(db, capsys, "--vkey", original_vkey)
    assert code == 1 and "stored checkpoint #1 (size 0) does not verify" in err


def test_resigning_needs_the_key_the_verifier_trusts(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    # An attacker without the key who rewrites an event and re-signs checkpoints with their own
    # key, keeping the stored public key, fails on the first re-signed checkpoint.
    import nacl.signing

    event = _event_at(sql, 5) | {"outcome": "denied"}
    _replace_event(sql, 5, event)
    _rebuild_tree(sql)
    origin = sql.execute("SELECT value FROM log_config WHERE key = 'origin'").fetchone()[0]
    impostor = NoteSigner(origin, nacl.signing.SigningKey.generate())
    leaves = [row[0] for row in sql.execute("SELECT leaf FROM entries ORDER BY idx")]
    compact = CompactRange()
    compact.extend([leaf_hash(x) for x in leaves[:30]])
    note = sign_checkpoint(Checkpoint(origin, 30, compact.root()), impostor).text
    sql.execute("UPDATE checkpoints SET note = ? WHERE size = 30", (note,))
    code, err = verify(db, capsys)
    assert code == 1 and "checkpoint #2 (size 30) does not verify" in err


def test_parallel_verification_names_the_same_first_bad_index(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    leaf = sql.execute("SELECT leaf FROM entries WHERE idx = 12").fetchone()[0]
    sql.execute("UPDATE entries SET leaf = ? WHERE idx = 12", (leaf.replace(b'","', b'", "', 1),))
    _replace_event(sql, 40, _event_at(sql, 40) | {"outcome": "failed"})
    assert verify(db, capsys, "--jobs", "0")[1] == verify(db, capsys, "--jobs", "2")[1]
    assert "entry 12:" in verify(db, capsys, "--jobs", "2")[1]


def test_jcs_is_what_the_tamper_helpers_write() -> None:
    # The attacks above write valid canonical events, so what verify catches is the tampering,
    # not a formatting slip of the test.
    event = make_event()
    assert AuditEvent.from_dict(event.to_dict()).leaf_bytes() == jcs.canonicalize(event.to_dict())


def test_a_garbled_checkpoint_row_is_named_with_or_without_workers(
    db: Path, sql: sqlite3.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    sql.execute("UPDATE checkpoints SET note = 'garbage' WHERE size = 75")
    _replace_event(sql, 80, _event_at(sql, 80) | {"outcome": "failed"})
    code, err = verify(db, capsys, "--jobs", "0")
    assert code == 1 and "checkpoint of size 75 is malformed" in err
    assert verify(db, capsys, "--jobs", "2") == (code, err)
