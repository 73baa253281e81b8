"""The table of hostile task tokens from issue 2: each is refused with its specific error.

(The DPoP rows, proof key not matching cnf.jkt, replayed jti, other method or URL, are in the DPoP
tests.)
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import orjson
import pytest
from _tasktoken_helpers import (
    AUTHORITY_KEY,
    CRM,
    NOW,
    PLANNER,
    make_claims,
    mint,
    sign_raw,
    task_header,
    verify,
)

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import (
    AlgorithmError,
    AudienceError,
    ExpiredError,
    IssuedInFutureError,
    MalformedError,
    SignatureError,
    SizeLimitError,
    TokenTypeError,
    VerificationError,
)
from authchain.identity.keys import JWKS, P256_ORDER, SigningKey
from authchain.tokens.claims import act_from_chain
from authchain.tokens.task_token import TrustList

ES256_KEY = SigningKey.from_private_jwk(SigningKey.generate("ES256").private_jwk())


def _b64(obj: object) -> str:
    return b64url_encode(orjson.dumps(obj))


def _payload() -> dict[str, object]:
    return make_claims().to_payload()


def alg_none() -> str:
    # RFC 7519 6.1: an unsecured JWT, with an empty signature.
    header = {"typ": "txntoken+jwt", "alg": "none", "kid": AUTHORITY_KEY.kid}
    return f"{_b64(header)}.{_b64(_payload())}."


def hs256_with_public_key_as_secret() -> str:
    # The classic key-confusion attack: HMAC keyed with the issuer's public key bytes.
    header = {"typ": "txntoken+jwt", "alg": "HS256", "kid": AUTHORITY_KEY.kid}
    signing_input = f"{_b64(header)}.{_b64(_payload())}"
    secret = b64url_decode(AUTHORITY_KEY.public.to_jwk()["x"])
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url_encode(mac)}"


def eddsa_token_where_the_key_is_es256() -> str:
    # Labelled EdDSA, naming the issuer's ES256 key; signed with an Ed25519 key.
    header = {"typ": "txntoken+jwt", "alg": "EdDSA", "kid": ES256_KEY.kid}
    return sign_raw(header, _payload(), SigningKey.generate())


def wrong_typ() -> str:
    return sign_raw(task_header(typ="JWT"), _payload(), AUTHORITY_KEY)


def dpop_typ() -> str:
    # A DPoP proof signed by a trusted key is still not a task token (RFC 8725 3.11).
    return sign_raw(task_header(typ="dpop+jwt"), _payload(), AUTHORITY_KEY)


def wrong_aud() -> str:
    return mint(make_claims(aud="other.example.com"))


def expired() -> str:
    return mint(make_claims(iat=NOW - 1000, exp=NOW - 700))


def iat_in_the_future() -> str:
    return mint(make_claims(iat=NOW + 3600, exp=NOW + 3900))


def tampered_payload() -> str:
    header, _, signature = mint().split(".")
    payload = _payload()
    payload["scope"] = "crm:read crm:write mail:send admin:all"
    return f"{header}.{_b64(payload)}.{signature}"


def tampered_act_chain() -> str:
    # The holder rewrites the chain to hide an actor (or to claim another was in it).
    header, _, signature = mint(make_claims(act=act_from_chain([PLANNER, CRM]))).split(".")
    payload = _payload()
    payload["act"] = {"sub": CRM}
    return f"{header}.{_b64(payload)}.{signature}"


def oversized_header() -> str:
    return sign_raw(task_header(pad="x" * 2000), _payload(), AUTHORITY_KEY)


def duplicate_member_in_payload() -> str:
    # Signed by the issuer key itself: the refusal must not depend on the signature failing.
    body = orjson.dumps(_payload())[:-1] + b',"sub":"mallory@example.org"}'
    return sign_raw(task_header(), body, AUTHORITY_KEY)


def duplicate_member_in_header() -> str:
    header = orjson.dumps(task_header())[:-1] + b',"typ":"txntoken+jwt"}'
    return sign_raw(header, _payload(), AUTHORITY_KEY)


def non_canonical_base64url_signature() -> str:
    # The last of 86 characters carries 2 bits that encode nothing; setting one spells the same
    # signature differently, which would give the same token a second hash.
    token = mint()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = token[-1]
    return token[:-1] + alphabet[alphabet.index(last) ^ 1]


def non_canonical_base64url_payload() -> str:
    header, payload, signature = mint().split(".")
    return f"{header}.{payload}=.{signature}"


def high_s_es256_twin() -> str:
    # The other valid ECDSA signature of an ES256 token: same claims, second spelling and hash.
    token = mint(key=ES256_KEY)
    head, sig64 = token.rsplit(".", 1)
    sig = b64url_decode(sig64)
    s = int.from_bytes(sig[32:], "big")
    return f"{head}.{b64url_encode(sig[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


HOSTILE: list[tuple[Callable[[], str], type[VerificationError]]] = [
    (alg_none, AlgorithmError),
    (hs256_with_public_key_as_secret, AlgorithmError),
    (eddsa_token_where_the_key_is_es256, AlgorithmError),
    (wrong_typ, TokenTypeError),
    (dpop_typ, TokenTypeError),
    (wrong_aud, AudienceError),
    (expired, ExpiredError),
    (iat_in_the_future, IssuedInFutureError),
    (tampered_payload, SignatureError),
    (tampered_act_chain, SignatureError),
    (oversized_header, SizeLimitError),
    (duplicate_member_in_payload, MalformedError),
    (duplicate_member_in_header, MalformedError),
    (non_canonical_base64url_signature, MalformedError),
    (non_canonical_base64url_payload, MalformedError),
    (high_s_es256_twin, SignatureError),
]


@pytest.mark.parametrize(("attack", "error"), HOSTILE, ids=[a.__name__ for a, _ in HOSTILE])
def test_hostile_task_token_is_refused_with_its_specific_error(
    attack: Callable[[], str], error: type[VerificationError]
) -> None:
    trust = TrustList(
        {"https://authority.example.org": JWKS([AUTHORITY_KEY.public, ES256_KEY.public])}
    )
    token = attack()
    with pytest.raises(error) as caught:
        verify(token, trust=trust)
    # Exactly this error, not a parent or sibling class that happens to match.
    assert type(caught.value) is error


def test_each_hostile_token_differs_from_a_valid_one_only_by_its_attack() -> None:
    # The table would prove nothing if the base token did not verify.
    trust = TrustList(
        {"https://authority.example.org": JWKS([AUTHORITY_KEY.public, ES256_KEY.public])}
    )
    assert verify(mint(), trust=trust).claims == make_claims()
    assert verify(mint(key=ES256_KEY), trust=trust).claims == make_claims()
