"""DPoP proofs (RFC 9449): round trips, and every hostile proof refused with its specific error."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authchain._encoding import b64url_decode, b64url_encode, sha256_b64url
from authchain.errors import (
    AlgorithmError,
    ClaimError,
    ConfigurationError,
    DPoPAccessTokenHashError,
    DPoPMethodError,
    DPoPNonceError,
    DPoPURLError,
    ExpiredError,
    InvalidKeyError,
    IssuedInFutureError,
    KeyBindingError,
    MalformedError,
    ReplayError,
    SignatureError,
    SizeLimitError,
    TokenTypeError,
    VerificationError,
)
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import (
    DPOP_TYP,
    MAX_PROOF_BYTES,
    DPoPProof,
    create_proof,
    verify_proof,
)
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

NOW = 1_750_000_000
HTM = "POST"
HTU = "https://crm.example.org/tools/lookup"
# Stands in for a task token: ath binds the proof to whatever string is presented with it.
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJ0eG4iOiJ0LTEifQ.c2lnbmF0dXJl"

ED_KEY = SigningKey.from_ed25519_seed(bytes(range(32)))
EC_KEY = SigningKey.generate("ES256")
OTHER_KEY = SigningKey.from_ed25519_seed(bytes(range(1, 33)))


def _verify(proof: str, **overrides: Any) -> DPoPProof:
    kwargs: dict[str, Any] = {
        "htm": HTM,
        "htu": HTU,
        "now": NOW,
        "replay_cache": ReplayCache(),
        "access_token": TOKEN,
        "expected_jkt": ED_KEY.kid,
    }
    kwargs.update(overrides)
    return verify_proof(proof, **kwargs)


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "jti": "jti-0123456789abcdef",
        "htm": HTM,
        "htu": HTU,
        "iat": NOW,
        "ath": sha256_b64url(TOKEN),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _header(key: SigningKey = ED_KEY, **overrides: Any) -> dict[str, Any]:
    header: dict[str, Any] = {
        "typ": DPOP_TYP,
        "alg": key.alg,
        "jwk": key.public.to_jwk(with_kid=False),
    }
    header.update(overrides)
    return {k: v for k, v in header.items() if v is not None}


def _forge(
    header: dict[str, Any] | bytes,
    claims: dict[str, Any] | bytes,
    key: SigningKey | None = ED_KEY,
) -> str:
    """Sign arbitrary header and payload bytes, bypassing every check create_proof makes."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = b64url_encode(h) + "." + b64url_encode(p)
    signature = key.sign(signing_input.encode()) if key is not None else b""
    return signing_input + "." + b64url_encode(signature)


# --------------------------------------------------------------------------------------------------
# What a valid proof is.


@pytest.mark.parametrize("key", [ED_KEY, EC_KEY], ids=["EdDSA", "ES256"])
def test_created_proof_verifies_and_reports_its_claims(key: SigningKey) -> None:
    proof = create_proof(key, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    verified = _verify(proof, expected_jkt=key.kid)
    assert verified.thumbprint == key.kid
    assert verified.jwk == key.public
    assert (verified.htm, verified.htu, verified.iat) == (HTM, HTU, NOW)
    assert verified.ath == sha256_b64url(TOKEN)
    assert verified.nonce is None
    assert len(b64url_decode(verified.jti)) >= 12  # RFC 9449 section 4.2: at least 96 bits


def test_created_proof_header_holds_only_typ_alg_and_the_public_jwk() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW)
    header = json.loads(b64url_decode(proof.split(".")[0]))
    assert header == {
        "typ": "dpop+jwt",
        "alg": "EdDSA",
        "jwk": {"kty": "OKP", "crv": "Ed25519", "x": ED_KEY.public.to_jwk()["x"]},
    }


def test_created_proof_sends_htu_without_query_and_fragment() -> None:
    proof = create_proof(ED_KEY, htm="GET", htu="HTTPS://CRM.example.org:443/x?id=7#top", now=NOW)
    claims = json.loads(b64url_decode(proof.split(".")[1]))
    assert claims["htu"] == "https://crm.example.org/x"
    assert "ath" not in claims and "nonce" not in claims


def test_created_proofs_have_distinct_jtis_but_identical_headers() -> None:
    proofs = [create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW) for _ in range(20)]
    assert len({p.split(".")[1] for p in proofs}) == 20
    assert len({p.split(".")[0] for p in proofs}) == 1


