"""verify_presentation: a task token and its holder's DPoP proof, verified together offline, and
every refusal naming the input it is about, so that a caller answers without verifying twice."""

from __future__ import annotations

from typing import Any

import pytest
from _tasktoken_helpers import (
    AUTHORITY_KEY,
    CRM_KEY,
    NOW,
    PLANNER_KEY,
    TRUST_DOMAIN,
    make_claims,
    mint,
    trust_for,
)

from authchain.errors import (
    CapacityError,
    DPoPURLError,
    ExpiredError,
    Input,
    KeyBindingError,
    MalformedError,
    ReplayCacheFullError,
    ReplayError,
    ScopeEscalationError,
    SignatureError,
)
from authchain.identity.keys import SigningKey
from authchain.tokens import Presentation, ReplayCache, create_proof, verify_presentation

HTM = "PATCH"
HTU = "https://crm.example.org/accounts/acme"


def _present(token: str, proof: str, *, now: int = NOW + 10, **overrides: Any) -> Presentation:
    kwargs: dict[str, Any] = {
        "htm": HTM,
        "htu": HTU,
        "trust": trust_for(AUTHORITY_KEY),
        "audience": TRUST_DOMAIN,
        "now": now,
        "replay_cache": ReplayCache(),
    }
    kwargs.update(overrides)
    return verify_presentation(token, proof, **kwargs)


def _proof(token: str, key: SigningKey = PLANNER_KEY, **overrides: Any) -> str:
    kwargs: dict[str, Any] = {"htm": HTM, "htu": HTU, "now": NOW + 10, "access_token": token}
    kwargs.update(overrides)
    return create_proof(key, **kwargs)


def test_holders_presentation_verifies_to_the_tokens_claims_and_the_proof() -> None:
    token = mint()
    presented = _present(token, _proof(token), required_scope=("crm:read",))
    assert presented.claims == make_claims()
    assert presented.proof.thumbprint == PLANNER_KEY.kid
    assert presented.proof.htu == HTU


def test_expired_token_is_named_as_the_presented_token() -> None:
    token = mint()
    with pytest.raises(ExpiredError) as caught:
        _present(token, _proof(token, now=NOW + 1000), now=NOW + 1000)
    assert caught.value.input is Input.PRESENTED_TOKEN


def test_forged_token_is_named_as_the_presented_token_before_its_proof_is_read() -> None:
    # The holder widens its own scope: the payload of another token under this token's signature.
    header, _, signature = mint().split(".")
    wider = mint(make_claims(scope=("crm:read", "crm:write", "mail:send", "admin:all")))
    forged = f"{header}.{wider.split('.')[1]}.{signature}"
    with pytest.raises(SignatureError) as caught:
        _present(forged, "not even a proof")
    assert caught.value.input is Input.PRESENTED_TOKEN


def test_malformed_proof_is_named_as_the_presented_proof() -> None:
    with pytest.raises(MalformedError) as caught:
        _present(mint(), "not.a-proof")
    assert caught.value.input is Input.PRESENTED_PROOF


def test_proof_for_another_url_is_named_as_the_presented_proof() -> None:
    token = mint()
    with pytest.raises(DPoPURLError) as caught:
        _present(token, _proof(token, htu="https://crm.example.org/accounts/other"))
    assert caught.value.input is Input.PRESENTED_PROOF


def test_stolen_token_with_the_thiefs_own_proof_is_named_as_the_presented_proof() -> None:
    # The token is genuine; what is wrong is that its holder did not make the proof.
    token = mint()
    with pytest.raises(KeyBindingError) as caught:
        _present(token, _proof(token, key=CRM_KEY))
    assert caught.value.input is Input.PRESENTED_PROOF


def test_replayed_proof_is_named_as_the_presented_proof() -> None:
    token = mint()
    proof = _proof(token)
    cache = ReplayCache()
    _present(token, proof, replay_cache=cache)
    with pytest.raises(ReplayError) as caught:
        _present(token, proof, replay_cache=cache)
    assert caught.value.input is Input.PRESENTED_PROOF


def test_full_replay_cache_is_a_capacity_error_about_no_input() -> None:
    token = mint()
    cache = ReplayCache(max_entries=1)
    _present(token, _proof(token), replay_cache=cache)
    with pytest.raises(ReplayCacheFullError) as caught:
        _present(token, _proof(token), replay_cache=cache)
    assert isinstance(caught.value, CapacityError)
    assert caught.value.input is None


def test_missing_required_scope_is_named_as_the_scope() -> None:
    token = mint()
    with pytest.raises(ScopeEscalationError, match="crm:admin") as caught:
        _present(token, _proof(token), required_scope=("crm:read", "crm:admin"))
    assert caught.value.input is Input.SCOPE
