"""The one table from Authchain error codes to OAuth errors (at /token) and to HTTP statuses of
RFC 9457 problems (elsewhere)."""

from __future__ import annotations

import pytest

from authchain import errors
from authchain.server.errors import oauth_error_code, oauth_response, problem_status
from authchain.server.openapi import PROBLEM_CODES


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        # RFC 9449 section 5: anything wrong with the proof.
        (errors.DPoPError, "invalid_dpop_proof"),
        (errors.DPoPMethodError, "invalid_dpop_proof"),
        (errors.DPoPURLError, "invalid_dpop_proof"),
        (errors.DPoPAccessTokenHashError, "invalid_dpop_proof"),
        (errors.ReplayError, "invalid_dpop_proof"),
        (errors.DPoPNonceError, "use_dpop_nonce"),
        # RFC 6749 5.2: the subject token.
        (errors.KeyBindingError, "invalid_grant"),
        (errors.ExpiredError, "invalid_grant"),
        (errors.RevokedError, "invalid_grant"),
        (errors.SignatureError, "invalid_grant"),
        (errors.UntrustedIssuerError, "invalid_grant"),
        (errors.TokenTypeError, "invalid_grant"),
        (errors.ClaimError, "invalid_grant"),
        (errors.MalformedError, "invalid_grant"),
        # Asking for more than held, or refused by policy or a hop rule.
        (errors.ScopeEscalationError, "invalid_scope"),
        (errors.PolicyDenied, "invalid_scope"),
        (errors.LifetimeError, "invalid_scope"),
        (errors.ChainDepthError, "invalid_scope"),
        # The audience.
        (errors.InvalidTargetError, "invalid_target"),
        (errors.ChainCycleError, "invalid_target"),
        (errors.InvalidSpiffeIdError, "invalid_target"),
    ],
)
def test_refusal_maps_to_its_oauth_error(cls: type[errors.AuthchainError], expected: str) -> None:
    assert oauth_error_code(cls("x")) == expected


@pytest.mark.parametrize(
    "cls",
    [errors.SignatureError, errors.ExpiredError, errors.MalformedError, errors.KeyBindingError],
)
def test_a_refusal_caused_by_the_proof_is_invalid_dpop_proof_whatever_its_class(
    cls: type[errors.AuthchainError],
) -> None:
    assert oauth_error_code(cls("x"), proof_refused=True) == "invalid_dpop_proof"


def test_hop_rule_refusal_stays_invalid_scope_even_when_the_proof_was_also_bad() -> None:
    assert oauth_error_code(errors.ScopeEscalationError("x"), proof_refused=True) == "invalid_scope"


def test_error_description_names_the_log_entry_and_is_valid_rfc6749_text() -> None:
    response = oauth_response("invalid_scope", 'scope "crm:admin" \\ not held', log_index=17)
    body = response.body.decode()
    assert '"error_description":"scope ?crm:admin? ? not held (recorded at log index 17)"' in body
    assert '"log_index":17' in body
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.NotFoundError("x"), 404),
        (errors.MalformedError("x"), 400),
        (errors.InvalidPrincipalError("x"), 400),
        (errors.DPoPError("x"), 401),
        (errors.ReplayError("x"), 401),
        (errors.PolicyDenied("x"), 403),
        (errors.ReplayCacheFullError("x"), 503),
        (errors.StorageError("x"), 503),
        (errors.ConfigurationError("x"), 500),
        (RuntimeError("bug"), 500),
    ],
)
def test_problem_status_by_error_family(exc: BaseException, status: int) -> None:
    assert problem_status(exc)[0] == status


def test_nonce_challenge_carries_the_nonce_to_use() -> None:
    status, code, headers = problem_status(errors.DPoPNonceError("stale", "n-123"))
    assert (status, code) == (401, "use_dpop_nonce")
    assert headers["DPoP-Nonce"] == "n-123"
    assert 'error="use_dpop_nonce"' in headers["WWW-Authenticate"]


def test_every_error_code_has_a_problem_type() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert cls.code in PROBLEM_CODES, name
