"""DPoP proofs (RFC 9449): create one for a request, verify one against the request it came with.

Every request a workload makes carries a DPoP proof signed by its registered key (DESIGN.md,
"Tokens"). A tool service verifies the proof next to the task token on every request, so this path
is written for speed as well as strictness: the proof's header (``typ``, ``alg``, ``jwk``) is the
same on every proof a workload sends, so it is parsed and its key imported once and then looked up
by its encoded bytes in a bounded LRU cache; the URL normalisation is cached the same way.

The parts a verifier is configured with live beside this module: URL normalisation in
:mod:`~authchain.tokens.htu`, the replay cache in :mod:`~authchain.tokens.replay`, server nonces in
:mod:`~authchain.tokens.nonce`.

What is deliberately stricter than RFC 9449 requires: ``typ`` must be exactly ``dpop+jwt``; ``iat``
must be an integer; ``jti``, ``htm``, ``ath`` and ``nonce`` have length limits, and ``ath`` and
``nonce`` must be ASCII; ``htu`` must be a plain absolute ``http``/``https`` URI (see
:func:`~authchain.tokens.htu.normalize_htu`).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import b64url_decode, b64url_encode, json_loads_strict, sha256_b64url
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
    SizeLimitError,
    TokenTypeError,
)
from authchain.identity.keys import ALLOWED_ALGORITHMS, PublicKey, SigningKey
from authchain.tokens.htu import normalize_htu
from authchain.tokens.jws import MAX_HEADER_BYTES, parse_compact, sign_compact
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

__all__ = [
    "DPOP_TYP",
    "MAX_PROOF_BYTES",
    "DPoPProof",
    "create_proof",
    "verify_proof",
]

# RFC 9449 section 4.2: the JOSE ``typ`` of a DPoP proof (explicit typing, RFC 8725 section 3.11).
DPOP_TYP: Final = "dpop+jwt"

# Size limits on untrusted input (CONVENTIONS.md). A proof is a header of about 300 characters (P-256
# jwk), a payload dominated by ``htu``, and an 86-character signature.
MAX_PROOF_BYTES: Final = 4096
MAX_JTI_LENGTH: Final = 256
_MAX_HTM_LENGTH: Final = 32
_MAX_ATH_LENGTH: Final = 128
_MAX_NONCE_LENGTH: Final = 512
_MAX_SIGNATURE_CHARS: Final = 128  # 64-byte EdDSA and ES256 signatures are 86 characters

# RFC 9449 section 4.2: ``jti`` should carry at least 96 bits of randomness; proofs made here carry 128.
_JTI_BYTES: Final = 16

_HEADER_CACHE_SIZE: Final = 4096


# --------------------------------------------------------------------------------------------------
# The verified proof.


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A verified DPoP proof. ``htu`` is the claim as signed (it matched the request URL after RFC 9449
    section 4.3 normalisation); ``thumbprint`` is the RFC 7638 thumbprint of ``jwk``, the value a bound
    token carries as ``cnf.jkt``."""

    jwk: PublicKey
    thumbprint: str
    jti: str
    htm: str
    htu: str
    iat: int
    ath: str | None
    nonce: str | None


# --------------------------------------------------------------------------------------------------
# Creating proofs.


