"""Keys: published vectors (RFC 8032, RFC 7638, RFC 8037), JWK and JWKS import and export, the
algorithm rules, ES256 low-s signatures, and rotation with overlap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, OKPKey

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import (
    AlgorithmError,
    ConfigurationError,
    InvalidKeyError,
    MalformedError,
    SignatureError,
)
from authchain.identity.keys import (
    JWKS,
    P256_HALF_ORDER,
    P256_ORDER,
    KeyRing,
    PublicKey,
    SigningKey,
    jwk_thumbprint,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
RFC8032 = json.loads((VECTORS / "rfc8032_ed25519.json").read_text())
THUMBPRINTS = json.loads((VECTORS / "jwk_thumbprints.json").read_text())


def test_vector_files_name_their_source() -> None:
    assert "RFC 8032" in RFC8032["source"] and "7.1" in RFC8032["source"]
    assert "RFC 7638" in THUMBPRINTS["source"] and "RFC 8037" in THUMBPRINTS["source"]
    assert [v["name"] for v in RFC8032["vectors"]] == [
        "TEST 1",
        "TEST 2",
        "TEST 3",
        "TEST 1024",
        "TEST SHA(abc)",
    ]
    assert len(bytes.fromhex(RFC8032["vectors"][3]["message"])) == 1023


@pytest.mark.parametrize("vector", RFC8032["vectors"], ids=lambda v: v["name"])
def test_rfc8032_vector_derives_the_public_key_and_reproduces_the_signature(
    vector: dict[str, str],
) -> None:
    key = SigningKey.from_ed25519_seed(bytes.fromhex(vector["secret_key"]))
    message = bytes.fromhex(vector["message"])
    assert b64url_decode(key.public.to_jwk()["x"]) == bytes.fromhex(vector["public_key"])
    # Ed25519 is deterministic (RFC 8032 5.1.6): the signature is reproduced byte for byte.
    assert key.sign(message) == bytes.fromhex(vector["signature"])
    key.public.verify(bytes.fromhex(vector["signature"]), message)


@pytest.mark.parametrize("vector", RFC8032["vectors"], ids=lambda v: v["name"])
def test_rfc8032_signature_fails_on_a_changed_message_or_signature(vector: dict[str, str]) -> None:
    public = PublicKey.from_jwk(
        {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(bytes.fromhex(vector["public_key"]))}
    )
    signature = bytearray(bytes.fromhex(vector["signature"]))
    message = bytes.fromhex(vector["message"])
    with pytest.raises(SignatureError):
        public.verify(bytes(signature), message + b"\x00")
    signature[10] ^= 0x01
    with pytest.raises(SignatureError):
        public.verify(bytes(signature), message)


def test_ed25519_signature_of_the_wrong_length_is_refused() -> None:
    key = SigningKey.generate()
    with pytest.raises(SignatureError):
        key.public.verify(key.sign(b"m")[:63], b"m")


@pytest.mark.parametrize("vector", THUMBPRINTS["vectors"], ids=lambda v: v["name"])
def test_published_jwk_thumbprint_is_reproduced(vector: dict[str, Any]) -> None:
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]


def test_rfc8037_private_key_gives_the_published_public_key_and_kid() -> None:
    private = THUMBPRINTS["rfc8037_a1_private_jwk"]
    key = SigningKey.from_private_jwk(private)
    assert key.public.to_jwk()["x"] == private["x"]
    # RFC 8037 A.3: the thumbprint, which is also the kid Authchain gives the key.
    assert key.kid == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    # RFC 8037 A.1 is the key of RFC 8032 TEST 1.
    assert b64url_decode(private["d"]) == bytes.fromhex(RFC8032["vectors"][0]["secret_key"])


def test_thumbprint_ignores_members_outside_the_required_set() -> None:
    jwk = SigningKey.generate().public.to_jwk()
    assert jwk_thumbprint({**jwk, "use": "sig", "kid": "other", "alg": "EdDSA"}) == jwk["kid"]


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "oct", "k": "c2VjcmV0"},
        {"crv": "Ed25519", "x": "AA"},
        {"kty": "OKP", "crv": "Ed25519"},
    ],
    ids=["symmetric", "no-kty", "no-x"],
)
def test_thumbprint_of_an_unsupported_or_incomplete_jwk_is_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(InvalidKeyError):
        jwk_thumbprint(jwk)


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_kid_agrees_with_joserfc_thumbprint(alg: str) -> None:
    jwk = SigningKey.generate(alg).public.to_jwk()  # type: ignore[arg-type]
    theirs = (OKPKey if alg == "EdDSA" else ECKey).import_key(jwk).thumbprint()
    assert theirs == jwk["kid"]


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_signature_round_trip_and_jwk_round_trip(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    signature = key.sign(b"message")
    assert len(signature) == 64
    imported = PublicKey.from_jwk(key.public.to_jwk())
    assert imported == key.public and imported.alg == alg
    imported.verify(signature, b"message")
    with pytest.raises(SignatureError):
        imported.verify(signature, b"other message")


def test_es256_signatures_are_always_low_s() -> None:
    # ECDSA signatures are malleable: (r, n - s) verifies too. Authchain always signs the low-s
    # form, so that a token has one spelling and one hash.
    key = SigningKey.generate("ES256")
    for i in range(64):
        s = int.from_bytes(key.sign(b"m%d" % i)[32:], "big")
        assert 0 < s <= P256_HALF_ORDER


def test_es256_high_s_twin_still_verifies_at_the_key_level() -> None:
    # The key-level verify is plain ECDSA (DPoP proofs come from any library); the task-token
    # verifier is the one that refuses the high-s twin (see test_task_token_verify.py).
    key = SigningKey.generate("ES256")
    signature = key.sign(b"m")
    r, s = signature[:32], int.from_bytes(signature[32:], "big")
    twin = r + (P256_ORDER - s).to_bytes(32, "big")
    key.public.verify(twin, b"m")


def test_es256_signature_matches_cryptography_der_form() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    d = b64url_encode(private.private_numbers().private_value.to_bytes(32, "big"))
    nums = private.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(nums.x.to_bytes(32, "big")),
        "y": b64url_encode(nums.y.to_bytes(32, "big")),
        "d": d,
    }
    key = SigningKey.from_private_jwk(jwk)
    der = private.sign(b"m", ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    s = min(s, P256_ORDER - s)
    key.public.verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), b"m")


def test_public_jwk_with_a_private_member_is_refused() -> None:
    jwk = SigningKey.generate().private_jwk()
    with pytest.raises(InvalidKeyError, match="private member"):
        PublicKey.from_jwk(jwk)


@pytest.mark.parametrize(
    ("jwk_alg", "kty"), [("ES256", "OKP"), ("EdDSA", "EC"), ("HS256", "OKP"), ("none", "EC")]
)
def test_jwk_algorithm_that_does_not_fit_the_key_is_refused(jwk_alg: str, kty: str) -> None:
    base = SigningKey.generate("EdDSA" if kty == "OKP" else "ES256").public.to_jwk(with_kid=False)
    with pytest.raises(AlgorithmError):
        PublicKey.from_jwk({**base, "alg": jwk_alg})


def test_p256_point_not_on_the_curve_is_refused() -> None:
    jwk = SigningKey.generate("ES256").public.to_jwk(with_kid=False)
    y = bytearray(b64url_decode(jwk["y"]))
    y[-1] ^= 0x01
    with pytest.raises(InvalidKeyError, match="not on the curve"):
        PublicKey.from_jwk({**jwk, "y": b64url_encode(bytes(y))})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "X25519", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(b"\x01" * 31)},
        {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
    ],
    ids=["x25519", "short-ed25519", "p384", "rsa"],
)
def test_unsupported_or_malformed_public_jwk_is_refused(jwk: dict[str, str]) -> None:
    with pytest.raises(InvalidKeyError):
        PublicKey.from_jwk(jwk)


def test_non_canonical_base64url_in_a_jwk_is_refused() -> None:
    x = SigningKey.generate().public.to_jwk()["x"]
    # 32 bytes are 43 characters whose last one carries 2 unused bits; setting one changes the
    # text but not the bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = x[:-1] + alphabet[alphabet.index(x[-1]) ^ 1]
    with pytest.raises(MalformedError):
        PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": twin})


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_private_jwk_round_trip_keeps_the_key(alg: str) -> None:
    key = SigningKey.generate(alg)  # type: ignore[arg-type]
    again = SigningKey.from_private_jwk(key.private_jwk())
    assert again.kid == key.kid
    again.public.verify(key.sign(b"m"), b"m")


def test_private_jwk_whose_public_part_belongs_to_another_key_is_refused() -> None:
    jwk = SigningKey.generate().private_jwk()
    jwk["x"] = SigningKey.generate().public.to_jwk()["x"]
    with pytest.raises(InvalidKeyError, match="do not match"):
        SigningKey.from_private_jwk(jwk)


def test_jwks_export_and_import_round_trip() -> None:
    keys = [SigningKey.generate("EdDSA").public, SigningKey.generate("ES256").public]
    exported = JWKS(keys).to_dict()
    assert all(set(k) >= {"kid", "alg", "use", "kty"} for k in exported["keys"])
    imported = JWKS.from_dict(json.loads(json.dumps(exported)))
    assert [k.kid for k in imported] == [k.kid for k in keys]
    assert imported.get(keys[1].kid) == keys[1] and keys[0].kid in imported
    assert imported.get("unknown") is None


def test_jwks_entry_whose_kid_is_not_its_thumbprint_is_refused() -> None:
    entry = SigningKey.generate().public.to_jwk()
    entry["kid"] = "my-key-1"
    with pytest.raises(InvalidKeyError, match="thumbprint"):
        JWKS.from_dict({"keys": [entry]})


def test_jwks_entry_published_for_encryption_is_refused() -> None:
    entry = SigningKey.generate().public.to_jwk()
    entry["use"] = "enc"
    with pytest.raises(InvalidKeyError, match="'use'"):
        JWKS.from_dict({"keys": [entry]})


@pytest.mark.parametrize("bad", [[], {"keys": "x"}, {"keys": ["x"]}, {}], ids=repr)
def test_malformed_jwks_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidKeyError):
        JWKS.from_dict(bad)


def test_jwks_with_too_many_keys_is_refused() -> None:
    entry = SigningKey.generate().public.to_jwk()
    with pytest.raises(InvalidKeyError, match="limit"):
        JWKS.from_dict({"keys": [entry] * (JWKS.MAX_KEYS + 1)})


def test_rotation_new_key_signs_and_old_key_verifies_until_its_tokens_expired() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing(old, max_token_lifetime=600, skew=60)
    ring.rotate(new, now=1000)
    # Only the new key signs.
    assert ring.signing_key is new
    # The retired key keeps verifying through the overlap: the longest token lifetime plus skew.
    during = ring.verification_keys(now=1000 + 600 + 60)
    assert old.kid in during and new.kid in during
    after = ring.verification_keys(now=1000 + 600 + 61)
    assert old.kid not in after and new.kid in after
    assert ring.retired() == []


def test_rotation_state_can_be_restored_mid_overlap() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing(new)
    ring.restore_retired(old.public, 5000)
    assert old.kid in ring.verification_keys(now=4999)
    assert old.kid not in ring.verification_keys(now=5001)


def test_rotating_to_the_active_key_is_refused() -> None:
    key = SigningKey.generate()
    with pytest.raises(ConfigurationError):
        KeyRing(key).rotate(key, now=0)


def test_unknown_algorithm_cannot_make_a_key() -> None:
    with pytest.raises(AlgorithmError):
        SigningKey.generate("HS256")  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        SigningKey.from_ed25519_seed(b"\x00" * 31)
