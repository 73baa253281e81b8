"""The authority's state across restarts (issue 5, "Deliver" 1): the registry of workloads, keys
and principals, the revocations, and its own signing keys all live in the store, so a new
Authority on the same store carries on where the last one stopped, and every change of a
workload's key is in the log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _authority_world import (
    ALICE,
    CRM_AGENT,
    ISSUER,
    PLANNER,
    RESEARCH,
    TRUST_DOMAIN,
    UPDATER,
    Actor,
    Clock,
    World,
)

from authchain.audit.store import open_store
from authchain.authority import Authority
from authchain.errors import (
    DPoPError,
    InvalidKeyError,
    LogIntegrityError,
    RevokedError,
    StorageError,
    VerificationError,
)
from authchain.identity.keys import SigningKey
from authchain.policy import PolicyEngine
from authchain.tokens.task_token import verify_task_token


def _reopen(world: World, db_path: Path, policy: PolicyEngine) -> World:
    """Close the store and start a new authority on the same file, keeping the clients' keys."""
    world.store.close()
    store = open_store(str(db_path), create=False)
    authority = Authority(
        store, issuer=ISSUER, trust_domain=TRUST_DOMAIN, policy=policy, clock=world.clock
    )
    again = World(store, clock=world.clock, authority=authority)
    again.idp = world.idp
    again.actors = dict(world.actors)
    return again


# --------------------------------------------------------------------------------------------------
# Registration.


def test_registration_is_recorded_with_the_key_and_scopes(world: World) -> None:
    index = world.authority.register_workload(
        "spiffe://example.org/agent/new",
        kind="agent",
        jwk=SigningKey.generate().public.to_jwk(),
        scopes=["crm:read"],
    )
    event = world.store.get(index)
    assert (event.kind, event.actor, event.outcome) == (
        "workload.registered",
        "spiffe://example.org/agent/new",
        "succeeded",
    )
    record = world.record(index)
    assert record.workload_kind == "agent" and record.scopes == ("crm:read",)
    assert record.previous_jkt is None
    assert "d" not in record.jwk  # only the public key is ever recorded


def test_reregistration_with_a_new_key_is_recorded_with_the_previous_thumbprint(
    world: World,
) -> None:
    old = world.key(PLANNER)
    new = SigningKey.generate()
    index = world.authority.register_workload(
        PLANNER, kind="agent", jwk=new.public.to_jwk(), scopes=["crm:read"]
    )
    record = world.record(index)
    assert record.jkt == new.public.kid
    assert record.previous_jkt == old.public.kid
    # Re-registering the same key changes nothing worth a previous_jkt.
    again = world.authority.register_workload(
        PLANNER, kind="agent", jwk=new.public.to_jwk(), scopes=["crm:read"]
    )
    assert world.record(again).previous_jkt is None
    # The old key no longer speaks for the planner.
    with pytest.raises(DPoPError):
        world.start()
    world.actors[PLANNER] = Actor(PLANNER, "agent", ("crm:read",), new)
    assert world.start(scope="crm:read").claims.cnf_jkt == new.public.kid


def test_a_key_registered_to_one_workload_cannot_be_claimed_by_another(world: World) -> None:
    with pytest.raises(InvalidKeyError):
        world.authority.register_workload(
            "spiffe://example.org/agent/impostor",
            kind="agent",
            jwk=world.key(PLANNER).public.to_jwk(),
        )


# --------------------------------------------------------------------------------------------------
# Restart.


