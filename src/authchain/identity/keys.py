"""Workload and issuer keys: Ed25519 (default) and ES256, JWK import and export, RFC 7638 thumbprints,
JWKS, and rotation with overlap.

Ed25519 goes through PyNaCl (libsodium) rather than ``cryptography``: on these machines libsodium
verifies about twice as fast, and verification is on every request a tool service receives. ES256
goes through ``cryptography``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import nacl.exceptions
import nacl.signing
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import AlgorithmError, ConfigurationError, InvalidKeyError, SignatureError

__all__ = [
    "Algorithm",
    "ALLOWED_ALGORITHMS",
    "PublicKey",
    "SigningKey",
    "JWKS",
    "KeyRing",
    "jwk_thumbprint",
]

Algorithm = Literal["EdDSA", "ES256"]

# The one allow-list of signature algorithms (CONVENTIONS.md, "Verification code"). ``none`` and every
# symmetric algorithm are refused wherever an ``alg`` is read, before anything else is parsed.
ALLOWED_ALGORITHMS: Final[frozenset[str]] = frozenset({"EdDSA", "ES256"})

# RFC 7638 section 3.2: the required members, per key type, that a thumbprint covers.
_THUMBPRINT_MEMBERS: Final[dict[str, tuple[str, ...]]] = {
    "OKP": ("crv", "kty", "x"),  # RFC 8037 section 2
    "EC": ("crv", "kty", "x", "y"),  # RFC 7518 section 6.2.1
    "RSA": ("e", "kty", "n"),  # RFC 7518 section 6.3.1; thumbprints only, RSA never signs here
}

# Members that make a JWK private (RFC 7518 section 6.2.2, 6.3.2; RFC 8037 section 2).
_PRIVATE_MEMBERS: Final[frozenset[str]] = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

# SEC 2 v2 section 2.4.2 (secp256r1): the order n of the base point, and n // 2, the largest "low"
# ECDSA s value.
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
P256_HALF_ORDER: Final = P256_ORDER // 2

_MAX_JWK_MEMBER = 512  # bytes of any one member; real EC/OKP members are 43 characters


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 section 3: base64url SHA-256 over the required members, sorted, without whitespace."""
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _THUMBPRINT_MEMBERS:
        raise InvalidKeyError("unsupported or missing key type 'kty'")
    members = {}
    for name in _THUMBPRINT_MEMBERS[kty]:
        value = jwk.get(name)
        if not isinstance(value, str) or len(value) > _MAX_JWK_MEMBER * 4:
            raise InvalidKeyError(f"JWK member {name!r} is missing or not a string")
        members[name] = value
    # RFC 7638 section 3.3: members in lexicographic order, no whitespace, UTF-8. ``sort_keys`` plus
    # compact separators is exactly that for these ASCII member names and values.
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


