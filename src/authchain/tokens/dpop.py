"""DPoP proofs (RFC 9449): create one for a request, verify one against the request it came with.

Every request a workload makes carries a DPoP proof signed by its registered key
(docs/dpop.md). A tool service verifies the proof next to the task token on every request, so this path
is written for speed as well as strictness: a proof is parsed by the one compact-JWS parser (whose
header cache makes the header of a key's proofs parse once), the key its header carries is imported
once and then looked up by the header's exact text, and the URL normalisation is cached.

The parts a verifier is configured with live beside this module: URL normalisation in
:mod:`~authchain.tokens.htu`, the replay cache in :mod:`~authchain.tokens.replay`, server nonces in
:mod:`~authchain.tokens.nonce`.

What is deliberately stricter than RFC 9449 requires: ``typ`` must be exactly ``dpop+jwt``; ``iat``
must be an integer; ``jti``, ``htm``, ``ath`` and ``nonce`` have length limits, and ``ath`` and
``nonce`` must be ASCII; ``htu`` must be a plain absolute ``http``/``https`` URI (see
:func:`~authchain.tokens.htu.normalize_htu`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import b64url_encode, sha256_b64url
from authchain.errors import (
    AlgorithmError,
    ClaimError,
    ConfigurationError,
    DPoPAccessTokenHashError,
    DPoPError,
    DPoPMethodError,
    DPoPNonceError,
    DPoPURLError,
    ExpiredError,
    InvalidKeyError,
    IssuedInFutureError,
    KeyBindingError,
    TokenTypeError,
)
from authchain.identity.keys import ALLOWED_ALGORITHMS, PublicKey, SigningKey
from authchain.tokens.htu import normalize_htu
from authchain.tokens.jws import UnverifiedJWS, parse_compact, sign_compact
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

__all__ = [
    "DPOP_TYP",
    "MAX_PROOF_BYTES",
    "DPoPProof",
    "content_digest",
    "create_proof",
    "verify_proof",
]

# RFC 9449 section 4.2: the JOSE ``typ`` of a DPoP proof (explicit typing, RFC 8725 section 3.11).
DPOP_TYP: Final = "dpop+jwt"

# Size limits on untrusted input (CONVENTIONS.md), beside the compact-JWS limits every token has. A
# proof is a header of about 300 characters (P-256 jwk), a payload dominated by ``htu``, and an
# 86-character signature.
MAX_PROOF_BYTES: Final = 4096
MAX_JTI_LENGTH: Final = 256
_MAX_HTM_LENGTH: Final = 32
_MAX_ATH_LENGTH: Final = 128
_MAX_NONCE_LENGTH: Final = 512
# An RFC 9530 ``Content-Digest`` field value carrying one SHA-256 digest is 53 characters; a little
# room is left for a server that lists another algorithm beside it.
_MAX_CONTENT_DIGEST_LENGTH: Final = 256

# RFC 9449 section 4.2: ``jti`` should carry at least 96 bits of randomness; proofs made here carry 128.
_JTI_BYTES: Final = 16


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
    content_digest: str | None = None


# --------------------------------------------------------------------------------------------------
# The request body a proof covers.


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` field value of ``body`` with SHA-256: ``sha-256=:<b64>:``.

    RFC 9530 section 2: a Dictionary (RFC 8941) whose member ``sha-256`` is a Byte Sequence, which
    is base64 with padding between colons. A proof that carries this value in its ``content_digest``
    claim covers the body the header describes (docs/dpop.md, "Reports cover their body").
    """
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


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
    content_digest: str | None = None,
) -> str:
    """A DPoP proof for one request (RFC 9449 section 4.2).

    The header carries only ``typ``, ``alg`` and the RFC 7638 members of the public key, so every proof
    a key makes has the same header bytes (verifiers cache by them). ``htu`` is sent normalised, which
    drops its query and fragment as section 4.2 requires. ``ath`` (section 4.2, 9) is added when the
    proof accompanies a token; ``jti`` defaults to 128 random bits. ``content_digest`` is the
    request's RFC 9530 ``Content-Digest`` header value (:func:`content_digest`), which makes the
    proof cover the body (an Authchain claim beside RFC 9449's; ``/events`` requires it).
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
    if content_digest is not None:
        claims["content_digest"] = content_digest
    return sign_compact(header, claims, key)


# --------------------------------------------------------------------------------------------------
# Verifying proofs.

# Public keys imported from proof headers, keyed by the header's exact base64url text: every proof
# a key makes has the same header, so the import (and its on-curve check) runs once per key. The
# value is a pure function of that text; a refused import is never cached. Bounded: cleared when
# full, so a flood of distinct headers costs re-importing, not memory.
_KEY_CACHE: dict[str, PublicKey] = {}
_KEY_CACHE_MAX: Final = 4096


def _proof_key(jws: UnverifiedJWS) -> PublicKey:
    key = _KEY_CACHE.get(jws.encoded_header)
    if key is None:
        jwk = jws.unverified_header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidKeyError("DPoP proof header has no 'jwk' public key")
        # PublicKey.from_jwk refuses private members (RFC 9449 section 4.3 (7)), unsupported key
        # types, and points that are not on the curve.
        key = PublicKey.from_jwk(jwk)
        if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
            _KEY_CACHE.clear()
        _KEY_CACHE[jws.encoded_header] = key
    return key


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
    content_digest: str | None = None,
) -> DPoPProof:
    """Verify one DPoP proof against the request it came with, or raise.

    ``htm``/``htu`` are the request's method and URL (query and fragment are ignored). With
    ``access_token`` (the task token presented with the proof) the proof must carry its ``ath``; with
    ``expected_jkt`` (that token's ``cnf.jkt``, or a registered key's thumbprint) the proof's key must
    be that key. A server that requires a nonce passes either the exact ``nonce`` it handed out or a
    ``nonce_source``. A proof is accepted from ``iat_window`` seconds after its ``iat`` back to
    ``iat_skew`` seconds before it; its ``jti`` is remembered by ``replay_cache`` (``None`` only where
    replay is prevented otherwise) until the window closes. With ``content_digest`` (the request's
    ``Content-Digest`` header value, checked against the body by the caller) the proof must carry
    the same value in its ``content_digest`` claim, so the signature covers the body.

    Raises: :class:`MalformedError`/:class:`SizeLimitError` (not a well-formed proof),
    :class:`ClaimError` (a claim missing or of the wrong form), :class:`TokenTypeError`,
    :class:`AlgorithmError`, :class:`InvalidKeyError` (no usable public ``jwk``, or a private one),
    :class:`SignatureError`, :class:`DPoPMethodError`, :class:`DPoPURLError`,
    :class:`DPoPNonceError` (carrying the nonce to send back), :class:`ExpiredError` /
    :class:`IssuedInFutureError` (``iat`` outside the window), :class:`DPoPAccessTokenHashError`,
    :class:`KeyBindingError`, :class:`ReplayError`, :class:`DPoPError` (the ``content_digest``
    claim is missing or is not the request's). Every one of them concerns the proof, so the HTTP
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

    # RFC 9449 4.3 (2): a single, well-formed JWT (RFC 7515 section 7.1 compact serialisation),
    # through the compact-JWS checks every kind of token shares (parse_compact). They include step
    # (5)'s algorithm allow-list, applied before anything else in the header is read.
    jws = parse_compact(proof, what="DPoP proof", max_bytes=MAX_PROOF_BYTES)
    header = jws.unverified_header
    unverified_claims = jws.unverified_claims()

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
    claimed_digest = _optional_ascii(
        unverified_claims, "content_digest", _MAX_CONTENT_DIGEST_LENGTH
    )

    # RFC 9449 4.3 (4): explicit typing, RFC 8725 section 3.11.
    if header.get("typ") != DPOP_TYP:
        raise TokenTypeError(f"DPoP proof 'typ' must be {DPOP_TYP!r}")

    # RFC 9449 4.3 (5): an asymmetric algorithm on the allow-list. parse_compact already refused
    # anything else (``none`` and HMAC never get past parsing, CONVENTIONS.md); restated here.
    alg = header["alg"]
    if alg not in ALLOWED_ALGORITHMS:  # pragma: no cover - refused while parsing
        raise AlgorithmError(f"DPoP proof algorithm {alg!r} is not allowed")

    # RFC 9449 4.3 (7): the jwk is a public key. Checked before (6) because the key must be imported
    # to verify with it, and the import refuses private members.
    key = _proof_key(jws)

    # RFC 9449 4.3 (6): the signature verifies with the jwk. The header's alg must be the key's own
    # (RFC 8725 section 3.1): an ES256 label on an Ed25519 key is refused, not tried.
    if alg != key.alg:
        raise AlgorithmError(f"DPoP proof algorithm {alg!r} does not match the key's {key.alg!r}")
    key.verify(jws.signature, jws.signing_input)

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
    # Authchain: the body, when the request's Content-Digest must be covered (RFC 9530 section 2
    # defines the header; the claim binds it to this signature, as ``ath`` binds the token).
    if content_digest is not None:
        if claimed_digest is None:
            raise DPoPError("DPoP proof carries no 'content_digest' for the request body")
        if not hmac.compare_digest(
            claimed_digest.encode("ascii"), content_digest.encode("utf-8", "surrogatepass")
        ):
            raise DPoPError("DPoP proof 'content_digest' is not the request's Content-Digest")
    thumbprint = key.thumbprint
    if expected_jkt is not None and thumbprint != expected_jkt:
        raise KeyBindingError(
            "DPoP proof is signed by a key other than the token's cnf.jkt", thumbprint
        )

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
        content_digest=claimed_digest,
    )
