"""The initiator's assertion (OpenID Connect Core 1.0 section 3.1.3.7): ``verify_id_token`` accepts
an ID token of a configured issuer for this authority, and refuses each hostile variant with the
specific error, including the ones built by hand (``alg: none``, a task token passed off as an ID
token) that ``LocalIdentityProvider`` would never produce."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from authchain._encoding import b64url_encode, json_dumps_compact, sha256_b64url
from authchain.errors import (
    AlgorithmError,
    AudienceError,
    ClaimError,
    ExpiredError,
    IssuedInFutureError,
    MalformedError,
    NotYetValidError,
    SignatureError,
    SizeLimitError,
    TokenTypeError,
    UntrustedIssuerError,
    VerificationError,
)
from authchain.identity.keys import JWKS, SigningKey
from authchain.tokens.id_token import ID_TOKEN_TYPE, LocalIdentityProvider, verify_id_token
from authchain.tokens.jws import sign_compact

IDP = "https://idp.example.org"
AUTHORITY = "https://authority.example.org"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z
KEY = SigningKey.from_ed25519_seed(bytes(range(32)))
ISSUERS = {IDP: JWKS([KEY.public])}


def _claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": IDP,
        "sub": "alice@example.org",
        "aud": AUTHORITY,
        "iat": NOW,
        "exp": NOW + 300,
        "nonce": "n-0S6_WzA2Mj",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _token(
    claims: dict[str, Any] | None = None,
    *,
    header: dict[str, Any] | None = None,
    key: SigningKey = KEY,
) -> str:
    hdr = {"typ": "JWT", "kid": KEY.kid} if header is None else header
    return sign_compact(hdr, _claims() if claims is None else claims, key)


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return (
        b64url_encode(json_dumps_compact(header))
        + "."
        + b64url_encode(json_dumps_compact(claims))
        + "."
    )


def _verify(token: str, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"issuers": ISSUERS, "audience": AUTHORITY, "now": NOW}
    options.update(kwargs)
    return verify_id_token(token, **options)


def test_valid_id_token_yields_the_verified_assertion() -> None:
    token = _token(_claims(name="Alice"))
    assertion = _verify(token)
    assert assertion.issuer == IDP
    assert assertion.subject == "alice@example.org"
    assert assertion.audience == (AUTHORITY,)
    assert (assertion.issued_at, assertion.expires_at) == (NOW, NOW + 300)
    assert assertion.token_hash == sha256_b64url(token)
    assert assertion.name == "Alice"
    assert assertion.kind == "user"
    assert ID_TOKEN_TYPE == "urn:ietf:params:oauth:token-type:id_token"  # RFC 8693 section 3


def test_audience_list_containing_the_authority_is_accepted() -> None:
    assertion = _verify(_token(_claims(aud=["https://other.example.org", AUTHORITY])))
    assert assertion.audience == ("https://other.example.org", AUTHORITY)


def test_token_without_kid_verifies_under_a_single_key_issuer() -> None:
    assert _verify(_token(header={"typ": "JWT"})).subject == "alice@example.org"


def test_clock_skew_of_a_minute_is_tolerated_both_ways() -> None:
    assert _verify(_token(_claims(exp=NOW - 30)))
    assert _verify(_token(_claims(iat=NOW + 30, exp=NOW + 300)))


def test_local_identity_provider_issues_tokens_that_verify() -> None:
    idp = LocalIdentityProvider(IDP)
    token = idp.issue("bob@example.org", audience=AUTHORITY, now=NOW, name="Bob")
    assertion = verify_id_token(token, issuers={IDP: idp.jwks}, audience=AUTHORITY, now=NOW)
    assert (assertion.subject, assertion.name) == ("bob@example.org", "Bob")


HOSTILE: list[tuple[str, Callable[[], str], type[VerificationError]]] = [
    (
        "untrusted issuer",
        lambda: _token(_claims(iss="https://rogue.example.net")),
        UntrustedIssuerError,
    ),
    (
        "trusted issuer, unknown kid",
        lambda: _token(header={"typ": "JWT", "kid": "not-a-known-kid"}),
        UntrustedIssuerError,
    ),
    (
        "trusted kid, signed by another key",
        lambda: _token(header={"typ": "JWT", "kid": KEY.kid}, key=SigningKey.generate()),
        SignatureError,
    ),
    ("wrong audience", lambda: _token(_claims(aud="https://else.example.org")), AudienceError),
    ("audience missing", lambda: _token(_claims(aud=None)), ClaimError),
    ("audience list without us", lambda: _token(_claims(aud=["https://x.example"])), AudienceError),
    ("expired", lambda: _token(_claims(iat=NOW - 900, exp=NOW - 120)), ExpiredError),
    (
        "issued in the future",
        lambda: _token(_claims(iat=NOW + 600, exp=NOW + 900)),
        IssuedInFutureError,
    ),
    ("not yet valid", lambda: _token(_claims(nbf=NOW + 600)), NotYetValidError),
    ("lifetime over a day", lambda: _token(_claims(exp=NOW + 2 * 86400)), ClaimError),
    ("exp is a boolean", lambda: _token(_claims(exp=True)), ClaimError),
    ("exp missing", lambda: _token(_claims(exp=None)), ClaimError),
    (
        "task token type",
        lambda: _token(header={"typ": "txntoken+jwt", "kid": KEY.kid}),
        TokenTypeError,
    ),
    ("DPoP proof type", lambda: _token(header={"typ": "dpop+jwt", "kid": KEY.kid}), TokenTypeError),
    ("alg none", lambda: _unsigned({"alg": "none", "typ": "JWT"}, _claims()), AlgorithmError),
    ("alg HS256", lambda: _unsigned({"alg": "HS256", "typ": "JWT"}, _claims()), AlgorithmError),
    ("sub missing", lambda: _token(_claims(sub=None)), ClaimError),
    ("sub empty", lambda: _token(_claims(sub="")), ClaimError),
    ("sub not a string", lambda: _token(_claims(sub=42)), ClaimError),
    ("sub too long", lambda: _token(_claims(sub="a" * 600)), SizeLimitError),
    ("iss missing", lambda: _token(_claims(iss=None)), ClaimError),
    ("not a JWS", lambda: "not.a-token", MalformedError),
]


@pytest.mark.parametrize(
    ("token", "error"),
    [(make, error) for _, make, error in HOSTILE],
    ids=[n for n, _, _ in HOSTILE],
)
def test_hostile_id_token_is_refused_with_its_specific_error(
    token: Callable[[], str], error: type[VerificationError]
) -> None:
    with pytest.raises(error):
        _verify(token())


def test_payload_that_is_not_an_object_is_refused() -> None:
    h = b64url_encode(json_dumps_compact({"typ": "JWT", "alg": "EdDSA", "kid": KEY.kid}))
    p = b64url_encode(b'["iss","sub"]')
    signing_input = f"{h}.{p}"
    token = signing_input + "." + b64url_encode(KEY.sign(signing_input.encode()))
    # The one compact-JWS parser refuses a payload that is not a JSON object as malformed, for
    # every kind of token (RFC 7519 section 7.2 step 10), as task tokens and DPoP proofs always did.
    with pytest.raises(MalformedError, match="ID token payload is not a JSON object"):
        _verify(token)


def test_untrusted_issuer_is_refused_before_any_key_is_looked_up() -> None:
    # A token naming an issuer that is not configured is refused even if some configured issuer
    # happens to hold the signing key: keys are chosen by the configured issuer, never by iss.
    rogue = _token(_claims(iss="https://rogue.example.net"))
    with pytest.raises(UntrustedIssuerError):
        _verify(
            rogue, issuers={IDP: JWKS([KEY.public]), "https://other.example": JWKS([KEY.public])}
        )