def test_proof_without_token_verifies_when_no_token_is_presented() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW)
    assert _verify(proof, access_token=None).ath is None


def test_request_url_query_and_normalisation_do_not_break_the_match() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    _verify(proof, htu="HTTPS://crm.EXAMPLE.org:443/tools/./lookup?page=2")


def test_unnormalised_htu_claim_matches_after_normalisation() -> None:
    proof = _forge(_header(), _claims(htu="https://CRM.example.org:443/tools/x/../lookup?q#f"))
    assert _verify(proof).htu == "https://CRM.example.org:443/tools/x/../lookup?q#f"


@pytest.mark.parametrize("iat", [NOW - 60, NOW + 5])
def test_iat_at_the_edges_of_the_window_is_accepted(iat: int) -> None:
    _verify(_forge(_header(), _claims(iat=iat)))


def test_same_header_cached_still_checks_each_signature() -> None:
    good = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    _verify(good)
    h64, _, s64 = good.split(".")
    tampered = h64 + "." + b64url_encode(json.dumps(_claims(jti="other")).encode()) + "." + s64
    with pytest.raises(SignatureError):
        _verify(tampered)


# --------------------------------------------------------------------------------------------------
# The three attacks the issue names.


def test_proof_signed_by_a_key_other_than_cnf_jkt_is_refused() -> None:
    proof = create_proof(OTHER_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(KeyBindingError):
        _verify(proof, expected_jkt=ED_KEY.kid)


def test_replayed_proof_jti_is_refused() -> None:
    cache = ReplayCache()
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    _verify(proof, replay_cache=cache)
    with pytest.raises(ReplayError):
        _verify(proof, replay_cache=cache, now=NOW + 1)


def test_new_proof_reusing_a_jti_is_refused_even_for_another_url() -> None:
    cache = ReplayCache()
    _verify(
        create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, jti="same"),
        replay_cache=cache,
        access_token=None,
    )
    other_url = "https://crm.example.org/tools/update"
    with pytest.raises(ReplayError):
        _verify(
            create_proof(ED_KEY, htm=HTM, htu=other_url, now=NOW + 2, jti="same"),
            replay_cache=cache,
            htu=other_url,
            access_token=None,
            now=NOW + 2,
        )


def test_same_jti_from_another_key_is_not_a_replay() -> None:
    cache = ReplayCache()
    _verify(
        create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, jti="same"),
        replay_cache=cache,
        access_token=None,
    )
    proof = create_proof(OTHER_KEY, htm=HTM, htu=HTU, now=NOW, jti="same")
    _verify(proof, replay_cache=cache, expected_jkt=OTHER_KEY.kid, access_token=None)


