"""Every refusal names the request input that failed, on the error and in the record that keeps it
(issue 9, "Deliver" 3): the OAuth error of a refusal is then a table lookup, and nothing is
verified twice to find out which party was wrong."""

from __future__ import annotations

import pytest
from _authority_world import (
    ALICE,
    CRM_AGENT,
    ISSUER,
    PLANNER,
    RESEARCH,
    TRUST_DOMAIN,
    UPDATER,
    World,
)

from authchain.audit.records import HopDenied, KeyRotated, TaskDenied
from authchain.authority import Authority
from authchain.errors import (
    AuthchainError,
    ChainCycleError,
    DPoPError,
    DPoPNonceError,
    Input,
    InvalidTargetError,
    KeyBindingError,
    MalformedError,
    PolicyDenied,
    RevokedError,
    ScopeEscalationError,
    UntrustedIssuerError,
)
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import create_proof
from authchain.tokens.id_token import LocalIdentityProvider
from authchain.tokens.nonce import NonceSource


def _refused(world: World, exc: AuthchainError, kind: type[TaskDenied | HopDenied]) -> None:
    """The refusal was recorded, as ``kind``, naming the same error and input as the exception."""
    assert exc.log_index is not None
    record = world.record(exc.log_index)
    assert isinstance(record, kind)
    assert (record.error, record.input) == (exc.code, str(exc.input))


def test_malformed_request_details_name_the_request_details(world: World) -> None:
    with pytest.raises(MalformedError) as caught:
        world.start(purpose="x" * 600)
    assert caught.value.input is Input.REQUEST_DETAILS
    _refused(world, caught.value, TaskDenied)


def test_a_missing_or_bad_proof_names_the_dpop_proof(world: World) -> None:
    with pytest.raises(DPoPError) as caught:
        world.authority.start_task(subject_token=world.id_token(), dpop_proof=None, scope=None)
    assert caught.value.input is Input.DPOP_PROOF
    _refused(world, caught.value, TaskDenied)
    wrong_url = create_proof(
        world.key(PLANNER), htm="POST", htu="https://elsewhere.example/token", now=world.now
    )
    root = world.start()
    with pytest.raises(DPoPError) as caught:
        world.authority.exchange(
            subject_token=root.access_token, dpop_proof=wrong_url, audience=CRM_AGENT
        )
    assert caught.value.input is Input.DPOP_PROOF
    _refused(world, caught.value, HopDenied)


def test_a_proof_by_an_unregistered_key_names_the_actor(world: World) -> None:
    stranger = create_proof(
        SigningKey.generate(), htm="POST", htu=world.authority.token_endpoint, now=world.now
    )
    with pytest.raises(DPoPError) as caught:
        world.authority.start_task(
            subject_token=world.id_token(), dpop_proof=stranger, scope="crm:read"
        )
    assert caught.value.input is Input.ACTOR
    _refused(world, caught.value, TaskDenied)


def test_an_untrusted_id_token_names_the_subject_token(world: World) -> None:
    rogue = LocalIdentityProvider("https://rogue.example.net")
    with pytest.raises(UntrustedIssuerError) as caught:
        world.authority.start_task(
            subject_token=rogue.issue(ALICE, audience=ISSUER, now=world.now),
            dpop_proof=world.token_proof(PLANNER),
            scope="crm:read",
        )
    assert caught.value.input is Input.SUBJECT_TOKEN
    _refused(world, caught.value, TaskDenied)


def test_a_token_held_by_another_key_or_revoked_names_the_subject_token(world: World) -> None:
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    with pytest.raises(KeyBindingError) as caught:
        world.hop(RESEARCH, crm, UPDATER, "crm:read")
    assert caught.value.input is Input.SUBJECT_TOKEN
    _refused(world, caught.value, HopDenied)
    world.authority.revoke(token_hash=crm.token_hash)
    with pytest.raises(RevokedError) as caught_revoked:
        world.hop(CRM_AGENT, crm, UPDATER, "crm:read")
    assert caught_revoked.value.input is Input.SUBJECT_TOKEN
    _refused(world, caught_revoked.value, HopDenied)


