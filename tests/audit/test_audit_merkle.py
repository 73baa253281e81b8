"""RFC 9162 section 2.1: the CT reference vectors, and every proof up to size 64 checked by an
independent verifier written from the RFC (``_rfc9162_reference``)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import _rfc9162_reference as ref
import pytest

from authchain.audit import merkle
from authchain.audit.merkle import CompactRange, NodeKey
from authchain.errors import NotFoundError, ProofError

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc9162_ct_merkle.json").read_text(encoding="utf-8")
)
CT_LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]


class ReferenceNodes:
    """Complete-subtree hashes computed by the RFC's recursive MTH, not by the implementation."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self.reads = 0

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        self.reads += len(keys)
        out = []
        for level, index in keys:
            start, end = index << level, (index + 1) << level
            if end > len(self.leaves):
                raise NotFoundError(f"node {(level, index)} is not complete")
            out.append(ref.mth(self.leaves[start:end]))
        return out


def test_ct_vector_roots_of_every_prefix() -> None:
    hashes = [merkle.leaf_hash(leaf) for leaf in CT_LEAVES]
    for size, root in enumerate(VECTORS["roots"]):
        assert merkle.root_from_leaf_hashes(hashes[:size]).hex() == root


def test_ct_vector_node_hashes_are_the_nodes_integration_writes() -> None:
    compact = CompactRange()
    written = {(0, i): merkle.leaf_hash(leaf) for i, leaf in enumerate(CT_LEAVES)}
    for i in range(len(CT_LEAVES)):
        for level, index, value in compact.extend([written[(0, i)]]):
            written[(level, index)] = value
    expected = {
        (level, index): bytes.fromhex(h)
        for level, row in enumerate(VECTORS["node_hashes"])
        for index, h in enumerate(row)
    }
    assert written == expected


@pytest.mark.parametrize(
    "case", VECTORS["inclusion_proofs"], ids=lambda c: f"{c['index']}/{c['size']}"
)
def test_ct_vector_inclusion_proofs(case: dict[str, object]) -> None:
    proof = merkle.inclusion_proof(ReferenceNodes(CT_LEAVES), case["index"], case["size"])  # type: ignore[arg-type]
    assert [h.hex() for h in proof.path] == case["proof"]
    assert proof.root.hex() == VECTORS["roots"][case["size"]]  # type: ignore[index]
    proof.verify()


@pytest.mark.parametrize(
    "case", VECTORS["consistency_proofs"], ids=lambda c: f"{c['old_size']}/{c['size']}"
)
def test_ct_vector_consistency_proofs(case: dict[str, object]) -> None:
    proof = merkle.consistency_proof(ReferenceNodes(CT_LEAVES), case["old_size"], case["size"])  # type: ignore[arg-type]
    assert [h.hex() for h in proof.path] == case["proof"]
    proof.verify()


def _leaves(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


def test_every_inclusion_proof_up_to_64_verifies_with_the_rfc_algorithm() -> None:
    leaves = _leaves(64)
    nodes = ReferenceNodes(leaves)
    for size in range(1, 65):
        root = ref.mth(leaves[:size])
        assert merkle.root_at(nodes, size) == root
        for index in range(size):
            proof = merkle.inclusion_proof(nodes, index, size)
            assert proof.leaf_hash == ref.leaf_hash(leaves[index])
            assert proof.root == root
            assert ref.verify_inclusion(proof.leaf_hash, index, size, list(proof.path), root)
            merkle.verify_inclusion(proof.leaf_hash, index, size, proof.path, root)


def test_every_consistency_proof_up_to_64_verifies_with_the_rfc_algorithm() -> None:
    leaves = _leaves(64)
    nodes = ReferenceNodes(leaves)
    for new in range(1, 65):
        new_root = ref.mth(leaves[:new])
        for old in range(1, new + 1):
            proof = merkle.consistency_proof(nodes, old, new)
            old_root = ref.mth(leaves[:old])
            assert (proof.old_root, proof.root) == (old_root, new_root)
            if old == new:
                assert proof.path == ()
            else:
                assert ref.verify_consistency(old, new, old_root, new_root, list(proof.path))
            merkle.verify_consistency(old, new, old_root, new_root, proof.path)


def test_inclusion_verification_refuses_every_corruption() -> None:
    leaves = _leaves(13)
    nodes = ReferenceNodes(leaves)
    for index in range(13):
        p = merkle.inclusion_proof(nodes, index, 13)
        path = list(p.path)
        bad_paths = [path[:-1], [*path, p.root], [p.root, *path]]
        for i in range(len(path)):
            flipped = list(path)
            flipped[i] = bytes([path[i][0] ^ 8]) + path[i][1:]
            bad_paths.append(flipped)
        for bad in bad_paths:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(p.leaf_hash, index, 13, bad, p.root)
        for bad_index, bad_size in [(index + 1, 13), (index ^ 2, 13), (index, 26), (index, 6)]:
            if (bad_index, bad_size) != (index, 13):
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(p.leaf_hash, bad_index, bad_size, path, p.root)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(merkle.leaf_hash(b"other"), index, 13, path, p.root)


def test_consistency_verification_refuses_every_corruption() -> None:
    leaves = _leaves(21)
    nodes = ReferenceNodes(leaves)
    for old in range(1, 21):
        p = merkle.consistency_proof(nodes, old, 21)
        path = list(p.path)
        bad_paths = [[], path[:-1], [*path, p.root], [p.old_root, *path]]
        for i in range(len(path)):
            flipped = list(path)
            flipped[i] = bytes([path[i][0] ^ 16]) + path[i][1:]
            bad_paths.append(flipped)
        for bad in bad_paths:
            with pytest.raises(ProofError):
                merkle.verify_consistency(old, 21, p.old_root, p.root, bad)
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, 21, p.root, p.old_root, path)
        for bad_old in {old - 1, old + 1} - {0, 21}:
            with pytest.raises(ProofError):
                merkle.verify_consistency(bad_old, 21, p.old_root, p.root, path)


def test_impossible_proof_requests_are_refused() -> None:
    nodes = ReferenceNodes(_leaves(4))
    with pytest.raises(NotFoundError):
        merkle.inclusion_proof(nodes, 4, 4)
    with pytest.raises(NotFoundError):
        merkle.consistency_proof(nodes, 0, 4)
    with pytest.raises(NotFoundError):
        merkle.consistency_proof(nodes, 3, 2)


def test_proofs_read_logarithmically_many_nodes() -> None:
    # Interior hashes are stored, so a proof costs O(log n) node reads, never a recomputation.
    rng = random.Random(9162)
    for size in (1000, 2**16 - 1, 2**16 + 1, 10**6):
        depth = size.bit_length()
        for _ in range(20):
            counter = _Counter()
            merkle.inclusion_proof(counter, rng.randrange(size), size)
            assert counter.reads <= 3 * depth + 1
            counter = _Counter()
            merkle.consistency_proof(counter, rng.randrange(1, size + 1), size)
            assert counter.reads <= 4 * depth + 1


class _Counter:
    reads = 0

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        self.reads += len(keys)
        return [bytes(32)] * len(keys)


def test_the_empty_tree_has_the_hash_of_the_empty_string() -> None:
    assert merkle.EMPTY_ROOT.hex() == VECTORS["roots"][0]
    assert CompactRange().root() == merkle.EMPTY_ROOT