def test_proof_for_another_method_is_refused() -> None:
    proof = create_proof(ED_KEY, htm="GET", htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(DPoPMethodError):
        _verify(proof, htm="POST")


def test_method_comparison_is_case_sensitive() -> None:
    proof = create_proof(ED_KEY, htm="post", htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(DPoPMethodError):
        _verify(proof, htm="POST")


@pytest.mark.parametrize(
    "request_url",
    [
        "https://crm.example.org/tools/delete",
        "https://crm.example.org/tools/lookup/",
        "https://crm.example.org/tools/Lookup",
        "http://crm.example.org/tools/lookup",
        "https://crm.example.org:8443/tools/lookup",
        "https://evil.example.org/tools/lookup",
    ],
)
def test_proof_for_another_url_is_refused(request_url: str) -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(DPoPURLError):
        _verify(proof, htu=request_url)


def test_proof_with_garbage_htu_is_refused_as_a_url_mismatch() -> None:
    with pytest.raises(DPoPURLError):
        _verify(_forge(_header(), _claims(htu="javascript:alert(1)")))


# --------------------------------------------------------------------------------------------------
# Header attacks: alg, typ, jwk.


def test_alg_none_is_refused() -> None:
    with pytest.raises(AlgorithmError):
        _verify(_forge(_header(alg="none"), _claims(), key=None))


def test_hs256_with_the_jwk_as_shared_secret_is_refused() -> None:
    import hashlib
    import hmac

    header = _header(alg="HS256", jwk={"kty": "oct", "k": b64url_encode(b"s" * 32)})
    signing_input = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(_claims()).encode())
    )
    mac = hmac.new(b"s" * 32, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(AlgorithmError):
        _verify(signing_input + "." + b64url_encode(mac))


@pytest.mark.parametrize("alg", ["RS256", "ES384", "PS256", "EdDSA25519", "", None, 1])
def test_algorithms_off_the_allow_list_are_refused(alg: object) -> None:
    with pytest.raises(AlgorithmError):
        _verify(_forge(_header(alg="EdDSA") | {"alg": alg}, _claims()))


def test_alg_that_does_not_match_the_jwk_is_refused() -> None:
    # An ES256 label over an Ed25519 key: never tried as the other algorithm (RFC 8725 section 3.1).
    with pytest.raises(AlgorithmError):
        _verify(_forge(_header(alg="ES256"), _claims()))


@pytest.mark.parametrize("key", [ED_KEY, EC_KEY], ids=["EdDSA", "ES256"])
def test_private_key_in_the_jwk_header_is_refused(key: SigningKey) -> None:
    proof = _forge(_header(key, jwk=key.private_jwk()), _claims(), key=key)
    with pytest.raises(InvalidKeyError):
        _verify(proof, expected_jkt=key.kid)
    # Refusals are never cached: the same header is refused again.
    with pytest.raises(InvalidKeyError):
        _verify(proof, expected_jkt=key.kid)


@pytest.mark.parametrize(
    "jwk",
    [
        None,
        "not-an-object",
        {},
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "x": b64url_encode(bytes(32))},
        {"kty": "EC", "crv": "P-256", "x": b64url_encode(bytes(32)), "y": b64url_encode(bytes(32))},
    ],
    ids=["missing", "string", "empty", "oct", "rsa", "x25519", "ec-off-curve"],
)
def test_proof_without_a_usable_public_jwk_is_refused(jwk: object) -> None:
    with pytest.raises(InvalidKeyError):
        _verify(_forge(_header(jwk=jwk) if jwk is not None else _header(jwk=None), _claims()))


@pytest.mark.parametrize(
    "typ", [None, "JWT", "jwt", "DPOP+JWT", "application/dpop+jwt", "txntoken+jwt", 1]
)
def test_wrong_typ_is_refused(typ: object) -> None:
    header = _header(typ=typ) if typ is not None else _header(typ=None)
    with pytest.raises(TokenTypeError):
        _verify(_forge(header, _claims()))


def test_crit_header_is_refused() -> None:
    with pytest.raises(MalformedError):
        _verify(_forge(_header(crit=["exp"]), _claims()))


def test_proof_signed_by_another_key_than_its_jwk_is_refused() -> None:
    with pytest.raises(SignatureError):
        _verify(_forge(_header(ED_KEY), _claims(), key=OTHER_KEY))


# --------------------------------------------------------------------------------------------------
# Claim attacks.


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_missing_required_claim_is_refused(claim: str) -> None:
    claims = _claims()
    del claims[claim]
    with pytest.raises(ClaimError):
        _verify(_forge(_header(), claims))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("jti", ""),
        ("jti", 7),
        ("jti", "j" * 257),
        ("htm", ""),
        ("htm", ["POST"]),
        ("htm", "P" * 33),
        ("htu", ""),
        ("htu", {"href": HTU}),
        ("iat", "1750000000"),
        ("iat", float(NOW)),
        ("iat", True),
        ("ath", ""),
        ("ath", 5),
        ("ath", "é" * 43),
        ("nonce", ""),
        ("nonce", ["n"]),
        ("nonce", "\u2603"),
    ],
)
def test_claim_of_the_wrong_type_or_size_is_refused(claim: str, value: object) -> None:
    with pytest.raises(ClaimError):
        _verify(_forge(_header(), _claims(**{claim: value})))


def test_proof_issued_too_long_ago_is_refused() -> None:
    with pytest.raises(ExpiredError):
        _verify(_forge(_header(), _claims(iat=NOW - 61)))


def test_proof_issued_in_the_future_is_refused() -> None:
    with pytest.raises(IssuedInFutureError):
        _verify(_forge(_header(), _claims(iat=NOW + 6)))


