"""verify_task_token: the happy path, the trust list, rotation, the time checks at their
boundaries, and the caches that keep it fast without changing its answers."""

from __future__ import annotations

import dataclasses

import pytest
from _tasktoken_helpers import (
    AUTHORITY_KEY,
    CRM,
    ISSUER,
    NOW,
    PLANNER,
    PLANNER_KEY,
    TRUST_DOMAIN,
    make_claims,
    mint,
    sign_raw,
    task_header,
    trust_for,
    verify,
)

from authchain._encoding import sha256_b64url
from authchain.errors import (
    AlgorithmError,
    ClaimError,
    ConfigurationError,
    ExpiredError,
    IssuedInFutureError,
    MalformedError,
    NotYetValidError,
    SignatureError,
    SizeLimitError,
    TokenTypeError,
    UntrustedIssuerError,
)
from authchain.identity.keys import JWKS, KeyRing, SigningKey
from authchain.tokens._frozen import FrozenDict
from authchain.tokens.claims import act_from_chain
from authchain.tokens.task_token import MAX_SKEW, TXN_TOKEN_TYP, TrustList, verify_task_token


def test_minted_token_verifies_to_the_same_claims() -> None:
    claims = make_claims(
        act=act_from_chain([PLANNER, CRM]),
        authz={
            "id": "0190c6a4-0000-7000-8000-000000000001",
            "policies": ["p1"],
            "policy_set_hash": "a" * 64,
        },
        prev=PLANNER_KEY.kid,
        log=7,
        nbf=NOW,
    )
    token = mint(claims)
    verified = verify(token)
    assert verified.claims == claims
    assert verified.kid == AUTHORITY_KEY.kid
    # The hash that names the token in prev, ath and audit events.
    assert verified.token_hash == sha256_b64url(token)


def test_header_is_exactly_typ_alg_kid() -> None:
    import orjson

    from authchain._encoding import b64url_decode

    header = orjson.loads(b64url_decode(mint().split(".")[0]))
    assert header == {"typ": TXN_TOKEN_TYP, "kid": AUTHORITY_KEY.kid, "alg": "EdDSA"}


def test_es256_issuer_key_verifies() -> None:
    key = SigningKey.generate("ES256")
    assert verify(mint(key=key), trust=trust_for(key)).claims == make_claims()


def test_unknown_issuer_is_refused_without_looking_anywhere_else() -> None:
    token = mint(make_claims(iss="https://evil.example.net"))
    with pytest.raises(UntrustedIssuerError, match="not trusted"):
        verify(token)


def test_trusted_issuer_with_an_unknown_kid_is_refused() -> None:
    attacker = SigningKey.generate()
    with pytest.raises(UntrustedIssuerError, match="no key"):
        verify(mint(key=attacker))


def test_attacker_key_under_the_issuers_kid_fails_the_signature() -> None:
    attacker = SigningKey.generate()
    token = sign_raw(task_header(AUTHORITY_KEY), make_claims().to_payload(), attacker)
    with pytest.raises(SignatureError):
        verify(token)


def test_key_embedded_in_the_header_is_never_used() -> None:
    # RFC 8725 3.10: a jwk (or jku, x5u) in the header names nothing Authchain trusts.
    attacker = SigningKey.generate()
    header = task_header(
        attacker, jwk=attacker.public.to_jwk(), jku="https://evil.example.net/jwks"
    )
    with pytest.raises(UntrustedIssuerError):
        verify(sign_raw(header, make_claims().to_payload(), attacker))


def test_key_of_one_issuer_does_not_verify_tokens_of_another() -> None:
    other = SigningKey.generate()
    trust = TrustList(
        {ISSUER: JWKS([AUTHORITY_KEY.public]), "https://other.example.org": JWKS([other.public])}
    )
    token = sign_raw(task_header(other), make_claims().to_payload(), other)  # iss = ISSUER
    with pytest.raises(UntrustedIssuerError, match="no key"):
        verify(token, trust=trust)


def test_rotation_old_tokens_verify_during_overlap_and_new_key_signs() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing(old, max_token_lifetime=300, skew=60)
    old_token = mint(key=ring.signing_key)
    ring.rotate(new, now=NOW)
    new_token = mint(key=ring.signing_key)
    trust = TrustList({ISSUER: ring.verification_keys(now=NOW + 10)})
    assert verify(old_token, trust=trust).kid == old.kid
    assert verify(new_token, trust=trust).kid == new.kid
    # Once the overlap is over the authority republishes its keys without the old one.
    trust.add(ISSUER, ring.verification_keys(now=NOW + 300 + 61))
    with pytest.raises(UntrustedIssuerError):
        verify(old_token, trust=trust)
    assert verify(new_token, trust=trust).kid == new.kid


def test_trust_list_accepts_an_exported_jwks_dict_and_can_remove_an_issuer() -> None:
    trust = TrustList({ISSUER: JWKS([AUTHORITY_KEY.public]).to_dict()})
    assert ISSUER in trust and len(trust) == 1 and list(trust) == [ISSUER]
    assert verify(mint(), trust=trust).claims == make_claims()
    trust.remove(ISSUER)
    with pytest.raises(UntrustedIssuerError):
        verify(mint(), trust=trust)


@pytest.mark.parametrize("issuer", ["", "x" * 2049])
def test_trust_list_refuses_a_bad_issuer_name(issuer: str) -> None:
    with pytest.raises(ConfigurationError):
        TrustList({issuer: JWKS([AUTHORITY_KEY.public])})


def test_trust_list_refuses_an_empty_key_set() -> None:
    with pytest.raises(ConfigurationError):
        TrustList({ISSUER: JWKS()})


