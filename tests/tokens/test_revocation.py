"""Revocation: one token (and so every descendant, by prev lineage), or a whole task; each refusal
names what was revoked; the state survives a persist-and-restore."""

from __future__ import annotations

import pytest

from authchain.errors import ConfigurationError, RevokedError
from authchain.tokens.revocation import IssuedToken, RevocationSet


def _chain(revocations: RevocationSet, length: int, txn: str = "t1") -> list[str]:
    """Record a lineage root -> ... and return the token hashes, root first."""
    hashes: list[str] = []
    parent = None
    for i in range(length):
        token_hash = f"{txn}-h{i}"
        revocations.record_issued(token_hash, parent, txn, f"{txn}-jti{i}", exp=1000 + i)
        hashes.append(token_hash)
        parent = token_hash
    return hashes


def test_nothing_revoked_passes() -> None:
    revocations = RevocationSet()
    for token_hash in _chain(revocations, 4):
        revocations.check(token_hash, "t1")


def test_revoked_token_is_refused_and_named_as_itself() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 3)
    revocations.revoke_token(hashes[2])
    with pytest.raises(RevokedError, match="the token has been revoked"):
        revocations.check(hashes[2], "t1")


def test_revoking_a_token_revokes_every_descendant_but_not_its_ancestors() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 5)
    revocations.revoke_token(hashes[1])
    revocations.check(hashes[0], "t1")
    with pytest.raises(RevokedError, match=f"parent `{hashes[1]}`"):
        revocations.check(hashes[2], "t1")
    with pytest.raises(RevokedError, match=rf"ancestor \(3 hops up\) `{hashes[1]}`"):
        revocations.check(hashes[4], "t1")


def test_revoking_a_branch_leaves_the_sibling_branch_usable() -> None:
    revocations = RevocationSet()
    revocations.record_issued("root", None, "t1", "j0")
    revocations.record_issued("left", "root", "t1", "j1")
    revocations.record_issued("right", "root", "t1", "j2")
    revocations.record_issued("left-child", "left", "t1", "j3")
    revocations.revoke_token("left")
    revocations.check("right", "t1")
    with pytest.raises(RevokedError):
        revocations.check("left-child", "t1")


def test_token_can_be_revoked_by_its_jti_before_or_after_its_issuance_is_recorded() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 2)
    revocations.revoke_token("t1-jti0")
    with pytest.raises(RevokedError):
        revocations.check(hashes[1], "t1")
    revocations.revoke_token("late-jti")
    revocations.record_issued("late-hash", None, "t2", "late-jti")
    with pytest.raises(RevokedError, match="the token has been revoked"):
        revocations.check("late-hash", "t2")


def test_revoked_task_refuses_every_token_of_it_including_later_ones() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 3)
    other = _chain(revocations, 2, txn="t2")
    revocations.revoke_task("t1")
    for token_hash in hashes:
        with pytest.raises(RevokedError, match="task `t1` has been revoked"):
            revocations.check(token_hash, "t1")
    with pytest.raises(RevokedError):
        revocations.check("never-recorded", "t1")
    for token_hash in other:
        revocations.check(token_hash, "t2")


def test_unrecorded_token_is_only_refused_when_itself_or_its_task_is_revoked() -> None:
    revocations = RevocationSet()
    revocations.check("unknown", "t9")
    revocations.revoke_token("unknown")
    assert revocations.is_revoked("unknown", "t9")


def test_lineage_walk_is_bounded() -> None:
    # A corrupt restore with a cycle in the lineage cannot make a check loop forever.
    revocations = RevocationSet(max_depth=4)
    revocations.record_issued("a", "b", "t", "ja")
    revocations.record_issued("b", "a", "t", "jb")
    revocations.check("a", "t")
    assert not revocations.is_revoked("a", "t")


def test_state_survives_persist_and_restore() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 4)
    revocations.revoke_token(hashes[1])
    revocations.revoke_task("t7")
    restored = RevocationSet()
    restored.restore(
        revoked_tokens=list(revocations.revoked_tokens()),
        revoked_tasks=list(revocations.revoked_tasks()),
        issued=list(revocations.issued()),
    )
    assert len(restored) == 4
    assert set(restored.revoked_tasks()) == {"t7"}
    with pytest.raises(RevokedError):
        restored.check(hashes[3], "t1")
    restored.check(hashes[0], "t1")
    assert IssuedToken(hashes[0], None, "t1", "t1-jti0", 1000) in list(restored.issued())


def test_prune_forgets_expired_tokens_and_keeps_live_ones() -> None:
    revocations = RevocationSet()
    hashes = _chain(revocations, 3)  # exp 1000, 1001, 1002
    revocations.revoke_token(hashes[2])
    assert revocations.prune(now=1002) == 2
    assert len(revocations) == 1
    with pytest.raises(RevokedError):
        revocations.check(hashes[2], "t1")
    assert revocations.prune(now=1003) == 1
    assert list(revocations.revoked_tokens()) == []


@pytest.mark.parametrize("bad", ["", None])
def test_revoking_nothing_is_a_configuration_error(bad: str | None) -> None:
    revocations = RevocationSet()
    with pytest.raises(ConfigurationError):
        revocations.revoke_token(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        revocations.revoke_task(bad)  # type: ignore[arg-type]