class PublicKey:
    """A verification key: Ed25519 or P-256. Immutable after construction."""

    __slots__ = ("alg", "_jwk", "kid", "_ed", "_ec")

    alg: Algorithm
    kid: str

    def __init__(self, alg: Algorithm, jwk: dict[str, str], impl: object) -> None:
        self.alg = alg
        self._jwk = jwk
        self.kid = jwk_thumbprint(jwk)
        self._ed: nacl.signing.VerifyKey | None = None
        self._ec: ec.EllipticCurvePublicKey | None = None
        if alg == "EdDSA":
            assert isinstance(impl, nacl.signing.VerifyKey)
            self._ed = impl
        else:
            assert isinstance(impl, ec.EllipticCurvePublicKey)
            self._ec = impl

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublicKey:
        """Import a public JWK. Private members are refused: a public-key slot never holds a secret."""
        if not isinstance(jwk, Mapping):
            raise InvalidKeyError("JWK must be a JSON object")
        present_private = _PRIVATE_MEMBERS.intersection(jwk)
        if present_private:
            raise InvalidKeyError(
                f"JWK carries private member(s) {sorted(present_private)}; a public key is required"
            )
        kty = jwk.get("kty")
        alg = jwk.get("alg")
        if alg is not None and alg not in ALLOWED_ALGORITHMS:
            raise AlgorithmError(f"JWK algorithm {alg!r} is not allowed")
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise InvalidKeyError("OKP key must have crv 'Ed25519'")
            if alg not in (None, "EdDSA"):
                raise AlgorithmError("Ed25519 key must be used with alg 'EdDSA'")
            x = _member(jwk, "x")
            raw = b64url_decode(x, max_len=_MAX_JWK_MEMBER)
            if len(raw) != 32:
                raise InvalidKeyError("Ed25519 public key must be 32 bytes")
            try:
                vk = nacl.signing.VerifyKey(raw)
            except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
                raise InvalidKeyError("invalid Ed25519 public key") from exc
            return cls("EdDSA", {"kty": "OKP", "crv": "Ed25519", "x": x}, vk)
        if kty == "EC":
            if jwk.get("crv") != "P-256":
                raise InvalidKeyError("EC key must have crv 'P-256'")
            if alg not in (None, "ES256"):
                raise AlgorithmError("P-256 key must be used with alg 'ES256'")
            x, y = _member(jwk, "x"), _member(jwk, "y")
            xb = b64url_decode(x, max_len=_MAX_JWK_MEMBER)
            yb = b64url_decode(y, max_len=_MAX_JWK_MEMBER)
            if len(xb) != 32 or len(yb) != 32:
                raise InvalidKeyError("P-256 coordinates must be 32 bytes each")
            try:
                # from_encoded_point checks that the point is on the curve (invalid-curve attacks).
                pub = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1(), b"\x04" + xb + yb
                )
            except ValueError as exc:
                raise InvalidKeyError("P-256 point is not on the curve") from exc
            return cls("ES256", {"kty": "EC", "crv": "P-256", "x": x, "y": y}, pub)
        raise InvalidKeyError(
            f"unsupported key type {kty!r}; expected 'OKP' (Ed25519) or 'EC' (P-256)"
        )

    def to_jwk(self, *, with_kid: bool = True) -> dict[str, str]:
        """The public JWK, with ``kid`` (the RFC 7638 thumbprint), ``alg`` and ``use``."""
        out = dict(self._jwk)
        if with_kid:
            out["kid"] = self.kid
            out["alg"] = self.alg
            out["use"] = "sig"
        return out

    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint; equal to ``kid`` and to a bound token's ``cnf.jkt``."""
        return self.kid

    def verify(self, signature: bytes, message: bytes) -> None:
        """Verify a JWS signature (RFC 7518 section 3.4 raw ``r || s`` for ES256) or raise."""
        if self._ed is not None:
            if len(signature) != 64:
                raise SignatureError("signature invalid")
            try:
                self._ed.verify(message, signature)
            except nacl.exceptions.BadSignatureError as exc:
                raise SignatureError("signature invalid") from exc
            return
        assert self._ec is not None
        if len(signature) != 64:
            raise SignatureError("signature invalid")
        r = int.from_bytes(signature[:32], "big")
        s = int.from_bytes(signature[32:], "big")
        try:
            self._ec.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise SignatureError("signature invalid") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.kid == self.kid

    def __hash__(self) -> int:
        return hash(self.kid)

    def __repr__(self) -> str:
        return f"PublicKey(alg={self.alg!r}, kid={self.kid!r})"


def _member(jwk: Mapping[str, Any], name: str) -> str:
    value = jwk.get(name)
    if not isinstance(value, str):
        raise InvalidKeyError(f"JWK member {name!r} is missing or not a string")
    return value


class SigningKey:
    """A private key that signs JWS. Never serialised except on explicit request (``private_jwk``)."""

    __slots__ = ("alg", "public", "_ed", "_ec")

    alg: Algorithm
    public: PublicKey

    def __init__(self, alg: Algorithm, impl: object) -> None:
        self.alg = alg
        self._ed: nacl.signing.SigningKey | None = None
        self._ec: ec.EllipticCurvePrivateKey | None = None
        if alg == "EdDSA":
            assert isinstance(impl, nacl.signing.SigningKey)
            self._ed = impl
            x = b64url_encode(bytes(impl.verify_key))
            self.public = PublicKey.from_jwk({"kty": "OKP", "crv": "Ed25519", "x": x})
        elif alg == "ES256":
            assert isinstance(impl, ec.EllipticCurvePrivateKey)
            self._ec = impl
            nums = impl.public_key().public_numbers()
            self.public = PublicKey.from_jwk(
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": b64url_encode(nums.x.to_bytes(32, "big")),
                    "y": b64url_encode(nums.y.to_bytes(32, "big")),
                }
            )
        else:
            raise AlgorithmError(f"algorithm {alg!r} is not allowed")

    @classmethod
    def generate(cls, alg: Algorithm = "EdDSA") -> SigningKey:
        if alg == "EdDSA":
            return cls("EdDSA", nacl.signing.SigningKey.generate())
        if alg == "ES256":
            return cls("ES256", ec.generate_private_key(ec.SECP256R1()))
        raise AlgorithmError(f"algorithm {alg!r} is not allowed")

    @classmethod
    def from_ed25519_seed(cls, seed: bytes) -> SigningKey:
        """RFC 8032 section 5.1.5: the 32-byte private key (seed) determines the key pair."""
        if len(seed) != 32:
            raise InvalidKeyError("Ed25519 seed must be 32 bytes")
        return cls("EdDSA", nacl.signing.SigningKey(seed))

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, Any]) -> SigningKey:
        """Import a private JWK (``d`` present); checks that the public part matches ``d``."""
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("d"), str):
            raise InvalidKeyError("private JWK must have member 'd'")
        d = b64url_decode(jwk["d"], max_len=_MAX_JWK_MEMBER)
        key: SigningKey
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            key = cls.from_ed25519_seed(d)
        elif jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            if len(d) != 32:
                raise InvalidKeyError("P-256 private key must be 32 bytes")
            try:
                priv = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
            except ValueError as exc:
                raise InvalidKeyError("invalid P-256 private key") from exc
            key = cls("ES256", priv)
        else:
            raise InvalidKeyError("unsupported private JWK; expected Ed25519 (OKP) or P-256 (EC)")
        public_members = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
        if "x" in public_members and jwk_thumbprint(public_members) != key.kid:
            raise InvalidKeyError("private JWK's public members do not match its private key")
        return key

    @property
    def kid(self) -> str:
        return self.public.kid

    def private_jwk(self) -> dict[str, str]:
        """The private JWK (for keeping a workload's key on disk). Handle as a secret."""
        out = self.public.to_jwk()
        if self._ed is not None:
            out["d"] = b64url_encode(bytes(self._ed))
        else:
            assert self._ec is not None
            out["d"] = b64url_encode(self._ec.private_numbers().private_value.to_bytes(32, "big"))
        return out

    def sign(self, message: bytes) -> bytes:
        """A JWS signature: 64 bytes for both Ed25519 and ES256 (raw ``r || s``, RFC 7518 3.4)."""
        if self._ed is not None:
            return bytes(self._ed.sign(message).signature)
        assert self._ec is not None
        der = self._ec.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # ECDSA is malleable: (r, n - s) verifies as well as (r, s). Token hashes name tokens (for
        # ``prev``, revocation and audit), so every signature made here takes the low-s form and
        # the task-token verifier refuses the other (SEC 1 v2 section 4.1.3; BIP 62 "low S").
        if s > P256_HALF_ORDER:
            s = P256_ORDER - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def __repr__(self) -> str:
        return f"SigningKey(alg={self.alg!r}, kid={self.kid!r})"