def test_iat_window_and_skew_are_configurable() -> None:
    proof = _forge(_header(), _claims(iat=NOW - 100))
    with pytest.raises(ExpiredError):
        _verify(proof)
    _verify(proof, iat_window=120)
    with pytest.raises(IssuedInFutureError):
        _verify(_forge(_header(), _claims(iat=NOW + 2)), iat_skew=0)


def test_proof_made_for_another_token_is_refused() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN + "x")
    with pytest.raises(DPoPAccessTokenHashError):
        _verify(proof)


def test_proof_without_ath_is_refused_when_a_token_is_presented() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW)
    with pytest.raises(DPoPAccessTokenHashError):
        _verify(proof)


def test_non_ascii_presented_token_is_refused_not_leaked_as_unicode_error() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(DPoPAccessTokenHashError):
        _verify(proof, access_token="tökén")


def test_lone_surrogate_jti_is_refused_without_leaking_unicode_errors() -> None:
    # RFC 7493 section 2.1: a lone surrogate is refused where the JSON is parsed, as malformed.
    payload = json.dumps(_claims()).replace('"jti-0123456789abcdef"', '"\\ud800"').encode()
    proof = _forge(_header(), payload)
    cache = ReplayCache()
    with pytest.raises(MalformedError, match="lone surrogate"):
        _verify(proof, replay_cache=cache)


# --------------------------------------------------------------------------------------------------
# Encoding attacks.


def test_oversized_proof_is_refused_before_parsing() -> None:
    proof = _forge(_header(), _claims(pad="x" * MAX_PROOF_BYTES))
    with pytest.raises(SizeLimitError):
        _verify(proof)


def test_oversized_header_is_refused() -> None:
    with pytest.raises(SizeLimitError):
        _verify(_forge(_header(pad="x" * 1200), _claims()))


def test_non_canonical_base64url_signature_is_refused() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    head, sig = proof.rsplit(".", 1)
    # 64 bytes encode to 86 characters whose last one carries 4 unused bits: set one of them.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = sig[:-1] + alphabet[alphabet.index(sig[-1]) ^ 1]
    assert base64.urlsafe_b64decode(twin + "==") == base64.urlsafe_b64decode(sig + "==")
    with pytest.raises(MalformedError):
        _verify(head + "." + twin)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p + "=",  # padding
        lambda p: p.replace("-", "+").replace("_", "/") if ("-" in p or "_" in p) else p + "+",
        lambda p: p.split(".", 1)[0] + "=." + p.split(".", 1)[1],
        lambda p: p + ".extra",
        lambda p: p.rsplit(".", 1)[0],
        lambda p: p.replace(".", "..", 1),
        lambda p: p + "," + p,  # two proofs in one header value (RFC 9449 4.3 (1))
        lambda p: " " + p,
        lambda p: "",
    ],
    ids=[
        "pad",
        "std-alphabet",
        "header-pad",
        "4-segments",
        "2-segments",
        "empty-seg",
        "list",
        "space",
        "empty",
    ],
)
def test_malformed_compact_serialisation_is_refused(mutate: Any) -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(MalformedError):
        _verify(mutate(proof))


def test_duplicate_claim_names_are_refused() -> None:
    payload = json.dumps(_claims())[:-1] + ', "htm": "GET"}'
    with pytest.raises(MalformedError):
        _verify(_forge(_header(), payload.encode()))


def test_duplicate_header_names_are_refused() -> None:
    header = json.dumps(_header())[:-1] + ', "typ": "dpop+jwt"}'
    with pytest.raises(MalformedError):
        _verify(_forge(header.encode(), _claims()))


@pytest.mark.parametrize("payload", [b"[]", b'"x"', b"null", b"not json", b"\xff\xfe"])
def test_payload_that_is_not_a_json_object_is_refused(payload: bytes) -> None:
    with pytest.raises(MalformedError):
        _verify(_forge(_header(), payload))


def test_non_string_proof_is_refused() -> None:
    with pytest.raises(MalformedError):
        _verify(b"a.b.c")  # type: ignore[arg-type]


@given(st.text(max_size=300))
def test_arbitrary_text_is_refused_with_a_verification_error(text: str) -> None:
    with pytest.raises(VerificationError):
        _verify(text)


@given(st.binary(max_size=200), st.binary(max_size=200))
def test_arbitrary_header_and_payload_bytes_are_refused_with_a_verification_error(
    header: bytes, payload: bytes
) -> None:
    with pytest.raises(VerificationError):
        _verify(_forge(header, payload))


