"""verify_log as a pure function: over entries and checkpoints from anywhere (a store, an export),
in one process or with workers, always naming the same first failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_event

from authchain.audit import verify as verify_module
from authchain.audit.checkpoint import Checkpoint, SignedCheckpoint, sign_checkpoint
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import CompactRange, leaf_hash
from authchain.audit.note import NoteSigner
from authchain.audit.store import LogEntry
from authchain.audit.store.sqlite import SQLiteStore
from authchain.audit.verify import verify_log
from authchain.errors import CheckpointError, LogIntegrityError


@pytest.fixture(scope="module")
def log(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[list[LogEntry], list[SignedCheckpoint], SQLiteStore]:
    store = SQLiteStore(tmp_path_factory.mktemp("verify") / "audit.db")
    for n in (40, 60, 1, 99):
        store.append_many([make_event() for _ in range(n)])
    return list(store.raw_entries()), list(store.checkpoints()), store


def _edit(entries: list[LogEntry], index: int, outcome: str = "failed") -> list[LogEntry]:
    edited = list(entries)
    event = edited[index].event().to_dict() | {"outcome": outcome}
    edited[index] = edited[index]._replace(leaf=AuditEvent.from_dict(event).leaf_bytes())
    return edited


def _noncanonical(entries: list[LogEntry], index: int) -> list[LogEntry]:
    edited = list(entries)
    leaf = edited[index].leaf.replace(b'","', b'", "', 1)
    edited[index] = edited[index]._replace(leaf=leaf)
    return edited


def _rehashed(entries: list[LogEntry], index: int) -> list[LogEntry]:
    """The stored leaf hash recomputed for one entry: then only the tree node above it fails."""
    edited = list(entries)
    edited[index] = edited[index]._replace(leaf_hash=leaf_hash(edited[index].leaf))
    return edited


def test_an_export_verifies_without_stored_nodes(log) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    result = verify_log(entries, checkpoints, store.verifier())
    assert (result.size, result.checkpoints) == (200, 5)
    assert result.root_hash == store.root()


def test_progress_is_reported_up_to_the_size(log, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    monkeypatch.setattr(verify_module, "_PROGRESS_EVERY", 64)
    seen: list[int] = []
    verify_log(entries, checkpoints, store.verifier(), progress=seen.append)
    assert seen == [64, 128, 192, 200]


def test_a_trusted_checkpoint_in_the_middle_of_the_log_is_checked_at_its_size(log) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    middle = checkpoints[2]
    assert middle.size == 100
    result = verify_log(entries, checkpoints, store.verifier(), trusted=[middle.text])
    assert [c.size for c in result.trusted] == [100]
    forged = [e._replace(leaf_hash=leaf_hash(e.leaf)) for e in _edit(entries, 99, "denied")]
    # Internally consistent and signed with the log's own key: only the trusted checkpoint tells.
    verify_log(forged, _resigned(forged, store), store.verifier())
    with pytest.raises(CheckpointError, match="trusted checkpoint of size 100"):
        verify_log(forged, _resigned(forged, store), store.verifier(), trusted=[middle.text])


def _resigned(entries: list[LogEntry], store: SQLiteStore) -> list[SignedCheckpoint]:
    """A checkpoint over the given entries, signed with the log's key (what a forger holds)."""
    signer = store._signer
    assert signer is not None
    compact = CompactRange()
    compact.extend([e.leaf_hash for e in entries])
    return [sign_checkpoint(Checkpoint(store.origin, len(entries), compact.root()), signer)]


def test_checkpoints_out_of_order_are_refused(log) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    with pytest.raises(CheckpointError, match="reordered or duplicated"):
        verify_log(entries, [checkpoints[0], checkpoints[2], checkpoints[1]], store.verifier())
    with pytest.raises(CheckpointError, match="reordered or duplicated"):
        verify_log(entries, [checkpoints[0], checkpoints[1], checkpoints[1]], store.verifier())


def test_a_log_without_checkpoints_or_with_an_unsigned_tail_is_refused(log) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    with pytest.raises(CheckpointError, match="no signed checkpoint"):
        verify_log(entries, [], store.verifier())
    with pytest.raises(CheckpointError, match="entries 101..199 are not covered"):
        verify_log(entries, checkpoints[:-1], store.verifier())


