"""Interoperability both ways: task tokens minted here verify with PyJWT and joserfc from the
exported JWKS, and task tokens they sign with an Authchain issuer key verify here.

Third-party libraries check ``exp`` against the real clock, so these tokens are issued at the
current time (the only tests that read it; Authchain's own verifier is always given ``now``).
"""

from __future__ import annotations

import time
from typing import Any

import jwt as pyjwt
import pytest
from _tasktoken_helpers import ISSUER, PLANNER, TRUST_DOMAIN, make_claims, mint, trust_for, verify
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jwt as josejwt
from joserfc.jwk import ECKey, KeySet, OKPKey

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import SignatureError
from authchain.identity.keys import JWKS, P256_ORDER, SigningKey
from authchain.tokens.claims import TaskTokenClaims, act_from_chain

pytestmark = pytest.mark.filterwarnings("ignore:EdDSA is deprecated")

ALGS = ["EdDSA", "ES256"]


def _claims(now: int) -> TaskTokenClaims:
    return make_claims(
        iat=now,
        exp=now + 300,
        act=act_from_chain([PLANNER, "spiffe://example.org/tool/crm"]),
        tctx={"purpose": "interop", "n": 3},
    )


def _key(alg: str) -> SigningKey:
    return SigningKey.generate(alg)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ALGS)
def test_token_minted_here_verifies_with_pyjwt_from_the_exported_jwks(alg: str) -> None:
    now = int(time.time())
    key = _key(alg)
    claims = _claims(now)
    token = mint(claims, key)
    exported = JWKS([key.public]).to_dict()
    jwk_set = pyjwt.PyJWKSet.from_dict(exported)
    kid = pyjwt.get_unverified_header(token)["kid"]
    decoded = pyjwt.decode(
        token,
        jwk_set[kid],
        algorithms=[alg],
        audience=TRUST_DOMAIN,
        issuer=ISSUER,
        options={"require": ["exp", "iat", "iss", "aud"]},
    )
    assert decoded == claims.to_payload()
    assert pyjwt.get_unverified_header(token)["typ"] == "txntoken+jwt"


@pytest.mark.parametrize("alg", ALGS)
def test_token_minted_here_verifies_with_joserfc_from_the_exported_jwks(alg: str) -> None:
    now = int(time.time())
    key = _key(alg)
    claims = _claims(now)
    token = mint(claims, key)
    key_set = KeySet.import_key_set(JWKS([key.public]).to_dict())
    decoded = josejwt.decode(token, key_set, algorithms=[alg])
    josejwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": TRUST_DOMAIN},
        exp={"essential": True},
    ).validate(decoded.claims)
    assert decoded.claims == claims.to_payload()
    assert decoded.header == {"typ": "txntoken+jwt", "kid": key.kid, "alg": alg}


def _cryptography_private(key: SigningKey) -> Any:
    d = b64url_decode(key.private_jwk()["d"])
    if key.alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.from_private_bytes(d)
    return ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())


def _low_s(token: str) -> str:
    """The low-s form of an ES256 signature made elsewhere (PyJWT and joserfc do not normalise);
    Authchain accepts only that form so that a token has a single spelling."""
    head, sig64 = token.rsplit(".", 1)
    sig = b64url_decode(sig64)
    s = int.from_bytes(sig[32:], "big")
    s = min(s, P256_ORDER - s)
    return f"{head}.{b64url_encode(sig[:32] + s.to_bytes(32, 'big'))}"


@pytest.mark.parametrize("alg", ALGS)
def test_task_token_signed_by_pyjwt_verifies_here(alg: str) -> None:
    now = int(time.time())
    key = _key(alg)
    claims = _claims(now)
    token = pyjwt.encode(
        claims.to_payload(),
        _cryptography_private(key),
        algorithm=alg,
        headers={"typ": "txntoken+jwt", "kid": key.kid},
    )
    if alg == "ES256":
        token = _low_s(token)
    assert verify(token, trust=trust_for(key), now=now).claims == claims


@pytest.mark.parametrize("alg", ALGS)
def test_task_token_signed_by_joserfc_verifies_here(alg: str) -> None:
    now = int(time.time())
    key = _key(alg)
    claims = _claims(now)
    their_key = (OKPKey if alg == "EdDSA" else ECKey).import_key(key.private_jwk())
    token = josejwt.encode(
        {"typ": "txntoken+jwt", "kid": key.kid, "alg": alg},
        claims.to_payload(),
        their_key,
        algorithms=[alg],
    )
    if alg == "ES256":
        token = _low_s(token)
    assert verify(token, trust=trust_for(key), now=now).claims == claims


def test_high_s_es256_signature_from_another_library_is_refused() -> None:
    # The malleable twin of a valid signature names the same claims under another hash; it is
    # refused rather than accepted as a second token.
    now = int(time.time())
    key = _key("ES256")
    token = _low_s(
        pyjwt.encode(
            _claims(now).to_payload(),
            _cryptography_private(key),
            algorithm="ES256",
            headers={"typ": "txntoken+jwt", "kid": key.kid},
        )
    )
    head, sig64 = token.rsplit(".", 1)
    sig = b64url_decode(sig64)
    high = P256_ORDER - int.from_bytes(sig[32:], "big")
    twin = f"{head}.{b64url_encode(sig[:32] + high.to_bytes(32, 'big'))}"
    with pytest.raises(SignatureError):
        verify(twin, trust=trust_for(key), now=now)
