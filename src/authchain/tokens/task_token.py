"""Task tokens: minting, the trust list, and the strict verifier that every tool runs on every
request it receives.

A task token (``typ: txntoken+jwt``) carries one task from its initiator through every actor that
holds it (docs/tokens.md). Its claims are :class:`~authchain.tokens.claims.TaskTokenClaims`;
this module signs them and verifies them.

The verifier is written for that hot path. It parses once, with the one compact-JWS parser (whose
header cache makes the header checks of a key's tokens run once), and decides early: the issuer's
keys are a flat ``(iss, kid)`` lookup prepared when the trust list is built; a payload whose
signature once verified has its parsed claims cached by its exact text; the claims are read with
plain dict access after the signature, never through a generic validation framework. Only ``iss``
is read before the signature is checked (it picks the key set), so an attacker without an issuer
key never reaches the claim parser.

References: draft-ietf-oauth-transaction-tokens-10 ("Txn-Tokens") sections 6, 9.1 and 9.2;
RFC 7515 (JWS); RFC 7519 (JWT) sections 4.1 and 7.2; RFC 8725 (JWT BCP) sections 3.1, 3.8, 3.10
and 3.11; RFC 9449 section 6.1 (``cnf.jkt``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import sha256_b64url
from authchain.errors import (
    AlgorithmError,
    AudienceError,
    ClaimError,
    ConfigurationError,
    ExpiredError,
    IssuedInFutureError,
    MalformedError,
    NotYetValidError,
    SignatureError,
    TokenTypeError,
    UntrustedIssuerError,
)
from authchain.identity.keys import JWKS, P256_HALF_ORDER, PublicKey, SigningKey
from authchain.tokens.claims import MAX_ID_CHARS, MAX_URI_CHARS, TaskTokenClaims
from authchain.tokens.jws import _show, parse_compact, sign_compact

__all__ = [
    "TXN_TOKEN_TYP",
    "TXN_TOKEN_TYPE_URN",
    "MAX_SKEW",
    "TrustList",
    "VerifiedTaskToken",
    "mint_task_token",
    "verify_task_token",
]

# Txn-Tokens section 9.1: "The typ Header Parameter MUST be present and MUST have the value
# txntoken+jwt". RFC 8725 section 3.11: explicit typing keeps a DPoP proof, an ID token or any
# other JWT signed by a trusted key from being accepted as a task token.
TXN_TOKEN_TYP: Final = "txntoken+jwt"
# Txn-Tokens section 13 (IANA, OAuth URI registry) and RFC 8693 section 3: the token type URN that
# names a task token in a token exchange.
TXN_TOKEN_TYPE_URN: Final = "urn:ietf:params:oauth:token-type:txn_token"

MAX_SKEW: Final = 300  # the verifier refuses a larger clock-skew allowance as a misconfiguration


# --------------------------------------------------------------------------------------------------
# Trust list and minting.


class TrustList:
    """The issuers whose task tokens this verifier accepts, each with its JWKS.

    Keys are found only here: a token's ``iss`` selects an entry and its ``kid`` a key in it, and
    nothing is ever fetched because of either (RFC 8725 sections 3.8 and 3.10). Rotation is an
    ``add`` with the issuer's new JWKS (which still lists retired keys during their overlap).
    """

    __slots__ = ("_issuers", "_keys")

    def __init__(self, issuers: Mapping[str, JWKS | Mapping[str, Any]] | None = None) -> None:
        self._issuers: dict[str, JWKS] = {}
        # The hot-path lookup, flattened once: (iss, kid) -> key.
        self._keys: dict[tuple[str, str], PublicKey] = {}
        for issuer, jwks in (issuers or {}).items():
            self.add(issuer, jwks)

    def add(self, issuer: str, jwks: JWKS | Mapping[str, Any]) -> None:
        """Trust ``issuer`` with exactly the keys of ``jwks``, replacing any earlier set."""
        if not isinstance(issuer, str) or not issuer or len(issuer) > MAX_URI_CHARS:
            raise ConfigurationError("an issuer must be a non-empty string of at most 2048 chars")
        key_set = jwks if isinstance(jwks, JWKS) else JWKS.from_dict(jwks)
        if not len(key_set):
            raise ConfigurationError(f"issuer {issuer!r} has an empty key set")
        self.remove(issuer)
        self._issuers[issuer] = key_set
        for key in key_set:
            self._keys[(issuer, key.kid)] = key

    def remove(self, issuer: str) -> None:
        """Stop trusting ``issuer``. Removing an unknown issuer does nothing."""
        old = self._issuers.pop(issuer, None)
        if old is not None:
            for key in old:
                self._keys.pop((issuer, key.kid), None)

    def key(self, issuer: str, kid: str) -> PublicKey:
        """The key ``kid`` of ``issuer``, or :class:`UntrustedIssuerError`."""
        key = self._keys.get((issuer, kid))
        if key is None:
            if issuer not in self._issuers:
                raise UntrustedIssuerError(f"issuer {_show(issuer)} is not trusted")
            raise UntrustedIssuerError(f"issuer {_show(issuer)} has no key {_show(kid)}")
        return key

    def jwks(self, issuer: str) -> JWKS:
        key_set = self._issuers.get(issuer)
        if key_set is None:
            raise UntrustedIssuerError(f"issuer {_show(issuer)} is not trusted")
        return key_set

    def __contains__(self, issuer: object) -> bool:
        return issuer in self._issuers

    def __iter__(self) -> Iterator[str]:
        return iter(self._issuers)

    def __len__(self) -> int:
        return len(self._issuers)


def mint_task_token(claims: TaskTokenClaims, key: SigningKey) -> str:
    """Sign ``claims`` as a task token: header ``{"typ": "txntoken+jwt", "alg", "kid"}``.

    The claims are first read back through :meth:`TaskTokenClaims.from_payload`, so a token that
    would not verify is never signed.
    """
    payload = claims.to_payload()
    TaskTokenClaims.from_payload(payload)
    return sign_compact({"typ": TXN_TOKEN_TYP, "kid": key.kid}, payload, key)


# --------------------------------------------------------------------------------------------------
# Verification.


@dataclass(frozen=True, slots=True)
class VerifiedTaskToken:
    """A task token that passed :func:`verify_task_token`.

    ``token_hash`` is ``base64url(SHA-256(token))``: the form of ``prev`` in a child token, of
    ``ath`` in a DPoP proof (RFC 9449 4.2) and of the token in audit events. The raw token is not
    kept, so it cannot leak into a log by accident.
    """

    claims: TaskTokenClaims
    token_hash: str
    kid: str


# Parsed claims, keyed by the exact base64url text of the payload, for payloads whose signature
# verified. A tool receives the same task token on many requests, each with a fresh DPoP proof;
# parsing and checking its claims is a pure function of that text, so it is done once. The
# signature, issuer, audience and time checks still run on every call, and the claims are
# immutable (FrozenDict), so sharing them between calls cannot leak a change from one to another.
# Bounded: cleared when full.
_CLAIMS_CACHE: dict[str, TaskTokenClaims] = {}
_CLAIMS_CACHE_MAX: Final = 512


def verify_task_token(
    token: str,
    *,
    trust: TrustList,
    audience: str,
    now: int,
    skew: int = 60,
    max_lifetime: int = 3600,
) -> VerifiedTaskToken:
    """Verify a task token offline and return its claims, or raise a specific error.

    ``audience`` is this verifier's trust domain; ``now`` is the current Unix time; ``skew`` the
    clock difference tolerated in each time check (at most :data:`MAX_SKEW`); ``max_lifetime``
    the longest ``exp - iat`` accepted.

    Raises:
        MalformedError, SizeLimitError: the token does not parse or is over a size limit.
        AlgorithmError: ``alg`` is not allowed or not the key's algorithm.
        TokenTypeError: ``typ`` is not ``txntoken+jwt``.
        UntrustedIssuerError: ``iss`` is not trusted or has no key ``kid``.
        SignatureError: the signature does not verify.
        ClaimError: a claim is missing, malformed, or the lifetime is too long.
        AudienceError: ``aud`` is not ``audience``.
        ExpiredError, NotYetValidError, IssuedInFutureError: a time check failed.
        ConfigurationError: ``now`` or ``skew`` is not a usable integer.
    """
    if type(now) is not int or type(skew) is not int or not 0 <= skew <= MAX_SKEW:
        raise ConfigurationError(f"now and skew must be integers, skew between 0 and {MAX_SKEW}")
    # 1. RFC 7515 7.1 and 5.2, RFC 8725 3.1 and 3.11: the compact-JWS checks every kind of token
    #    shares (parse_compact): size first, three segments, a bounded strict JSON header, the
    #    algorithm allow-list before anything else in the header is used (``none`` and every HMAC
    #    algorithm stop here), no ``crit``, a bounded canonical signature.
    jws = parse_compact(token, what="task token")
    header = jws.unverified_header
    # 2. Txn-Tokens 9.1 and RFC 8725 3.11: exactly this token type (RFC 7515 4.1.9).
    if header.get("typ") != TXN_TOKEN_TYP:
        raise TokenTypeError(f"task token type {_show(header.get('typ'))} is not '{TXN_TOKEN_TYP}'")
    # 3. RFC 7515 4.1.4: ``kid`` names the key (an RFC 7638 thumbprint); ``jwk``, ``jku``,
    #    ``x5u`` and ``x5c`` are never used to find a key (RFC 8725 3.10).
    kid = header.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= MAX_ID_CHARS:
        raise MalformedError("task token header has no usable 'kid'")
    # 4. RFC 7515 5.2 (steps 6-7) and RFC 7519 7.2 (step 10): the payload is a strict JSON object
    #    (canonical base64url, no duplicate members). It stays untrusted until step 7. A payload
    #    seen before with a valid signature has its parsed claims cached (see _CLAIMS_CACHE): they
    #    are still only used once this token's own signature has verified in step 7.
    parsed = _CLAIMS_CACHE.get(jws.encoded_payload)
    if parsed is None:
        unverified_claims = jws.unverified_claims()
        iss = unverified_claims.get("iss")
        if not isinstance(iss, str):
            raise UntrustedIssuerError("task token has no issuer")
    else:
        iss = parsed.iss
    # 5. RFC 8725 3.8 and 3.10: the issuer must be on the configured trust list and the key is
    #    that issuer's key ``kid``. Nothing is fetched because of ``iss`` or ``kid``.
    key = trust._keys.get((iss, kid)) or trust.key(iss, kid)
    # 6. RFC 8725 3.1: the header's algorithm must be the key's own (an EdDSA-labelled token never
    #    verifies under an ES256 key, nor the reverse).
    alg = header["alg"]
    if alg != key.alg:
        raise AlgorithmError(f"task token algorithm {alg!r} does not match the key's {key.alg!r}")
    # 7. RFC 7515 5.2 (step 8): the signature, over the exact received header and payload text.
    #    For ES256 the low-s form only, so that one token has exactly one spelling and
    #    ``token_hash`` names it without ambiguity.
    signature = jws.signature
    if alg == "ES256" and (
        len(signature) != 64 or int.from_bytes(signature[32:], "big") > P256_HALF_ORDER
    ):
        raise SignatureError("signature invalid")
    key.verify(signature, jws.signing_input)
    # 8. Txn-Tokens 9.2, RFC 7519 4.1, RFC 8693 4.1, RFC 9449 6.1: every claim has its type,
    #    form and size (``cnf.jkt`` included), now that the issuer vouches for them.
    if parsed is None:
        claims = TaskTokenClaims.from_payload(unverified_claims)
        if len(_CLAIMS_CACHE) >= _CLAIMS_CACHE_MAX:
            _CLAIMS_CACHE.clear()
        _CLAIMS_CACHE[jws.encoded_payload] = claims
    else:
        claims = parsed
    # 9. RFC 7519 4.1.3 and Txn-Tokens 9.2: "A Txn-Token MUST NOT be accepted outside the Trust
    #    Domain identified by the aud claim".
    if claims.aud != audience:
        raise AudienceError(f"token audience {_show(claims.aud)} is not {_show(audience)}")
    # 10. RFC 7519 4.1.4: expired on or after ``exp`` (allowing ``skew``).
    if now >= claims.exp + skew:
        raise ExpiredError("token has expired")
    # 11. RFC 7519 4.1.5: not valid before ``nbf`` (allowing ``skew``).
    if claims.nbf is not None and now + skew < claims.nbf:
        raise NotYetValidError("token is not valid yet")
    # 12. RFC 7519 4.1.6: not issued in the future (allowing ``skew``).
    if claims.iat > now + skew:
        raise IssuedInFutureError("token was issued in the future")
    # 13. Txn-Tokens section 6 ("short-lived"): a bounded lifetime, so that a token minted by a
    #     misconfigured or compromised issuer cannot stay usable for long.
    if not 0 < claims.exp - claims.iat <= max_lifetime:
        raise ClaimError(
            f"token lifetime {claims.exp - claims.iat}s is not between 1 and {max_lifetime}s"
        )
    return VerifiedTaskToken(claims=claims, token_hash=sha256_b64url(token), kid=kid)
