"""The LogStore contract. Runs against every store in conftest.STORES (SQLite now; the PostgreSQL
store joins by adding its parameter there), so both pass one suite."""

from __future__ import annotations

import threading
from pathlib import Path

import _rfc9162_reference as ref
import pytest
from conftest import make_event, open_test_store

from authchain._encoding import sha256_b64url
from authchain.audit.checkpoint import open_checkpoint
from authchain.audit.merkle import EMPTY_ROOT
from authchain.audit.note import NoteVerifier
from authchain.audit.store import LogStore
from authchain.errors import DuplicateEventError, NotFoundError, StorageError


def test_a_new_store_is_an_empty_signed_log(store: LogStore) -> None:
    assert store.size() == 0
    assert store.root() == EMPTY_ROOT
    latest = store.latest_checkpoint()
    assert (latest.size, latest.root_hash) == (0, EMPTY_ROOT)
    verifier = NoteVerifier.from_vkey(store.verifier_key())
    assert open_checkpoint(latest.text, verifier).size == 0
    assert store.verify().size == 0


def test_appends_are_sequenced_and_read_back_exactly(store: LogStore) -> None:
    events = [make_event() for _ in range(5)]
    assert [store.append(e) for e in events[:2]] == [0, 1]
    assert store.append_many(events[2:]) == [2, 3, 4]
    assert store.size() == 5
    for i, event in enumerate(events):
        assert store.get(i) == event
        assert store.get_leaf(i) == event.leaf_bytes()
    assert [(i, e) for i, e in store.entries(1, 4)] == [(i, events[i]) for i in (1, 2, 3)]
    assert [e.index for e in store.raw_entries(3)] == [3, 4]
    assert [e.leaf_hash for e in store.raw_entries()] == [
        ref.leaf_hash(e.leaf_bytes()) for e in events
    ]


def test_every_batch_is_integrated_and_checkpointed(store: LogStore) -> None:
    store.append_many([make_event() for _ in range(3)])
    store.append(make_event())
    sizes = [c.size for c in store.checkpoints()]
    assert sizes == [0, 3, 4]
    leaves = [e.leaf for e in store.raw_entries()]
    verifier = NoteVerifier.from_vkey(store.verifier_key())
    for checkpoint in store.checkpoints():
        assert open_checkpoint(checkpoint.text, verifier).root_hash == ref.mth(
            leaves[: checkpoint.size]
        )
    assert store.latest_checkpoint().size == 4
    assert store.checkpoint_at(3) is not None and store.checkpoint_at(2) is None


def test_lookups_by_id_token_and_task(store: LogStore) -> None:
    token = sha256_b64url("the issued token")
    issued = make_event(kind="hop.granted", token=token, txn="task-a")
    used = make_event(kind="action.invoked", token=token, txn="task-a", outcome="succeeded")
    other = make_event(kind="task.started", txn="task-b")
    store.append_many([issued, other, used])
    assert store.find_by_id(used.id) == (2, used)
    assert store.find_by_id(make_event().id) is None
    assert store.find_by_token(token) == [(0, issued), (2, used)]
    assert store.find_by_token(token, kinds={"hop.granted", "task.started"}) == [(0, issued)]
    assert store.find_by_token(sha256_b64url("never issued")) == []
    assert store.events_for_task("task-a") == [(0, issued), (2, used)]
    assert store.events_for_task("task-c") == []


def test_roots_and_proofs_agree_with_the_rfc(store: LogStore) -> None:
    events = [make_event() for _ in range(23)]
    store.append_many(events[:10])
    store.append_many(events[10:])
    leaves = [e.leaf_bytes() for e in events]
    for size in range(1, 24):
        root = ref.mth(leaves[:size])
        assert store.root(size) == root
        for index in range(size):
            proof = store.inclusion_proof(index, size)
            assert proof.root == root
            assert ref.verify_inclusion(
                ref.leaf_hash(leaves[index]), index, size, list(proof.path), root
            )
        for old in range(1, size):
            c = store.consistency_proof(old, size)
            assert ref.verify_consistency(old, size, ref.mth(leaves[:old]), root, list(c.path))


def test_inclusion_is_verified_against_the_signed_checkpoint(store: LogStore) -> None:
    store.append_many([make_event() for _ in range(6)])
    store.append_many([make_event() for _ in range(3)])
    proof = store.verify_inclusion(4)
    assert proof.size == 9
    assert store.verify_inclusion(4, 6).size == 6


def test_out_of_range_reads_and_proofs_are_not_found(store: LogStore) -> None:
    store.append(make_event())
    with pytest.raises(NotFoundError):
        store.get(1)
    with pytest.raises(NotFoundError):
        store.inclusion_proof(1)
    with pytest.raises(NotFoundError):
        store.inclusion_proof(0, 2)
    with pytest.raises(NotFoundError):
        store.consistency_proof(0)
    with pytest.raises(NotFoundError):
        store.consistency_proof(2)


def test_concurrent_appends_are_all_durable_once_each(store: LogStore) -> None:
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            event = make_event()
            index = store.append(event)
            with lock:
                results.append((index, event.id))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(i for i, _ in results) == list(range(200))
    for index, event_id in results:
        assert store.get(index).id == event_id
    assert store.latest_checkpoint().size == 200
    assert store.verify().size == 200


def test_a_duplicate_event_is_refused_and_appends_nothing(store: LogStore) -> None:
    first = make_event()
    store.append(first)
    with pytest.raises(DuplicateEventError):
        store.append(first)
    with pytest.raises(DuplicateEventError):
        store.append_many([make_event(), first])
    fresh = make_event()
    with pytest.raises(DuplicateEventError):
        store.append_many([fresh, fresh])
    assert store.size() == 1
    assert store.append(fresh) == 1
    assert store.verify().size == 2


def test_a_duplicate_does_not_fail_the_others_in_its_group_commit(store: LogStore) -> None:
    dup = make_event()
    store.append(dup)
    outcomes: list[object] = []

    def append(event: object) -> None:
        try:
            outcomes.append(store.append(event))  # type: ignore[arg-type]
        except DuplicateEventError as exc:
            outcomes.append(exc)

    threads = [
        threading.Thread(target=append, args=(e,)) for e in [dup, *[make_event() for _ in range(6)]]
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, DuplicateEventError) for o in outcomes) == 1
    assert sorted(o for o in outcomes if isinstance(o, int)) == list(range(1, 7))


def test_meta_values_persist_and_can_be_replaced(store: LogStore) -> None:
    assert store.get_meta("authority.keys") is None
    store.put_meta("authority.keys", '{"v": 1}')
    store.put_meta("authority.keys", '{"v": 2}')
    assert store.get_meta("authority.keys") == '{"v": 2}'


def test_a_reopened_store_keeps_its_log_key_and_continues(store_kind: str, tmp_path: Path) -> None:
    first = open_test_store(store_kind, tmp_path)
    events = [make_event() for _ in range(5)]
    first.append_many(events)
    vkey = first.verifier_key()
    first.put_meta("k", "v")
    first.close()
    with open_test_store(store_kind, tmp_path) as again:
        assert again.verifier_key() == vkey
        assert again.get_meta("k") == "v"
        assert again.get(4) == events[4]
        assert again.append(make_event()) == 5
        assert again.verify().size == 6


def test_a_closed_store_refuses_appends(store_kind: str, tmp_path: Path) -> None:
    closed = open_test_store(store_kind, tmp_path)
    closed.close()
    with pytest.raises(StorageError):
        closed.append(make_event())
