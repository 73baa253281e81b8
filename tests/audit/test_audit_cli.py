"""The `authchain audit` and `authchain keys` commands: outputs an outsider can check, and errors
that are one line on stderr with a non-zero exit."""

from __future__ import annotations

from pathlib import Path

import _rfc9162_reference as ref
import orjson
import pytest
from conftest import make_event

from authchain.audit.checkpoint import open_checkpoint
from authchain.audit.note import NoteVerifier
from authchain.audit.store.sqlite import SQLiteStore
from authchain.cli import main


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "audit.db"
    with SQLiteStore(path) as store:
        store.append_many([make_event() for _ in range(12)])
        store.append_many([make_event() for _ in range(9)])
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _vkey(db: Path, capsys: pytest.CaptureFixture[str]) -> NoteVerifier:
    code, out, _ = run(capsys, "keys", "public", "--db", str(db))
    assert code == 0
    return NoteVerifier.from_vkey(out.strip())


def test_keys_public_prints_the_vkey_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "public", "--db", str(db))
    assert (code, err) == (0, "")
    name, key_id, key = out.strip().split("+", 2)
    assert name == "authchain.local/log" and len(key_id) == 8
    assert NoteVerifier.from_vkey(out.strip()).vkey() == out.strip()


def test_checkpoint_prints_the_latest_signed_note(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "checkpoint", "--db", str(db))
    assert code == 0
    checkpoint = open_checkpoint(out, _vkey(db, capsys))
    assert checkpoint.size == 21
    assert out.startswith("authchain.local/log\n21\n")


def test_export_prints_every_entry_exactly_as_hashed(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "export", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 21
    leaves = []
    for i, line in enumerate(lines):
        record = orjson.loads(line)
        assert list(record) == ["index", "event"] and record["index"] == i
        # The event member is spliced verbatim: slicing it out of the line gives the leaf bytes.
        leaf = line.encode()[len(b'{"index":%d,"event":' % i) : -1]
        assert orjson.loads(leaf) == record["event"]
        leaves.append(leaf)
    checkpoint = open_checkpoint(
        run(capsys, "audit", "checkpoint", "--db", str(db))[1], _vkey(db, capsys)
    )
    assert ref.mth(leaves) == checkpoint.root_hash


def test_export_takes_a_range(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "export", "--db", str(db), "--start", "5", "--end", "8")
    assert code == 0
    assert [orjson.loads(line)["index"] for line in out.splitlines()] == [5, 6, 7]


def test_prove_index_prints_an_inclusion_proof_that_verifies(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "prove", "--db", str(db), "--index", "13")
    assert code == 0
    proof = orjson.loads(out)
    assert set(proof) == {"index", "size", "leaf_hash", "proof", "root"}
    assert (proof["index"], proof["size"]) == (13, 21)
    checkpoint = open_checkpoint(
        run(capsys, "audit", "checkpoint", "--db", str(db))[1], _vkey(db, capsys)
    )
    assert bytes.fromhex(proof["root"]) == checkpoint.root_hash
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert ref.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 13, 21, path, checkpoint.root_hash
    )


def test_prove_index_at_an_older_size(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "audit", "prove", "--db", str(db), "--index", "3", "--size", "12")
    proof = orjson.loads(out)
    assert code == 0 and proof["size"] == 12
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert ref.verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 3, 12, path, bytes.fromhex(proof["root"])
    )


def test_prove_consistency_prints_a_proof_that_verifies(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "prove", "--db", str(db), "--consistency", "12")
    assert code == 0
    proof = orjson.loads(out)
    assert set(proof) == {"old_size", "size", "proof", "old_root", "root"}
    assert (proof["old_size"], proof["size"]) == (12, 21)
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert ref.verify_consistency(
        12, 21, bytes.fromhex(proof["old_root"]), bytes.fromhex(proof["root"]), path
    )


def test_verify_json_reports_what_was_verified(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "audit", "verify", "--db", str(db), "--json")
    result = orjson.loads(out)
    assert code == 0 and result["verified"] is True
    assert (result["size"], result["checkpoints"]) == (21, 3)
    assert result["vkey"] == _vkey(db, capsys).vkey()


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["audit", "verify", "--db", "{missing}"], 3, "no audit log at"),
        (["audit", "checkpoint", "--db", "postgresql://db.example/audit"], 3, "PostgreSQL"),
        (["audit", "prove", "--db", "{db}", "--index", "21"], 4, "index 21 is not in the log"),
        (["audit", "prove", "--db", "{db}", "--index", "1", "--size", "99"], 4, "beyond"),
        (["audit", "prove", "--db", "{db}", "--consistency", "0"], 4, "consistency"),
        (["audit", "prove", "--db", "{db}"], 2, "exactly one of"),
        (
            ["audit", "prove", "--db", "{db}", "--index", "1", "--consistency", "2"],
            2,
            "exactly one",
        ),
        (["audit", "verify", "--db", "{db}", "--vkey", "nonsense"], 1, "verifier key"),
        (
            ["audit", "verify", "--db", "{db}", "--trusted-checkpoint", "{missing}"],
            3,
            "does not exist",
        ),
        (["keys", "public", "--db", "{missing}"], 3, "no audit log at"),
    ],
)
def test_errors_are_one_line_on_stderr_with_a_non_zero_exit(
    db: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    exit_code: int,
    message: str,
) -> None:
    filled = [a.format(db=db, missing=tmp_path / "missing.db") for a in args]
    code, out, err = run(capsys, *filled)
    assert code == exit_code
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert message in err
    assert not (tmp_path / "missing.db").exists()


def test_a_trusted_checkpoint_that_is_not_a_checkpoint_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "bogus.checkpoint"
    bogus.write_text("hello\n", encoding="utf-8")
    code, _, err = run(
        capsys, "audit", "verify", "--db", str(db), "--trusted-checkpoint", str(bogus)
    )
    assert code == 1 and "trusted checkpoint" in err


def test_large_logs_get_a_progress_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from authchain.cli import audit as audit_cli

    with audit_cli._progress(10) as small:
        assert small is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    with audit_cli._progress(audit_cli._LARGE_LOG) as piped:
        assert piped is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    with audit_cli._progress(audit_cli._LARGE_LOG) as bar:
        assert bar is not None
        bar(audit_cli._LARGE_LOG // 2)
        bar(audit_cli._LARGE_LOG)