class JWKS:
    """A JSON Web Key Set of public keys, looked up by ``kid`` (RFC 7517 section 5)."""

    __slots__ = ("_keys",)

    MAX_KEYS: Final = 64

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[str, PublicKey] = {}
        for key in keys:
            self._keys[key.kid] = key

    @classmethod
    def from_dict(cls, jwks: Mapping[str, Any]) -> JWKS:
        """Import ``{"keys": [...]}``. A key whose ``kid`` is not its thumbprint is refused, so a
        ``kid`` always names exactly one key."""
        if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
            raise InvalidKeyError("JWKS must be an object with a 'keys' array")
        entries = jwks["keys"]
        if len(entries) > cls.MAX_KEYS:
            raise InvalidKeyError(f"JWKS has {len(entries)} keys, limit {cls.MAX_KEYS}")
        keys = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise InvalidKeyError("JWKS entry must be an object")
            # RFC 7517 section 4.2: a key published for encryption ("use": "enc") must not verify.
            use = entry.get("use")
            if use is not None and use != "sig":
                raise InvalidKeyError(f"JWKS entry has 'use' {use!r}; a signature key needs 'sig'")
            public = {k: v for k, v in entry.items() if k not in ("kid", "use", "key_ops")}
            key = PublicKey.from_jwk(public)
            if "kid" in entry and entry["kid"] != key.kid:
                raise InvalidKeyError("JWKS entry 'kid' is not the key's RFC 7638 thumbprint")
            keys.append(key)
        return cls(keys)

    def to_dict(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [k.to_jwk() for k in self._keys.values()]}

    def get(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(slots=True)
class _Retired:
    key: PublicKey
    verify_until: int


@dataclass(slots=True)
class KeyRing:
    """An issuer's keys: one active signing key and retired keys that still verify.

    Rotation with overlap: after ``rotate``, only the new key signs, and the old one keeps verifying
    until every token it signed has expired (``now`` + the longest token lifetime + allowed skew).
    """

    active: SigningKey
    max_token_lifetime: int = 900
    skew: int = 60
    _retired: list[_Retired] = field(default_factory=list)

    @property
    def signing_key(self) -> SigningKey:
        return self.active

    def rotate(self, new_key: SigningKey, *, now: int) -> None:
        if new_key.kid == self.active.kid:
            raise ConfigurationError("the new key is the active key")
        self._retired.append(
            _Retired(self.active.public, now + self.max_token_lifetime + self.skew)
        )
        self.active = new_key

    def verification_keys(self, *, now: int) -> JWKS:
        """The keys that verify at ``now``: the active key and retired keys still in their overlap."""
        self._retired = [r for r in self._retired if r.verify_until >= now]
        return JWKS([self.active.public, *(r.key for r in self._retired)])

    def retired(self) -> list[tuple[PublicKey, int]]:
        return [(r.key, r.verify_until) for r in self._retired]

    def restore_retired(self, key: PublicKey, verify_until: int) -> None:
        """Re-load a retired key from storage (an authority restarting mid-overlap)."""
        self._retired.append(_Retired(key, verify_until))
