"""The one table from Authchain errors to OAuth errors (at /token: by the request input a refusal is
about) and to HTTP statuses of RFC 9457 problems (elsewhere)."""

from __future__ import annotations

import pytest

from authchain import errors
from authchain.errors import Input
from authchain.server.errors import (
    OAUTH_ERRORS,
    oauth_error_code,
    oauth_error_response,
    oauth_response,
    problem_status,
)
from authchain.server.openapi import PROBLEM_CODES


@pytest.mark.parametrize(
    ("about", "expected"),
    [
        # RFC 9449 section 5: the proof, or a key no workload registered.
        (Input.DPOP_PROOF, "invalid_dpop_proof"),
        (Input.ACTOR, "invalid_dpop_proof"),
        # RFC 6749 5.2: the subject token does not verify, is revoked, or is held by another key.
        (Input.SUBJECT_TOKEN, "invalid_grant"),
        # RFC 8693 2.2.2: the audience is unknown, not a SPIFFE ID, or a cycle.
        (Input.AUDIENCE, "invalid_target"),
        # RFC 6749 5.2: more than is held, a hop rule, or policy.
        (Input.SCOPE, "invalid_scope"),
        (Input.POLICY, "invalid_scope"),
        # RFC 6749 5.2: an unusable request member.
        (Input.REQUEST_DETAILS, "invalid_request"),
        (Input.REQUEST, "invalid_request"),
    ],
)
def test_refusal_maps_to_the_oauth_error_of_the_input_it_is_about(
    about: Input, expected: str
) -> None:
    assert OAUTH_ERRORS[about] == expected
    # Whatever the class: a signature failure of the proof is the proof's, of the token the grant's.
    for cls in (errors.SignatureError, errors.MalformedError, errors.ExpiredError):
        assert oauth_error_code(cls("x").about(about)) == expected


def test_the_input_decides_not_the_class() -> None:
    # The same class of error blames the party whose input failed.
    assert oauth_error_code(errors.KeyBindingError("x").about(Input.SUBJECT_TOKEN)) == (
        "invalid_grant"
    )
    assert oauth_error_code(errors.DPoPError("x").about(Input.ACTOR)) == "invalid_dpop_proof"
    assert oauth_error_code(errors.ChainCycleError("x").about(Input.AUDIENCE)) == "invalid_target"
    assert oauth_error_code(errors.MalformedError("x").about(Input.REQUEST_DETAILS)) == (
        "invalid_request"
    )


@pytest.mark.parametrize("about", [None, *Input])
def test_nonce_challenge_is_use_dpop_nonce_whatever_the_input(about: Input | None) -> None:
    exc = errors.DPoPNonceError("stale", "n-1")
    if about is not None:
        exc.about(about)
    assert oauth_error_code(exc) == "use_dpop_nonce"


@pytest.mark.parametrize(
    "exc",
    [
        errors.ReplayCacheFullError("full"),
        errors.CapacityError("full"),
        errors.StorageError("disk full"),
        errors.StorageError("disk full").about(Input.SUBJECT_TOKEN),
        errors.ReplayCacheFullError("full").about(Input.DPOP_PROOF),
    ],
)
def test_capacity_and_storage_failures_are_503_temporarily_unavailable_whatever_the_input(
    exc: errors.AuthchainError,
) -> None:
    assert oauth_error_code(exc) == "temporarily_unavailable"
    response = oauth_error_response(exc)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (errors.ScopeEscalationError, "invalid_scope"),
        (errors.LifetimeError, "invalid_scope"),
        (errors.ChainCycleError, "invalid_scope"),
        (errors.PolicyDenied, "invalid_scope"),
        (errors.SignatureError, "invalid_grant"),
        (errors.DPoPError, "invalid_grant"),
        (errors.InvalidTargetError, "invalid_grant"),
        (errors.NotFoundError, "invalid_request"),
    ],
)
def test_refusal_naming_no_input_falls_back_by_class(
    cls: type[errors.AuthchainError], expected: str
) -> None:
    assert oauth_error_code(cls("x")) == expected


def test_error_of_the_http_edge_keeps_its_code_and_status() -> None:
    exc = errors.HttpError(400, "unsupported_grant_type", "no")
    assert oauth_error_code(exc) == "unsupported_grant_type"
    assert oauth_error_response(exc).status_code == 400


def test_proof_refusal_challenges_with_the_accepted_algorithms_and_the_current_nonce() -> None:
    exc = errors.SignatureError("x").about(Input.DPOP_PROOF)
    response = oauth_error_response(exc, nonce="n-current")
    assert response.status_code == 400
    assert (
        'DPoP error="invalid_dpop_proof", algs="EdDSA ES256"'
        in response.headers["www-authenticate"]
    )
    assert response.headers["dpop-nonce"] == "n-current"


def test_nonce_challenge_at_the_token_endpoint_sends_the_nonce_to_use() -> None:
    response = oauth_error_response(errors.DPoPNonceError("stale", "n-new"), nonce="n-current")
    assert response.status_code == 400
    assert response.headers["dpop-nonce"] == "n-new"


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
        (errors.CapacityError("x"), 503),
        (errors.HttpError(415, "unsupported_media_type", "x"), 415),
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
        if isinstance(cls, type) and issubclass(cls, errors.AuthchainError):
            assert cls.code in PROBLEM_CODES, name


def test_every_input_a_token_request_can_fail_on_has_an_oauth_error() -> None:
    # The inputs of /events (a presented token or proof) are never refusals at /token.
    at_token = set(Input) - {Input.PRESENTED_TOKEN, Input.PRESENTED_PROOF}
    assert set(OAUTH_ERRORS) == at_token