def test_a_checkpoint_of_another_log_is_refused(log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    import nacl.signing

    other = NoteSigner("other.example/log", nacl.signing.SigningKey.generate())
    foreign = sign_checkpoint(Checkpoint("other.example/log", 40, checkpoints[1].root_hash), other)
    with pytest.raises(CheckpointError, match="stored checkpoint #2"):
        verify_log(entries, [checkpoints[0], foreign, *checkpoints[2:]], store.verifier())


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        (lambda e: _edit(e, 150), 150),
        (lambda e: _noncanonical(e, 150), 150),
        (lambda e: _noncanonical(_edit(e, 20), 150), 20),
        (lambda e: _edit(_noncanonical(e, 20), 150), 20),
        (lambda e: _edit(_noncanonical(e, 151), 150), 150),
        (lambda e: _noncanonical(_edit(e, 150), 150), 150),
        (lambda e: _noncanonical(e, 199), 199),
        (lambda e: e[:120] + e[121:], 120),
        (lambda e: _rehashed(_noncanonical(e, 37), 37), 37),
    ],
    ids=[
        "edit",
        "non-canonical",
        "edit before non-canonical",
        "non-canonical before edit",
        "edit just before non-canonical",
        "same entry",
        "last entry",
        "gap",
        "bad event whose stored node fails",
    ],
)
@pytest.mark.parametrize("workers", [0, 2])
def test_the_first_bad_entry_is_named_with_or_without_workers(
    log,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    tamper,  # type: ignore[no-untyped-def]
    first_bad: int,
    workers: int,
) -> None:
    entries, checkpoints, store = log
    # Small chunks, so the failures fall in different chunks, sent and not yet sent.
    monkeypatch.setattr(verify_module, "_CHUNK", 16)
    with pytest.raises(LogIntegrityError) as caught:
        store_nodes = store.nodes
        verify_log(
            tamper(entries), checkpoints, store.verifier(), nodes=store_nodes, workers=workers
        )
    assert caught.value.index == first_bad


def test_parallel_verification_of_an_intact_log(log, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    entries, checkpoints, store = log
    monkeypatch.setattr(verify_module, "_CHUNK", 16)
    result = verify_log(entries, checkpoints, store.verifier(), nodes=store.nodes, workers=2)
    assert result.size == 200


@pytest.fixture(scope="module")
def many_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    """A log written one append at a time: a checkpoint per entry, as a quiet server makes."""
    store = SQLiteStore(tmp_path_factory.mktemp("many") / "audit.db")
    for _ in range(120):
        store.append(make_event())
    return store


def _first_failure(
    entries: list[LogEntry], checkpoints: list[SignedCheckpoint], store: SQLiteStore, workers: int
) -> str:
    with pytest.raises(LogIntegrityError) as caught:
        verify_log(entries, checkpoints, store.verifier(), nodes=store.nodes, workers=workers)
    return caught.value.message


@pytest.mark.parametrize("bad", [1, 37, 120])
def test_a_bad_checkpoint_signature_is_named_the_same_with_workers(
    many_checkpoints: SQLiteStore, monkeypatch: pytest.MonkeyPatch, bad: int
) -> None:
    monkeypatch.setattr(verify_module, "_CHUNK", 16)
    monkeypatch.setattr(verify_module, "_SIGNATURE_BATCH", 8)
    store = many_checkpoints
    entries = list(store.raw_entries())
    checkpoints = list(store.checkpoints())
    assert len(checkpoints) == 121
    assert verify_log(entries, checkpoints, store.verifier(), workers=2).checkpoints == 121
    forged = list(checkpoints)
    text = forged[bad].text
    forged[bad] = SignedCheckpoint.parse(
        text[:-10] + ("A" if text[-10] != "A" else "B") + text[-9:]
    )
    sequential = _first_failure(entries, forged, store, 0)
    assert f"stored checkpoint #{bad + 1} (size {bad})" in sequential
    assert _first_failure(entries, forged, store, 2) == sequential
    # An earlier bad entry is still the first failure named.
    earlier = _noncanonical(entries, bad // 2)
    assert _first_failure(earlier, forged, store, 2) == _first_failure(earlier, forged, store, 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_a_bad_event_inside_a_mismatched_checkpoints_range_is_named_first(
    log,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    workers: int,
) -> None:
    # The checkpoint of size 200 fails (entry 150 changed, hashes recomputed), but the stream meets
    # the non-canonical entry 170 before it reaches size 200: 170 is the first failure.
    entries, checkpoints, store = log
    monkeypatch.setattr(verify_module, "_CHUNK", 16)
    tampered = _noncanonical(_edit(entries, 150), 170)
    rehashed = [e._replace(leaf_hash=leaf_hash(e.leaf)) for e in tampered]
    with pytest.raises(LogIntegrityError) as caught:
        verify_log(rehashed, checkpoints, store.verifier(), workers=workers)
    assert caught.value.index == 170