def create_proof(
    key: SigningKey,
    *,
    htm: str,
    htu: str,
    now: int,
    access_token: str | None = None,
    nonce: str | None = None,
    jti: str | None = None,
) -> str:
    """A DPoP proof for one request (RFC 9449 section 4.2).

    The header carries only ``typ``, ``alg`` and the RFC 7638 members of the public key, so every proof
    a key makes has the same header bytes (verifiers cache by them). ``htu`` is sent normalised, which
    drops its query and fragment as section 4.2 requires. ``ath`` (section 4.2, 9) is added when the
    proof accompanies a token; ``jti`` defaults to 128 random bits.
    """
    if not isinstance(htm, str) or not htm or len(htm) > _MAX_HTM_LENGTH:
        raise DPoPMethodError("htm must be an HTTP method name")
    header = {"typ": DPOP_TYP, "alg": key.alg, "jwk": key.public.to_jwk(with_kid=False)}
    claims: dict[str, Any] = {
        "jti": jti if jti is not None else b64url_encode(secrets.token_bytes(_JTI_BYTES)),
        "htm": htm,
        "htu": normalize_htu(htu),
        "iat": now,
    }
    if access_token is not None:
        claims["ath"] = sha256_b64url(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return sign_compact(header, claims, key)


# --------------------------------------------------------------------------------------------------
# Verifying proofs.


class _ProofHeader:
    """A decoded proof header, cached by its encoded bytes. The key is imported on first use, so a
    header is never trusted for more than its bytes say, and a refused import is never cached."""

    __slots__ = ("typ", "alg", "_jwk", "_key")

    def __init__(self, header: dict[str, Any]) -> None:
        self.typ: object = header.get("typ")
        self.alg: str = header["alg"]
        self._jwk: object = header.get("jwk")
        self._key: PublicKey | None = None

    def key(self) -> PublicKey:
        key = self._key
        if key is None:
            if not isinstance(self._jwk, dict):
                raise InvalidKeyError("DPoP proof header has no 'jwk' public key")
            # PublicKey.from_jwk refuses private members (RFC 9449 section 4.3 (7)), unsupported key
            # types, and points that are not on the curve. Two threads racing here compute the same
            # key; either assignment is correct.
            key = PublicKey.from_jwk(self._jwk)
            self._key = key
        return key


@functools.lru_cache(maxsize=_HEADER_CACHE_SIZE)
def _decode_header(encoded: str) -> _ProofHeader:
    # One implementation of the JWS header checks: parse_compact's (size, base64url, strict JSON
    # object, ``alg`` allow-list, no ``crit``), run on the header segment with an empty payload and
    # signature.
    return _ProofHeader(
        parse_compact(encoded + "..", max_bytes=MAX_HEADER_BYTES + 2).unverified_header
    )


def _optional_ascii(claims: dict[str, Any], name: str, limit: int) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit or not value.isascii():
        raise ClaimError(f"DPoP proof claim {name!r} must be a non-empty ASCII string")
    return value


def verify_proof(
    proof: str,
    *,
    htm: str,
    htu: str,
    now: int,
    replay_cache: ReplayCache | None,
    access_token: str | None = None,
    expected_jkt: str | None = None,
    nonce: str | None = None,
    nonce_source: NonceSource | None = None,
    iat_window: int = 60,
    iat_skew: int = 5,
) -> DPoPProof:
    """Verify one DPoP proof against the request it came with, or raise.

    ``htm``/``htu`` are the request's method and URL (query and fragment are ignored). With
    ``access_token`` (the task token presented with the proof) the proof must carry its ``ath``; with
    ``expected_jkt`` (that token's ``cnf.jkt``, or a registered key's thumbprint) the proof's key must
    be that key. A server that requires a nonce passes either the exact ``nonce`` it handed out or a
    ``nonce_source``. A proof is accepted from ``iat_window`` seconds after its ``iat`` back to
    ``iat_skew`` seconds before it; its ``jti`` is remembered by ``replay_cache`` (``None`` only where
    replay is prevented otherwise) until the window closes.

    Raises: :class:`MalformedError`/:class:`SizeLimitError` (not a well-formed proof),
    :class:`ClaimError` (a claim missing or of the wrong form), :class:`TokenTypeError`,
    :class:`AlgorithmError`, :class:`InvalidKeyError` (no usable public ``jwk``, or a private one),
    :class:`SignatureError`, :class:`DPoPMethodError`, :class:`DPoPURLError`,
    :class:`DPoPNonceError` (carrying the nonce to send back), :class:`ExpiredError` /
    :class:`IssuedInFutureError` (``iat`` outside the window), :class:`DPoPAccessTokenHashError`,
    :class:`KeyBindingError`, :class:`ReplayError`. Every one of them concerns the proof, so the HTTP
    layer answers ``invalid_dpop_proof`` (``use_dpop_nonce`` for the nonce error), RFC 9449 section 7.1.
    The caller knows which proof this is (the requester's, or one a resource server reports) and
    names it on the error with :meth:`~authchain.errors.AuthchainError.about`.

    Also :class:`ReplayCacheFullError` (a ``CapacityError``: nothing is wrong with the proof, retry
    later) and :class:`ConfigurationError` (the windows or nonce arguments are inconsistent).
    """
    if nonce is not None and nonce_source is not None:
        raise ConfigurationError("pass either an expected nonce or a nonce source, not both")
    if replay_cache is not None and iat_window + iat_skew > replay_cache.window:
        raise ConfigurationError(
            "the proof acceptance window is wider than the replay cache window"
        )

    # RFC 9449 4.3 (1): at most one DPoP header field. Counting header fields is the HTTP layer's job;
    # a comma-joined list of proofs is refused below, since "," is not base64url.

    # RFC 9449 4.3 (2): a single, well-formed JWT (RFC 7515 section 7.1 compact serialisation).
    if not isinstance(proof, str):
        raise MalformedError("DPoP proof must be a string")
    if len(proof) > MAX_PROOF_BYTES:
        raise SizeLimitError(f"DPoP proof is {len(proof)} bytes, limit {MAX_PROOF_BYTES}")
    segments = proof.split(".")
    if len(segments) != 3:
        raise MalformedError("DPoP proof is not a compact JWS (three dot-separated segments)")
    h64, p64, s64 = segments
    header = _decode_header(h64)  # RFC 9449 4.3 (5) is enforced here first; see step (5) below.
    unverified_claims = json_loads_strict(b64url_decode(p64, max_len=MAX_PROOF_BYTES))
    if not isinstance(unverified_claims, dict):
        raise MalformedError("DPoP proof payload is not a JSON object")
    signature = b64url_decode(s64, max_len=_MAX_SIGNATURE_CHARS)

    # RFC 9449 4.3 (3): the claims section 4.2 requires, of the right types.
    jti = unverified_claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise ClaimError("DPoP proof claim 'jti' is missing or not a non-empty string")
    claimed_htm = unverified_claims.get("htm")
    if not isinstance(claimed_htm, str) or not claimed_htm or len(claimed_htm) > _MAX_HTM_LENGTH:
        raise ClaimError("DPoP proof claim 'htm' is missing or not an HTTP method")
    claimed_htu = unverified_claims.get("htu")
    if not isinstance(claimed_htu, str) or not claimed_htu:
        raise ClaimError("DPoP proof claim 'htu' is missing or not a string")
    iat = unverified_claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise ClaimError("DPoP proof claim 'iat' is missing or not an integer")
    ath = _optional_ascii(unverified_claims, "ath", _MAX_ATH_LENGTH)
    claimed_nonce = _optional_ascii(unverified_claims, "nonce", _MAX_NONCE_LENGTH)

    # RFC 9449 4.3 (4): explicit typing, RFC 8725 section 3.11.
    if header.typ != DPOP_TYP:
        raise TokenTypeError(f"DPoP proof 'typ' must be {DPOP_TYP!r}")

    # RFC 9449 4.3 (5): an asymmetric algorithm on the allow-list. parse_compact already refused
    # anything else (``none`` and HMAC never get past parsing, CONVENTIONS.md); restated here.
    if header.alg not in ALLOWED_ALGORITHMS:  # pragma: no cover - refused while parsing
        raise AlgorithmError(f"algorithm {header.alg!r} is not allowed")

    # RFC 9449 4.3 (7): the jwk is a public key. Checked before (6) because the key must be imported
    # to verify with it, and the import refuses private members.
    key = header.key()

    # RFC 9449 4.3 (6): the signature verifies with the jwk. The header's alg must be the key's own
    # (RFC 8725 section 3.1): an ES256 label on an Ed25519 key is refused, not tried.
    if header.alg != key.alg:
        raise AlgorithmError(f"proof algorithm {header.alg!r} does not match its jwk")
    key.verify(signature, (h64 + "." + p64).encode("ascii"))

    # RFC 9449 4.3 (8): htm is the request's method (RFC 9110 section 9.1: case-sensitive).
    if claimed_htm != htm:
        raise DPoPMethodError(f"DPoP proof is for method {claimed_htm!r}, the request is {htm!r}")

    # RFC 9449 4.3 (9): htu is the request's URI, ignoring query and fragment, compared after
    # syntax- and scheme-based normalisation (RFC 3986 sections 6.2.2, 6.2.3).
    request_htu = normalize_htu(htu)
    if claimed_htu != request_htu and normalize_htu(claimed_htu) != request_htu:
        raise DPoPURLError(f"DPoP proof is for another URL than {request_htu!r}")

    # RFC 9449 4.3 (10) and section 8: the nonce, when the server requires one.
    if nonce_source is not None:
        if claimed_nonce is None:
            raise DPoPNonceError("DPoP proof must carry a server nonce", nonce_source.current(now))
        nonce_source.check(claimed_nonce, now)
    elif nonce is not None:
        if claimed_nonce is None or not hmac.compare_digest(
            claimed_nonce.encode("ascii"), nonce.encode("utf-8", "surrogatepass")
        ):
            raise DPoPNonceError("DPoP proof must carry the server's current nonce", nonce)

    # RFC 9449 4.3 (11) and section 11.1: created within the acceptance window.
    if iat > now + iat_skew:
        raise IssuedInFutureError("DPoP proof 'iat' is in the future")
    if iat < now - iat_window:
        raise ExpiredError(f"DPoP proof is older than {iat_window} s")

    # RFC 9449 4.3 (12) and section 9: bound to the presented token, and made by the key the token is
    # bound to.
    if access_token is not None:
        if ath is None:
            raise DPoPAccessTokenHashError("DPoP proof carries no 'ath' for the presented token")
        if not access_token.isascii() or not hmac.compare_digest(ath, sha256_b64url(access_token)):
            raise DPoPAccessTokenHashError("DPoP proof 'ath' is not the presented token's hash")
    thumbprint = key.thumbprint
    if expected_jkt is not None and thumbprint != expected_jkt:
        raise KeyBindingError("DPoP proof is signed by a key other than the token's cnf.jkt")

    # RFC 9449 section 11.1: the jti, last, so that only a proof that passed every other check
    # consumes it. It is kept until the proof would fall out of the acceptance window.
    if replay_cache is not None:
        replay_cache.check_and_store(thumbprint + ":" + jti, iat + iat_window, now)

    return DPoPProof(
        jwk=key,
        thumbprint=thumbprint,
        jti=jti,
        htm=claimed_htm,
        htu=claimed_htu,
        iat=iat,
        ath=ath,
        nonce=claimed_nonce,
    )
