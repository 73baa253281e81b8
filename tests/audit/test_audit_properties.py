"""Property: every appended entry has a verifying inclusion proof against every later checkpoint,
and every checkpoint is consistent with the next, checked with the RFC's own algorithms."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import _rfc9162_reference as ref
from conftest import STORES, make_event, open_test_store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authchain.audit.checkpoint import open_checkpoint
from authchain.audit.note import NoteVerifier


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(STORES),
    batches=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=6),
)
def test_every_entry_is_provable_against_every_later_checkpoint(
    kind: str, batches: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp, open_test_store(kind, Path(tmp)) as store:
        appended: list[tuple[int, bytes]] = []
        for n in batches:
            events = [make_event() for _ in range(n)]
            for index, event in zip(store.append_many(events), events, strict=True):
                appended.append((index, event.leaf_bytes()))
        verifier = NoteVerifier.from_vkey(store.verifier_key())
        checkpoints = [open_checkpoint(c.text, verifier) for c in store.checkpoints()]
        assert [c.size for c in checkpoints] == [0, *itertools.accumulate(batches)]
        for checkpoint in checkpoints:
            for index, leaf in appended[: checkpoint.size]:
                proof = store.inclusion_proof(index, checkpoint.size)
                assert ref.verify_inclusion(
                    ref.leaf_hash(leaf),
                    index,
                    checkpoint.size,
                    list(proof.path),
                    checkpoint.root_hash,
                )
        for old, new in zip(checkpoints[1:], checkpoints[2:], strict=False):
            proof = store.consistency_proof(old.size, new.size)
            assert ref.verify_consistency(
                old.size, new.size, old.root_hash, new.root_hash, list(proof.path)
            )
