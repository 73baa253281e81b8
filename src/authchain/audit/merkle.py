"""The Merkle tree of RFC 9162 section 2.1: hashing, proofs, and their verification.

Storage-independent. A store keeps the hash of every *complete* subtree, addressed by
:data:`NodeKey` ``(level, index)``: the subtree of ``2**level`` leaves starting at leaf
``index << level`` (level 0 is the leaf hashes themselves). Such a node never changes once its last
leaf is appended, so it can be written once, in the same transaction as the leaf that completes it.

Every hash RFC 9162 needs is either such a node or the hash of a range ``[start, end)`` whose left
part is always a complete subtree; :func:`subtree_keys` splits a range into the complete subtrees
that :func:`fold` combines. An inclusion or consistency proof therefore costs O(log n) node reads:
:func:`inclusion_plan` and :func:`consistency_plan` say which, :func:`inclusion_proof` and
:func:`consistency_proof` read them through a :class:`NodeReader` (the store) in one call.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from authchain.errors import NotFoundError, ProofError

__all__ = [
    "HASH_SIZE",
    "EMPTY_ROOT",
    "NodeKey",
    "NodeReader",
    "CompactRange",
    "InclusionProof",
    "ConsistencyProof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "subtree_keys",
    "fold",
    "inclusion_plan",
    "consistency_plan",
    "inclusion_proof",
    "consistency_proof",
    "root_at",
    "verify_inclusion",
    "verify_consistency",
]

HASH_SIZE: Final = 32
# RFC 9162 section 2.1.1: domain separation between leaves and interior nodes (second-preimage
# resistance: a leaf can never be mistaken for a node).
_LEAF_PREFIX: Final = b"\x00"
_NODE_PREFIX: Final = b"\x01"
#: RFC 9162 section 2.1.1: MTH({}) = SHA-256() for the empty tree.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

NodeKey: TypeAlias = tuple[int, int]

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 section 2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 section 2.1.1: SHA-256(0x01 || MTH(left) || MTH(right))."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """RFC 9162 section 2.1.1: the largest power of two smaller than ``n`` (for n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes (RFC 9162 section 2.1.1), for small trees and tests."""
    if not hashes:
        return EMPTY_ROOT
    compact = CompactRange()
    compact.extend(hashes)
    return compact.root()


class NodeReader(Protocol):
    """What proof construction needs from a store: complete-subtree hashes by key."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        """The hashes of ``keys`` in order; :class:`NotFoundError` if one is not stored."""
        ...


def subtree_keys(start: int, end: int) -> list[NodeKey]:
    """The complete subtrees that make up ``[start, end)``, left to right, largest first.

    Valid for the ranges RFC 9162's recursion produces, whose start is aligned to a power of two at
    least as large as the range; each piece is then aligned to its own size.
    """
    keys: list[NodeKey] = []
    while start < end:
        level = (end - start).bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the hashes of :func:`subtree_keys` into the MTH of the range they cover.

    RFC 9162 section 2.1.1 splits a range at its largest power of two: MTH = H(first, MTH(rest)),
    so the hashes fold from the right.
    """
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = _sha256(_NODE_PREFIX + left + acc).digest()
    return acc


def inclusion_plan(index: int, size: int) -> list[list[NodeKey]]:
    """The audit path of RFC 9162 section 2.1.3.1, as the subtrees each element is the MTH of.

    PATH(m, D[n]) with k the split of n: for m < k it is PATH(m, D[0:k]) : MTH(D[k:n]), otherwise
    PATH(m - k, D[k:n]) : MTH(D[0:k]). Walking down from the root gives the elements top first,
    so the list is reversed at the end (the RFC's order is leaf side first).
    """
    if not 0 <= index < size:
        raise NotFoundError(f"index {index} is not in a tree of size {size}")
    path: list[list[NodeKey]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_keys(start + k, end))
            end = start + k
        else:
            path.append(subtree_keys(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_plan(old_size: int, new_size: int) -> list[list[NodeKey]]:
    """The consistency proof of RFC 9162 section 2.1.4.1, as subtrees per element.

    SUBPROOF(m, D[n], b): if m = n, nothing when b is true (the verifier holds MTH(D[m])) and
    MTH(D[m]) otherwise; else with k the split of n: for m <= k, SUBPROOF(m, D[0:k], b) :
    MTH(D[k:n]); otherwise SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]).
    """
    if not 0 < old_size <= new_size:
        raise NotFoundError(
            f"no consistency proof from size {old_size} to {new_size}: need 0 < old <= new"
        )
    path: list[list[NodeKey]] = []
    start, end = 0, new_size
    whole = True  # the RFC's b: still on the old tree's own root
    while old_size != end:
        k = _split(end - start)
        if old_size - start <= k:
            path.append(subtree_keys(start + k, end))
            end = start + k
        else:
            path.append(subtree_keys(start, start + k))
            start += k
            whole = False
    if not whole:
        path.append(subtree_keys(start, end))
    path.reverse()
    return path


def _read(reader: NodeReader, plan: list[list[NodeKey]]) -> list[bytes]:
    keys = [key for element in plan for key in element]
    hashes = reader.get_nodes(keys) if keys else []
    out: list[bytes] = []
    pos = 0
    for element in plan:
        n = len(element)
        out.append(fold(hashes[pos : pos + n]))
        pos += n
    return out


def root_at(reader: NodeReader, size: int) -> bytes:
    """MTH of the first ``size`` leaves, from stored complete subtrees (O(log n) reads)."""
    if size == 0:
        return EMPTY_ROOT
    return fold(reader.get_nodes(subtree_keys(0, size)))


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """RFC 9162 section 2.1.3: the leaf at ``index`` is in the tree of ``size`` with ``root``."""

    index: int
    size: int
    leaf_hash: bytes
    path: tuple[bytes, ...]
    root: bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [h.hex() for h in self.path],
            "root": self.root.hex(),
        }

    def verify(self) -> None:
        """Check the proof against its own root (which the caller compares to a checkpoint)."""
        verify_inclusion(self.leaf_hash, self.index, self.size, self.path, self.root)


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """RFC 9162 section 2.1.4: the tree of ``old_size`` is a prefix of the tree of ``size``."""

    old_size: int
    size: int
    path: tuple[bytes, ...]
    old_root: bytes
    root: bytes

    def to_dict(self) -> dict[str, object]:
        return {
            "old_size": self.old_size,
            "size": self.size,
            "proof": [h.hex() for h in self.path],
            "old_root": self.old_root.hex(),
            "root": self.root.hex(),
        }

    def verify(self) -> None:
        verify_consistency(self.old_size, self.size, self.old_root, self.root, self.path)


def inclusion_proof(reader: NodeReader, index: int, size: int) -> InclusionProof:
    """Build the inclusion proof of leaf ``index`` in the tree of ``size`` from stored nodes."""
    plan = inclusion_plan(index, size)
    leaf_key: NodeKey = (0, index)
    root_keys = subtree_keys(0, size)
    flat = [leaf_key, *root_keys, *(key for element in plan for key in element)]
    hashes = reader.get_nodes(flat)
    leaf = hashes[0]
    root = fold(hashes[1 : 1 + len(root_keys)])
    pos = 1 + len(root_keys)
    path: list[bytes] = []
    for element in plan:
        path.append(fold(hashes[pos : pos + len(element)]))
        pos += len(element)
    return InclusionProof(index, size, leaf, tuple(path), root)


def consistency_proof(reader: NodeReader, old_size: int, new_size: int) -> ConsistencyProof:
    """Build the consistency proof between two tree sizes from stored nodes."""
    plan = consistency_plan(old_size, new_size)
    old_keys = subtree_keys(0, old_size)
    new_keys = subtree_keys(0, new_size)
    flat = [*old_keys, *new_keys, *(key for element in plan for key in element)]
    hashes = reader.get_nodes(flat)
    old_root = fold(hashes[: len(old_keys)])
    root = fold(hashes[len(old_keys) : len(old_keys) + len(new_keys)])
    pos = len(old_keys) + len(new_keys)
    path: list[bytes] = []
    for element in plan:
        path.append(fold(hashes[pos : pos + len(element)]))
        pos += len(element)
    return ConsistencyProof(old_size, new_size, tuple(path), old_root, root)


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2, step by step. Returns nothing or raises :class:`ProofError`."""
    if len(leaf) != HASH_SIZE or len(root) != HASH_SIZE or any(len(p) != HASH_SIZE for p in path):
        raise ProofError("inclusion proof has a hash of the wrong length", index)
    # (1) leaf_index must be smaller than tree_size.
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}", index)
    # (2) fn = leaf_index, sn = tree_size - 1; (3) r = hash.
    fn, sn, r = index, size - 1, leaf
    # (4) for each p in inclusion_path:
    for p in path:
        # (a) if sn is 0, fail.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep", index)
        # (b) if LSB(fn) is set or fn == sn: r = H(p || r), then, if LSB(fn) is not set,
        # shift both right until LSB(fn) is set or fn is 0; otherwise r = H(r || p).
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        # (c) shift both right once.
        fn >>= 1
        sn >>= 1
    # (5) sn must be 0 and r must equal the root.
    if sn != 0 or not _equal(r, root):
        raise ProofError(f"inclusion proof for index {index} in size {size} does not verify", index)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2, step by step. Returns nothing or raises :class:`ProofError`.

    Sizes where no proof is needed are accepted only with an empty proof: equal sizes with equal
    roots, and an empty old tree.
    """
    if (
        len(old_root) != HASH_SIZE
        or len(new_root) != HASH_SIZE
        or any(len(p) != HASH_SIZE for p in path)
    ):
        raise ProofError("consistency proof has a hash of the wrong length")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"size {old_size} cannot be a prefix of size {new_size}")
    if old_size == new_size or old_size == 0:
        if path or (old_size == new_size and not _equal(old_root, new_root)):
            raise ProofError(f"consistency proof from {old_size} to {new_size} does not verify")
        return
    # (1) an empty consistency_path fails.
    if not path:
        raise ProofError(f"consistency proof from {old_size} to {new_size} is empty")
    proof = list(path)
    # (2) if first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        proof.insert(0, old_root)
    # (3) fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # (4) if LSB(fn) is set, shift both right until it is not.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # (5) fr = sr = the first value.
    fr = sr = proof[0]
    # (6) for each subsequent value c:
    for c in proof[1:]:
        # (a) if sn is 0, fail.
        if sn == 0:
            raise ProofError(f"consistency proof from {old_size} to {new_size} is too long")
        # (b) if LSB(fn) is set or fn == sn: fr = H(c || fr), sr = H(c || sr), then, if LSB(fn)
        # is not set, shift both right until LSB(fn) is set or fn is 0; otherwise sr = H(sr || c).
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        # (c) shift both right once.
        fn >>= 1
        sn >>= 1
    # (7) fr must equal first_hash, sr must equal second_hash, and sn must be 0.
    if sn != 0 or not _equal(fr, old_root) or not _equal(sr, new_root):
        raise ProofError(f"consistency proof from {old_size} to {new_size} does not verify")


class CompactRange:
    """The right edge of a tree being built leaf by leaf: one complete-subtree hash per set bit.

    ``hashes[level]`` is the complete subtree of ``2**level`` leaves waiting for its right sibling,
    present exactly when bit ``level`` of :attr:`size` is set. Appending a leaf completes the nodes
    that :meth:`extend` returns, which a store writes once and never again.
    """

    __slots__ = ("size", "hashes")

    def __init__(self, size: int = 0, hashes: Sequence[bytes | None] = ()) -> None:
        self.size = size
        self.hashes: list[bytes | None] = list(hashes)
        for level in range(max(size.bit_length(), len(self.hashes))):
            has_bit = bool(size >> level & 1)
            held = level < len(self.hashes) and self.hashes[level] is not None
            if has_bit != held:
                raise ValueError(f"compact range of size {size} needs exactly its set bits")

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        """The nodes a compact range of ``size`` holds, lowest level first."""
        return [
            (level, (size >> level) - 1) for level in range(size.bit_length()) if size >> level & 1
        ]

    @classmethod
    def from_reader(cls, reader: NodeReader, size: int) -> CompactRange:
        """Load the right edge of the stored tree of ``size`` (O(log n) reads)."""
        keys = cls.keys_for(size)
        found = reader.get_nodes(keys) if keys else []
        hashes: list[bytes | None] = [None] * size.bit_length()
        for (level, _), value in zip(keys, found, strict=True):
            hashes[level] = value
        return cls(size, hashes)

    def copy(self) -> CompactRange:
        return CompactRange(self.size, self.hashes)

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append leaves; return the interior nodes ``(level, index, hash)`` they complete."""
        hashes = self.hashes
        size = self.size
        done: list[tuple[int, int, bytes]] = []
        sha = _sha256
        for h in leaf_hashes:
            index = size
            level = 0
            while index & 1:
                left = hashes[level]
                hashes[level] = None
                h = sha(_NODE_PREFIX + left + h).digest()  # type: ignore[operator]
                level += 1
                index >>= 1
                done.append((level, index, h))
            if level == len(hashes):
                hashes.append(h)
            else:
                hashes[level] = h
            size += 1
        self.size = size
        return done

    def root(self) -> bytes:
        """MTH of the leaves so far: the held subtrees folded from the smallest."""
        acc: bytes | None = None
        for h in self.hashes:
            if h is not None:
                acc = h if acc is None else _sha256(_NODE_PREFIX + h + acc).digest()
        return EMPTY_ROOT if acc is None else acc
