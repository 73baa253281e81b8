"""Interoperability: DPoP proofs made by PyJWT and joserfc verify here, and ours verify with them."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from authchain._encoding import b64url_decode, sha256_b64url
from authchain.errors import (
    DPoPMethodError,
    DPoPURLError,
    KeyBindingError,
    ReplayError,
    SignatureError,
)
from authchain.identity.keys import PublicKey, SigningKey, jwk_thumbprint
from authchain.tokens.dpop import create_proof, verify_proof
from authchain.tokens.replay import ReplayCache

NOW = 1_750_000_000
HTU = "https://crm.example.org/tools/lookup"
TOKEN = "eyJhbGciOiJFZERTQSJ9.eyJ0eG4iOiJ0LTEifQ.c2lnbmF0dXJl"


def _pyjwt_key(alg: str) -> tuple[Any, dict[str, str]]:
    """A cryptography private key and its public JWK, as PyJWT exports it."""
    if alg == "EdDSA":
        ed = ed25519.Ed25519PrivateKey.generate()
        return ed, OKPAlgorithm.to_jwk(ed.public_key(), as_dict=True)
    p256 = ec.generate_private_key(ec.SECP256R1())
    return p256, ECAlgorithm.to_jwk(p256.public_key(), as_dict=True)


def _pyjwt_proof(alg: str, key: Any, jwk: dict[str, str], **claims: Any) -> str:
    payload = {"jti": "pyjwt-0123456789ab", "htm": "POST", "htu": HTU, "iat": NOW}
    payload.update(claims)
    return jwt.encode(payload, key, algorithm=alg, headers={"typ": "dpop+jwt", "jwk": jwk})


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_pyjwt_proof_verifies_here(alg: str) -> None:
    key, jwk = _pyjwt_key(alg)
    proof = _pyjwt_proof(alg, key, jwk, ath=sha256_b64url(TOKEN))
    verified = verify_proof(
        proof,
        htm="POST",
        htu=HTU,
        now=NOW,
        replay_cache=ReplayCache(),
        access_token=TOKEN,
        expected_jkt=jwk_thumbprint(jwk),
    )
    assert verified.jti == "pyjwt-0123456789ab"
    assert verified.jwk.alg == alg
    assert verified.thumbprint == jwk_thumbprint(jwk)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_pyjwt_proof_is_refused_like_ours_for_the_three_named_attacks(alg: str) -> None:
    key, jwk = _pyjwt_key(alg)
    proof = _pyjwt_proof(alg, key, jwk)
    cache = ReplayCache()
    base: dict[str, Any] = {"htm": "POST", "htu": HTU, "now": NOW}
    with pytest.raises(KeyBindingError):
        verify_proof(proof, **base, replay_cache=cache, expected_jkt=SigningKey.generate().kid)
    with pytest.raises(DPoPMethodError):
        verify_proof(proof, **(base | {"htm": "GET"}), replay_cache=cache)
    with pytest.raises(DPoPURLError):
        verify_proof(proof, **(base | {"htu": HTU + "/x"}), replay_cache=cache)
    verify_proof(proof, **base, replay_cache=cache)
    with pytest.raises(ReplayError):
        verify_proof(proof, **base, replay_cache=cache)


def test_pyjwt_proof_with_a_tampered_payload_is_refused() -> None:
    key, jwk = _pyjwt_key("EdDSA")
    head, _, sig = _pyjwt_proof("EdDSA", key, jwk).split(".")
    other = _pyjwt_proof("EdDSA", key, jwk, htm="GET").split(".")[1]
    with pytest.raises(SignatureError):
        verify_proof(
            f"{head}.{other}.{sig}", htm="GET", htu=HTU, now=NOW, replay_cache=ReplayCache()
        )


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_our_proof_verifies_with_pyjwt_under_the_key_from_its_header(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    proof = create_proof(key, htm="POST", htu=HTU, now=NOW, access_token=TOKEN)
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt"
    public = jwt.PyJWK(header["jwk"], algorithm=alg)
    claims = jwt.decode(proof, public, algorithms=[alg], options={"verify_iat": False})
    assert claims["htm"] == "POST" and claims["htu"] == HTU and claims["iat"] == NOW
    assert claims["ath"] == sha256_b64url(TOKEN)
    assert jwk_thumbprint(header["jwk"]) == key.kid


# joserfc warns that "EdDSA" is deprecated in favour of the fully-specified "Ed25519" (RFC 9864);
# it still verifies, which is what this test pins.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
def test_our_proof_verifies_with_joserfc() -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import OKPKey

    key = SigningKey.generate("EdDSA")
    proof = create_proof(key, htm="GET", htu=HTU, now=NOW)
    header = json.loads(b64url_decode(proof.split(".")[0]))
    token = jose_jwt.decode(proof, OKPKey.import_key(header["jwk"]), algorithms=["EdDSA"])
    assert token.header["typ"] == "dpop+jwt"
    assert token.claims["htm"] == "GET"


def test_joserfc_proof_verifies_here() -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey

    private = ECKey.generate_key("P-256")
    public_jwk = private.as_dict(private=False)
    public_jwk.pop("kid", None)
    proof = jose_jwt.encode(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk},
        {"jti": "joserfc-0123456789", "htm": "PUT", "htu": HTU, "iat": NOW},
        private,
        algorithms=["ES256"],
    )
    verified = verify_proof(proof, htm="PUT", htu=HTU, now=NOW, replay_cache=ReplayCache())
    assert verified.jwk == PublicKey.from_jwk(public_jwk)