# --------------------------------------------------------------------------------------------------
# Order of checks: the replay check is last.


def test_a_proof_refused_for_another_reason_does_not_consume_its_jti() -> None:
    cache = ReplayCache()
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    for wrong in (
        {"htm": "GET"},
        {"htu": "https://crm.example.org/other"},
        {"access_token": "other-token"},
        {"expected_jkt": OTHER_KEY.kid},
        {"nonce": "required-nonce"},
        {"now": NOW + 3600},
    ):
        with pytest.raises(VerificationError) as info:
            _verify(proof, replay_cache=cache, **wrong)
        assert not isinstance(info.value, ReplayError)
    assert len(cache) == 0
    _verify(proof, replay_cache=cache)
    assert len(cache) == 1


def test_replay_is_remembered_until_the_acceptance_window_closes() -> None:
    cache = ReplayCache()
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    _verify(proof, replay_cache=cache)
    # Still inside the window: the replay cache, not the clock, refuses it.
    with pytest.raises(ReplayError):
        _verify(proof, replay_cache=cache, now=NOW + 60)
    # Outside the window: the clock refuses it, whatever the cache holds.
    with pytest.raises(ExpiredError):
        _verify(proof, replay_cache=cache, now=NOW + 61)


def test_acceptance_window_wider_than_the_replay_cache_is_a_configuration_error() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(ConfigurationError):
        _verify(proof, replay_cache=ReplayCache(window=60), iat_window=60, iat_skew=5)


# --------------------------------------------------------------------------------------------------
# Server nonces (RFC 9449 section 8).


def test_required_exact_nonce_is_checked_and_sent_back_when_missing_or_wrong() -> None:
    good = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN, nonce="n-1")
    assert _verify(good, nonce="n-1").nonce == "n-1"
    for proof in (
        create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN),
        create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN, nonce="n-0"),
    ):
        with pytest.raises(DPoPNonceError) as info:
            _verify(proof, nonce="n-1")
        assert info.value.nonce == "n-1"
        assert info.value.code == "use_dpop_nonce"


def test_nonce_source_nonce_is_accepted_and_a_missing_one_is_answered_with_a_fresh_one() -> None:
    source = NonceSource(b"k" * 32, lifetime=300)
    nonce = source.current(NOW)
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN, nonce=nonce)
    assert _verify(proof, nonce_source=source).nonce == nonce
    bare = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(DPoPNonceError) as info:
        _verify(bare, nonce_source=source)
    assert info.value.nonce == nonce


def test_expected_nonce_and_nonce_source_together_are_a_configuration_error() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    with pytest.raises(ConfigurationError):
        _verify(proof, nonce="n", nonce_source=NonceSource.generate())


def test_unrequested_nonce_is_accepted_and_reported() -> None:
    proof = create_proof(ED_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN, nonce="n-9")
    assert _verify(proof).nonce == "n-9"


def test_malleated_es256_signature_of_a_used_proof_is_still_a_replay() -> None:
    # ECDSA is malleable: (r, n - s) verifies as well as (r, s). The cache keys on the key and jti,
    # not on the proof's bytes, so a re-signed copy of a used proof is refused as a replay.
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # SEC 2 secp256r1
    cache = ReplayCache()
    proof = create_proof(EC_KEY, htm=HTM, htu=HTU, now=NOW, access_token=TOKEN)
    _verify(proof, replay_cache=cache, expected_jkt=EC_KEY.kid)
    head, sig64 = proof.rsplit(".", 1)
    sig = b64url_decode(sig64)
    s = int.from_bytes(sig[32:], "big")
    twin = head + "." + b64url_encode(sig[:32] + (n - s).to_bytes(32, "big"))
    assert twin != proof
    with pytest.raises(ReplayError):
        _verify(twin, replay_cache=cache, expected_jkt=EC_KEY.kid)


def test_public_surface_of_the_dpop_module_is_pinned() -> None:
    import authchain.tokens.dpop as dpop

    assert sorted(dpop.__all__) == [
        "DPOP_TYP",
        "DPoPProof",
        "MAX_PROOF_BYTES",
        "content_digest",
        "create_proof",
        "verify_proof",
    ]
    assert all(hasattr(dpop, name) for name in dpop.__all__)