# -- time ------------------------------------------------------------------------------------------


def test_expiry_is_enforced_with_the_skew_and_not_beyond() -> None:
    token = mint(make_claims(iat=NOW, exp=NOW + 300))
    verify(token, now=NOW + 300 + 59, skew=60)
    with pytest.raises(ExpiredError):
        verify(token, now=NOW + 300 + 60, skew=60)
    with pytest.raises(ExpiredError):
        verify(token, now=NOW + 300, skew=0)


def test_issued_in_the_future_is_enforced_with_the_skew() -> None:
    token = mint(make_claims(iat=NOW + 60, exp=NOW + 360))
    verify(token, now=NOW, skew=60)
    with pytest.raises(IssuedInFutureError):
        verify(token, now=NOW - 1, skew=60)


def test_not_before_is_enforced_with_the_skew() -> None:
    token = mint(make_claims(nbf=NOW + 100))
    verify(token, now=NOW + 40, skew=60)
    with pytest.raises(NotYetValidError):
        verify(token, now=NOW + 39, skew=60)


def test_lifetime_over_the_limit_is_refused() -> None:
    token = mint(make_claims(iat=NOW, exp=NOW + 3601))
    with pytest.raises(ClaimError, match="lifetime"):
        verify(token)
    assert verify(token, max_lifetime=7200).claims.exp == NOW + 3601


def test_token_that_expires_before_it_is_issued_is_refused() -> None:
    with pytest.raises(ClaimError, match="lifetime"):
        verify(mint(make_claims(iat=NOW, exp=NOW)), now=NOW - 10)


@pytest.mark.parametrize("skew", [-1, MAX_SKEW + 1])
def test_unbounded_skew_is_a_configuration_error(skew: int) -> None:
    with pytest.raises(ConfigurationError):
        verify(mint(), skew=skew)


# -- shape -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "..."],
    ids=["empty", "two", "four", "dots"],
)
def test_malformed_compact_serialisation_is_refused(token: str) -> None:
    with pytest.raises(MalformedError):
        verify(token)


def test_header_without_alg_is_refused_by_the_allow_list() -> None:
    with pytest.raises(AlgorithmError):
        verify("e30.e30.")


def test_token_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(MalformedError):
        verify(b"a.b.c")  # type: ignore[arg-type]


def test_oversized_token_is_refused_before_decoding() -> None:
    with pytest.raises(SizeLimitError):
        verify("A" * 9000)


def test_payload_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MalformedError):
        verify(sign_raw(task_header(), b"[1,2]", AUTHORITY_KEY))


def test_crit_header_is_refused() -> None:
    with pytest.raises(MalformedError, match="crit"):
        verify(sign_raw(task_header(crit=["exp"]), make_claims().to_payload(), AUTHORITY_KEY))


def test_missing_kid_is_refused() -> None:
    header = {"typ": TXN_TOKEN_TYP, "alg": "EdDSA"}
    with pytest.raises(MalformedError, match="kid"):
        verify(sign_raw(header, make_claims().to_payload(), AUTHORITY_KEY))


def test_typ_must_match_exactly() -> None:
    # RFC 7515 4.1.9 lets typ be compared case-insensitively and without "application/"; this
    # profile accepts exactly one spelling, so no two verifiers can disagree about it.
    for typ in ("TXNTOKEN+JWT", "application/txntoken+jwt", None):
        header = task_header() if typ is None else task_header(typ=typ)
        if typ is None:
            del header["typ"]
        with pytest.raises(TokenTypeError):
            verify(sign_raw(header, make_claims().to_payload(), AUTHORITY_KEY))


# -- caches ----------------------------------------------------------------------------------------


def test_verifying_twice_gives_equal_results_and_the_second_still_checks_time() -> None:
    token = mint()
    first = verify(token)
    second = verify(token)
    assert first == second
    with pytest.raises(ExpiredError):
        verify(token, now=NOW + 1000)


def test_cached_claims_still_need_this_tokens_signature() -> None:
    token = mint()
    verify(token)  # the payload is now cached
    header, payload, _ = token.split(".")
    forged = sign_raw(task_header(), make_claims().to_payload(), SigningKey.generate())
    with pytest.raises(SignatureError):
        verify(f"{header}.{payload}.{forged.rsplit('.', 1)[1]}")


def test_cached_claims_still_need_a_trusted_issuer() -> None:
    token = mint()
    verify(token)
    with pytest.raises(UntrustedIssuerError):
        verify(token, trust=trust_for(SigningKey.generate()))


def test_refused_header_is_refused_every_time() -> None:
    token = sign_raw(task_header(typ="JWT"), make_claims().to_payload(), AUTHORITY_KEY)
    for _ in range(3):
        with pytest.raises(TokenTypeError):
            verify(token)


def test_verified_claims_are_immutable_so_sharing_them_is_safe() -> None:
    token = mint()
    claims = verify(token).claims
    assert isinstance(claims.tctx, FrozenDict) and isinstance(claims.act, FrozenDict)
    with pytest.raises(TypeError):
        claims.tctx["purpose"] = "something else"
    with pytest.raises(TypeError):
        claims.act["sub"] = CRM
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.sub = "mallory"  # type: ignore[misc]
    assert verify(token).claims.tctx == {"purpose": "quarterly report"}
    mutable = claims.tctx.copy()
    mutable["purpose"] = "x"
    assert type(mutable) is dict


def test_verify_takes_the_audience_as_given() -> None:
    token = mint()
    assert (
        verify_task_token(
            token, trust=trust_for(AUTHORITY_KEY), audience=TRUST_DOMAIN, now=NOW
        ).claims.aud
        == TRUST_DOMAIN
    )