def test_an_unknown_audience_or_a_cycle_names_the_audience(world: World) -> None:
    root = world.start()
    with pytest.raises(InvalidTargetError) as caught:
        world.hop(PLANNER, root, "spiffe://example.org/agent/ghost", "crm:read")
    assert caught.value.input is Input.AUDIENCE
    _refused(world, caught.value, HopDenied)
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    with pytest.raises(ChainCycleError) as cycle:
        world.hop(CRM_AGENT, crm, PLANNER, "crm:read")
    assert cycle.value.input is Input.AUDIENCE
    _refused(world, cycle.value, HopDenied)


def test_escalation_names_the_scope_and_a_denial_names_the_policy(world: World) -> None:
    root = world.start()
    research = world.hop(PLANNER, root, RESEARCH, "research:read")
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    assert caught.value.input is Input.SCOPE
    _refused(world, caught.value, HopDenied)
    with pytest.raises(PolicyDenied) as denied:
        world.start(scope="crm:delete")
    assert denied.value.input is Input.POLICY
    _refused(world, denied.value, TaskDenied)


def test_a_nonce_challenge_is_a_protocol_round_trip_not_an_audit_event(world: World) -> None:
    # The same store and registry, served by an authority that requires DPoP nonces.
    authority = Authority(
        world.store,
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        clock=world.clock,
        nonce_source=NonceSource(b"k" * 32),
    )
    size = world.store.size()
    with pytest.raises(DPoPNonceError) as caught:
        authority.start_task(
            subject_token=world.id_token(), dpop_proof=world.token_proof(PLANNER), scope=None
        )
    assert caught.value.input is Input.DPOP_PROOF and caught.value.nonce
    assert caught.value.log_index is None
    assert world.store.size() == size
    nonce = caught.value.nonce
    proof = create_proof(
        world.key(PLANNER),
        htm="POST",
        htu=world.authority.token_endpoint,
        now=world.now,
        nonce=nonce,
    )
    issued = authority.start_task(
        subject_token=world.id_token(), dpop_proof=proof, scope="crm:read"
    )
    assert issued.log_index == size


def test_key_rotation_is_recorded_before_the_new_key_signs(world: World) -> None:
    old = world.authority.keys.active.kid
    new = SigningKey.generate()
    size = world.store.size()
    assert world.authority.rotate_signing_key(new) == new.kid
    record = world.record(size)
    assert isinstance(record, KeyRotated)
    assert (record.kid, record.previous_kid, record.actor) == (new.kid, old, "admin")
    assert record.retire_at > world.now
    assert world.start().log_index == size + 1


@pytest.mark.parametrize("scope", ['crm:write "quoted"', "crm:read\u202ecrm:write", "x" * 129])
def test_a_malformed_scope_is_refused_naming_the_scope_and_recorded(
    world: World, scope: str
) -> None:
    with pytest.raises(MalformedError) as at_start:
        world.start(scope=scope)
    assert at_start.value.input is Input.SCOPE
    _refused(world, at_start.value, TaskDenied)
    assert world.record(at_start.value.log_index).scope is None  # the untrusted value is not kept
    root = world.start()
    with pytest.raises(MalformedError) as at_hop:
        world.hop(PLANNER, root, CRM_AGENT, scope)
    assert at_hop.value.input is Input.SCOPE
    _refused(world, at_hop.value, HopDenied)


def test_request_details_json_cannot_carry_are_refused_naming_them(world: World) -> None:
    with pytest.raises(MalformedError) as caught:
        world.authority.start_task(
            subject_token=world.id_token(),
            dpop_proof=world.token_proof(PLANNER),
            scope="crm:read",
            request_details={"purpose": "x", "n": 1 << 70},
        )
    assert caught.value.input is Input.REQUEST_DETAILS
    _refused(world, caught.value, TaskDenied)