def test_registry_survives_reopening_the_store(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    registered = {w.id: w for w in world.authority.registry.workloads()}
    again = _reopen(world, db_path, policy)
    try:
        registry = again.authority.registry
        assert {w.id: w for w in registry.workloads()} == registered
        assert registry.workload(PLANNER).key.kid == world.key(PLANNER).public.kid
        alice = registry.find_principal(ALICE)
        assert alice is not None and "crm:write" in alice.scopes
        assert set(registry.issuers) == {world.idp.issuer}
        # ...and it is usable: the trusted issuer and the keys let a new task start and hop.
        root = again.start()
        again.hop(PLANNER, root, CRM_AGENT, "crm:read")
    finally:
        again.store.close()


def test_revocations_survive_reopening_the_store(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    root, crm, tool, _ = world.clean_task()
    other = world.start()
    world.authority.revoke(token_hash=root.token_hash)  # never presented: cascades by lineage
    world.authority.end_task(other.txn)
    again = _reopen(world, db_path, policy)
    try:
        with pytest.raises(RevokedError):
            again.hop(CRM_AGENT, crm, UPDATER, "crm:write")
        with pytest.raises(RevokedError):
            again.hop(PLANNER, other, RESEARCH, "research:read")
        used = again.act(UPDATER, tool)
        assert again.record(used).error == "revoked"
    finally:
        again.store.close()


def test_signing_key_persists_so_tokens_issued_before_a_restart_still_work(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    root = world.start()
    kid = world.authority.keys.active.kid
    again = _reopen(world, db_path, policy)
    try:
        assert again.authority.keys.active.kid == kid
        verify_task_token(
            root.access_token, trust=again.authority.trust, audience=TRUST_DOMAIN, now=again.now
        )
        child = again.hop(PLANNER, root, CRM_AGENT, "crm:read")
        assert child.claims.prev == root.token_hash
    finally:
        again.store.close()


def test_rotation_keeps_old_tokens_verifying_and_signs_new_ones_with_the_new_key(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    before = world.start()
    old_kid = world.authority.keys.active.kid
    new_kid = world.authority.rotate_signing_key()
    assert new_kid != old_kid
    trust = world.authority.trust
    assert verify_task_token(
        before.access_token, trust=trust, audience=TRUST_DOMAIN, now=world.now
    ).kid == (old_kid)
    # The old token still delegates; what is signed now is signed by the new key.
    child = world.hop(PLANNER, before, CRM_AGENT, "crm:read")
    assert verify_task_token(
        child.access_token, trust=trust, audience=TRUST_DOMAIN, now=world.now
    ).kid == (new_kid)
    assert {k.kid for k in world.authority.jwks()} == {old_kid, new_kid}

    # The retired key is part of the persisted state too.
    again = _reopen(world, db_path, policy)
    try:
        assert again.authority.keys.active.kid == new_kid
        verify_task_token(
            before.access_token, trust=again.authority.trust, audience=TRUST_DOMAIN, now=again.now
        )
        # Once every token it signed has expired, the retired key stops verifying.
        again.clock.advance(again.authority.token_lifetime + 3600)
        assert {k.kid for k in again.authority.jwks()} == {new_kid}
    finally:
        again.store.close()


def test_a_token_signed_by_another_authority_is_not_accepted(
    world: World, tmp_path: Path, policy: PolicyEngine
) -> None:
    # Same issuer name, different store, so a different signing key: the kid is unknown here.
    with open_store(str(tmp_path / "other.db")) as other_store:
        other = World.populated(other_store, policy=policy, clock=Clock())
        foreign = other.start()
        with pytest.raises(VerificationError) as caught:
            verify_task_token(
                foreign.access_token,
                trust=world.authority.trust,
                audience=TRUST_DOMAIN,
                now=world.now,
            )
        assert caught.value.code in ("untrusted_issuer", "signature_invalid")


# --------------------------------------------------------------------------------------------------
# The registry and the revocations live beside the log, not in it: each entry must match the log
# event that recorded it, or the authority refuses to start on the store.


def _edit_meta(db_path: Path, key: str, edit: Any) -> None:
    conn = sqlite3.connect(db_path)
    (value,) = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = ?", (json.dumps(edit(json.loads(value))), key)
    )
    conn.commit()
    conn.close()


def _restart(db_path: Path, policy: PolicyEngine) -> Authority:
    return Authority(
        open_store(str(db_path), create=False),
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        policy=policy,
    )


def test_a_workload_key_swapped_in_the_store_is_refused_at_startup(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    attacker = SigningKey.generate().public.to_jwk(with_kid=False)

    def swap(registry: dict[str, Any]) -> dict[str, Any]:
        for workload in registry["workloads"]:
            if workload["id"] == CRM_AGENT:
                workload["jwk"] = attacker
        return registry

    world.store.close()
    _edit_meta(db_path, "authority.registry", swap)
    with pytest.raises(LogIntegrityError, match="does not match its record"):
        _restart(db_path, policy)


def test_scopes_widened_in_the_store_are_refused_at_startup(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    def widen(registry: dict[str, Any]) -> dict[str, Any]:
        for principal in registry["principals"]:
            principal["scopes"] = sorted({*principal["scopes"], "payments:write"})
        return registry

    world.store.close()
    _edit_meta(db_path, "authority.registry", widen)
    with pytest.raises(LogIntegrityError, match="principal"):
        _restart(db_path, policy)


def test_a_revocation_pointed_at_another_entry_is_refused_at_startup(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    root, _, _, _ = world.clean_task()
    world.authority.revoke(token_hash=root.token_hash, reason="compromised")

    def repoint(revocations: dict[str, Any]) -> dict[str, Any]:
        revocations["tokens"] = {h: 0 for h in revocations["tokens"]}
        return revocations

    world.store.close()
    _edit_meta(db_path, "authority.revocations", repoint)
    with pytest.raises(LogIntegrityError, match="revocation"):
        _restart(db_path, policy)


def test_an_untouched_store_restarts_cleanly(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    root, _, _, _ = world.clean_task()
    world.authority.revoke(token_hash=root.token_hash, reason="compromised")
    world.store.close()
    assert _restart(db_path, policy).registry.find_workload(CRM_AGENT) is not None


class _FailingAppends:
    """A store whose appends fail, otherwise the real one: the log is unavailable."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def append(self, event: Any, *, once: Any = ()) -> int:
        raise StorageError("the log is unavailable")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_registration_that_could_not_be_recorded_changes_nothing(
    world: World, policy: PolicyEngine
) -> None:
    authority = world.authority
    before = authority.registry.find_workload(CRM_AGENT)
    authority.recorder.store = _FailingAppends(world.store)  # type: ignore[assignment]
    with pytest.raises(StorageError):
        authority.register_workload(
            CRM_AGENT, kind="agent", jwk=SigningKey.generate().public.to_jwk(), scopes=["crm:read"]
        )
    with pytest.raises(StorageError):
        authority.register_principal("mallory@example.org", scopes=["crm:write"])
    assert authority.registry.find_workload(CRM_AGENT) == before
    assert authority.registry.find_principal("mallory@example.org") is None
