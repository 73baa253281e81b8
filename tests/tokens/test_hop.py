"""The rules of a hop and of the first token of a task: each rule's refusal names exactly what
broke it, and a granted child is bound to the next actor with the chain one level deeper."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from _tasktoken_helpers import (
    AUTHORITY_KEY,
    CRM,
    CRM_KEY,
    ISSUER,
    MAILER,
    NOW,
    PLANNER,
    PLANNER_KEY,
    RESEARCHER,
    TRUST_DOMAIN,
    make_claims,
    mint,
    verify,
)

from authchain.errors import (
    ChainCycleError,
    ChainDepthError,
    ClaimError,
    ConfigurationError,
    InvalidKeyError,
    InvalidSpiffeIdError,
    KeyBindingError,
    LifetimeError,
    ScopeEscalationError,
)
from authchain.identity.keys import SigningKey
from authchain.tokens.claims import TaskTokenClaims, act_from_chain
from authchain.tokens.hop import HopRequest, derive_child_claims, first_token_claims
from authchain.tokens.task_token import VerifiedTaskToken, mint_task_token

CHILD_JTI = "0190c6a4-8b6e-7c1a-9a2b-000000000002"


def _parent(**overrides: object) -> VerifiedTaskToken:
    return verify(mint(make_claims(**overrides)), now=NOW)


def _hop(
    parent: VerifiedTaskToken | None = None,
    request: HopRequest | None = None,
    *,
    proof_jkt: str | None = None,
    now: int = NOW + 20,
    **kw: Any,
) -> TaskTokenClaims:
    parent = parent or _parent()
    return derive_child_claims(
        parent,
        parent.claims.cnf_jkt if proof_jkt is None else proof_jkt,
        request or HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid),
        issuer=ISSUER,
        now=now,
        jti=CHILD_JTI,
        **kw,
    )


def test_child_is_bound_to_the_next_actor_with_the_chain_one_level_deeper() -> None:
    parent = _parent()
    child = derive_child_claims(
        parent,
        PLANNER_KEY.kid,
        HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, scope=("crm:read",)),
        issuer=ISSUER,
        now=NOW + 20,
        jti=CHILD_JTI,
    )
    # RFC 8693 4.1: the next actor outermost, the parent's actor nested under it.
    assert child.act == {"sub": CRM, "act": {"sub": PLANNER}}
    assert child.chain == (PLANNER, CRM) and child.actor == CRM and child.depth == 2
    assert child.cnf_jkt == CRM_KEY.kid
    assert child.prev == parent.token_hash
    assert (child.txn, child.sub, child.aud) == (parent.claims.txn, parent.claims.sub, TRUST_DOMAIN)
    assert (child.tctx, child.rctx) == (parent.claims.tctx, parent.claims.rctx)
    assert child.scope == ("crm:read",)
    assert (child.iat, child.jti, child.iss) == (NOW + 20, CHILD_JTI, ISSUER)
    # Left for the authority to fill once the decision is recorded.
    assert child.authz is None and child.log is None


def test_granted_child_can_be_signed_verified_and_handed_on_again() -> None:
    parent = _parent()
    child = _hop(parent, HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid))
    signed = mint_task_token(
        dataclasses.replace(
            child, log=3, authz={"id": "d", "policies": ["p"], "policy_set_hash": "0" * 64}
        ),  # type: ignore[type-var]
        AUTHORITY_KEY,
    )
    verified = verify(signed, now=NOW + 21)
    grandchild = derive_child_claims(
        verified,
        CRM_KEY.kid,
        HopRequest(audience=MAILER, audience_jkt=SigningKey.generate().kid, scope=("mail:send",)),
        issuer=ISSUER,
        now=NOW + 30,
        jti="g",
    )
    assert grandchild.chain == (PLANNER, CRM, MAILER)
    assert grandchild.prev == verified.token_hash


def test_proof_by_another_key_than_the_holders_is_refused() -> None:
    with pytest.raises(KeyBindingError):
        _hop(proof_jkt=CRM_KEY.kid)


def test_scope_escalation_names_the_token_and_the_held_scope() -> None:
    parent = _parent(scope=("crm:read",))
    with pytest.raises(ScopeEscalationError) as caught:
        _hop(
            parent,
            HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, scope=("crm:read", "crm:write")),
        )
    assert str(caught.value) == "scope `crm:write` is not in the parent's scope `crm:read`"


def test_scope_none_keeps_the_parents_scope() -> None:
    child = _hop()
    assert child.scope == make_claims().scope


@pytest.mark.parametrize("scope", [(), ("a b",), ("",)], ids=["empty", "space", "blank"])
def test_malformed_requested_scope_is_refused(scope: tuple[str, ...]) -> None:
    with pytest.raises(ClaimError):
        _hop(request=HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, scope=scope))


def test_explicit_lifetime_beyond_the_parent_is_refused() -> None:
    parent = _parent(exp=NOW + 300)
    with pytest.raises(LifetimeError, match="after the parent token's expiry"):
        _hop(parent, HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, lifetime=281), now=NOW + 20)
    child = _hop(
        parent, HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, lifetime=280), now=NOW + 20
    )
    assert child.exp == NOW + 300


def test_explicit_lifetime_beyond_the_task_deadline_is_refused() -> None:
    with pytest.raises(LifetimeError, match="task deadline"):
        _hop(
            request=HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, lifetime=100),
            task_deadline=NOW + 60,
        )


def test_default_lifetime_is_cut_to_the_parent_and_the_deadline() -> None:
    parent = _parent(exp=NOW + 100)
    assert _hop(parent).exp == NOW + 100
    assert _hop(parent, task_deadline=NOW + 50).exp == NOW + 50
    assert _hop(_parent(), default_lifetime=30).exp == NOW + 20 + 30


def test_nothing_is_handed_on_after_the_parent_expired_or_the_deadline_passed() -> None:
    parent = _parent(exp=NOW + 100)
    with pytest.raises(LifetimeError, match="parent token expires"):
        _hop(parent, now=NOW + 100)
    with pytest.raises(LifetimeError, match="deadline"):
        _hop(parent, now=NOW + 50, task_deadline=NOW + 50)


@pytest.mark.parametrize("lifetime", [0, -5])
def test_non_positive_lifetime_is_refused(lifetime: int) -> None:
    with pytest.raises(ClaimError):
        _hop(request=HopRequest(audience=CRM, audience_jkt=CRM_KEY.kid, lifetime=lifetime))


def test_chain_depth_limit() -> None:
    chain = [f"spiffe://example.org/agent/a{i}" for i in range(8)]
    parent = _parent(act=act_from_chain(chain))
    with pytest.raises(ChainDepthError, match="9 actors deep; the limit is 8"):
        _hop(parent)
    assert _hop(parent, max_depth=9).depth == 9


def test_delegating_to_itself_is_a_cycle() -> None:
    with pytest.raises(ChainCycleError, match="already actor 1 of 1"):
        _hop(request=HopRequest(audience=PLANNER, audience_jkt=PLANNER_KEY.kid))


def test_delegating_back_to_an_earlier_actor_is_a_cycle_unless_policy_allows_it() -> None:
    parent = _parent(act=act_from_chain([PLANNER, RESEARCHER]))
    request = HopRequest(audience=PLANNER, audience_jkt=PLANNER_KEY.kid)
    with pytest.raises(ChainCycleError):
        _hop(parent, request)
    child = _hop(parent, request, allow_repeat_actor=True)
    assert child.chain == (PLANNER, RESEARCHER, PLANNER)


@pytest.mark.parametrize(
    "audience",
    [
        "crm",
        "https://example.org/tool/crm",
        "spiffe://Example.org/tool/crm",
        "spiffe://example.org/tool/crm/",
    ],
)
def test_next_actor_that_is_not_a_spiffe_id_is_refused(audience: str) -> None:
    with pytest.raises(InvalidSpiffeIdError):
        _hop(request=HopRequest(audience=audience, audience_jkt=CRM_KEY.kid))


@pytest.mark.parametrize("jkt", ["", "abc", CRM_KEY.kid[:-1] + "=", CRM_KEY.kid + "A"])
def test_next_actor_key_that_is_not_a_thumbprint_is_refused(jkt: str) -> None:
    with pytest.raises(InvalidKeyError):
        _hop(request=HopRequest(audience=CRM, audience_jkt=jkt))


@pytest.mark.parametrize(("max_depth", "default_lifetime"), [(0, 300), (17, 300), (8, 0)])
def test_unusable_hop_configuration_is_refused(max_depth: int, default_lifetime: int) -> None:
    with pytest.raises(ConfigurationError):
        _hop(max_depth=max_depth, default_lifetime=default_lifetime)


# -- the first token -------------------------------------------------------------------------------


def _first(**overrides: object) -> TaskTokenClaims:
    args: dict[str, object] = {
        "issuer": ISSUER,
        "audience": TRUST_DOMAIN,
        "initiator_sub": "alice@example.org",
        "first_actor": PLANNER,
        "first_actor_jkt": PLANNER_KEY.kid,
        "scope": ["crm:read", "mail:send"],
        "now": NOW,
        "jti": "j-1",
        "txn": "t-1",
        "lifetime": 300,
        "tctx": {"purpose": "quarterly report"},
        "rctx": {"authn": "pwd", "req_ip": None},
    }
    args.update(overrides)
    return first_token_claims(**args)  # type: ignore[arg-type]


def test_first_token_has_the_user_as_sub_and_the_first_actor_as_act() -> None:
    claims = _first()
    assert claims.sub == "alice@example.org"
    assert claims.act == {"sub": PLANNER} and claims.chain == (PLANNER,)
    assert claims.cnf_jkt == PLANNER_KEY.kid and claims.prev is None
    assert claims.scope == ("crm:read", "mail:send") and claims.exp == NOW + 300
    assert verify(mint(claims)).claims == claims


def test_first_token_scope_may_be_given_as_a_string() -> None:
    assert _first(scope="crm:read mail:send").scope == ("crm:read", "mail:send")


def test_first_token_may_not_outlive_the_task_deadline() -> None:
    with pytest.raises(LifetimeError):
        _first(task_deadline=NOW + 299)


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"first_actor": "planner"}, InvalidSpiffeIdError),
        ({"first_actor_jkt": "x"}, InvalidKeyError),
        ({"lifetime": 0}, ClaimError),
        ({"scope": []}, ClaimError),
        ({"initiator_sub": ""}, ClaimError),
        ({"tctx": {"amount": 1.5}}, ClaimError),
    ],
    ids=["actor", "jkt", "lifetime", "scope", "sub", "tctx"],
)
def test_malformed_first_token_request_is_refused(
    overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        _first(**overrides)
