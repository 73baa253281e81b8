"""The initiator's assertion: an OpenID Connect ID token from a trusted issuer, and a local issuer.

A task starts when a human (or a triggering system) is authenticated by an identity provider the
authority trusts. The ID token is the RFC 8693 ``subject_token`` of the first exchange
(``urn:ietf:params:oauth:token-type:id_token``). Verification follows OpenID Connect Core 1.0
section 3.1.3.7, restricted to what an authority needs: signature by a key of a configured issuer,
``aud`` naming this authority, ``exp``/``iat`` with bounded skew, an ``iat`` no older than the
accepted age (ten minutes unless configured), and a ``sub`` of printable ASCII.

``LocalIdentityProvider`` is a real, small issuer for the demo and the tests: it signs ID tokens with
its own key and publishes its JWKS like any other issuer would.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain._encoding import sha256_b64url
from authchain.errors import (
    AudienceError,
    ClaimError,
    ConfigurationError,
    ExpiredError,
    IssuedInFutureError,
    NotYetValidError,
    SizeLimitError,
    TokenTypeError,
    UntrustedIssuerError,
)
from authchain.identity.keys import JWKS, SigningKey
from authchain.tokens.jws import parse_compact, sign_compact

__all__ = [
    "VerifiedAssertion",
    "verify_id_token",
    "LocalIdentityProvider",
    "ID_TOKEN_TYPE",
    "DEFAULT_ID_TOKEN_MAX_AGE",
]

# RFC 8693 section 3: token type identifier of an OpenID Connect ID token.
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"

#: How old (by ``iat``) an ID token may be when it starts a task, in seconds. An ID token is the
#: initiator's word that they are present; a task started from it should follow closely, and the
#: shorter the age the shorter the time a copied token is worth anything.
DEFAULT_ID_TOKEN_MAX_AGE: Final = 600

_MAX_STRING = 512
_MAX_LIFETIME = 24 * 3600
# OpenID Connect Core 1.0 section 2: "sub ... MUST NOT exceed 255 ASCII characters". Printable ASCII
# only: the subject becomes the initiator of every record of the task, and a control character, a
# bidirectional override or a look-alike letter there would forge or hide text in the evidence.
_SUB = re.compile(r"[\x20-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    """The verified claims of an initiator's ID token."""

    issuer: str
    subject: str
    audience: tuple[str, ...]
    issued_at: int
    expires_at: int
    token_hash: str
    kind: str = "user"
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"iss": self.issuer, "sub": self.subject, "kind": self.kind}


def _str(claims: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ClaimError(f"ID token claim {name!r} is missing or not a non-empty string")
    if len(value) > _MAX_STRING:
        raise SizeLimitError(f"ID token claim {name!r} is longer than {_MAX_STRING} characters")
    return value


def _int(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ClaimError(f"ID token claim {name!r} is missing or not an integer")
    return value


def verify_id_token(
    token: str,
    *,
    issuers: Mapping[str, JWKS],
    audience: str,
    now: int,
    skew: int = 60,
    max_age: int = DEFAULT_ID_TOKEN_MAX_AGE,
) -> VerifiedAssertion:
    """Verify an initiator's ID token and return its assertion, or raise a ``VerificationError``.

    1. RFC 7515 section 7.1 and RFC 8725 section 3.1: the compact-JWS checks every kind of token
       shares (``parse_compact``), the algorithm allow-list among them, before anything else.
    2. RFC 7515 section 4.1.9: if ``typ`` is present it must be ``JWT``; a task token or a DPoP proof
       is never accepted as an ID token (RFC 8725 section 3.11, explicit typing).
    3. OIDC Core 3.1.3.7 (2): ``iss`` is one of the configured issuers. Keys are never fetched
       because of ``iss``; an unknown issuer is refused.
    4. OIDC Core 3.1.3.7 (6): the signature verifies under the issuer's key named by ``kid``.
    5. OIDC Core 3.1.3.7 (3): ``aud`` contains this authority.
    6. OIDC Core 3.1.3.7 (9), (10): ``exp`` in the future, ``iat`` not in the future, with skew;
       and (10) "the acceptable range": ``iat`` no more than ``max_age`` seconds ago.
    7. OIDC Core 2: ``sub`` is present, at most 255 characters of printable ASCII.
    """
    if type(max_age) is not int or not 0 < max_age <= _MAX_LIFETIME:
        raise ConfigurationError(f"max_age must be 1 to {_MAX_LIFETIME} seconds")
    # 1.
    jws = parse_compact(token, what="ID token")
    # 2.
    typ = jws.unverified_header.get("typ")
    if typ is not None and (
        not isinstance(typ, str) or typ.lower() not in ("jwt", "application/jwt")
    ):
        raise TokenTypeError(f"ID token type {typ!r} is not 'JWT'")
    unverified_claims = jws.unverified_claims()
    # 3.
    iss = _str(unverified_claims, "iss")
    assert iss is not None
    jwks = issuers.get(iss)
    if jwks is None:
        raise UntrustedIssuerError(f"ID token issuer {iss!r} is not trusted")
    kid = jws.unverified_header.get("kid")
    key = jwks.get(kid) if isinstance(kid, str) else None
    if key is None:
        if kid is None and len(jwks) == 1:
            key = next(iter(jwks))
        else:
            raise UntrustedIssuerError(f"issuer {iss!r} has no key with kid {kid!r}")
    # 4.
    jws.verify(key)
    claims = unverified_claims
    # 5.
    aud = claims.get("aud")
    auds: tuple[str, ...]
    if isinstance(aud, str):
        auds = (aud,)
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud) and 0 < len(aud) <= 16:
        auds = tuple(aud)
    else:
        raise ClaimError("ID token claim 'aud' is missing or malformed")
    if audience not in auds:
        raise AudienceError(f"ID token audience {list(auds)} does not include {audience!r}")
    # 6.
    exp = _int(claims, "exp")
    iat = _int(claims, "iat")
    if exp + skew < now:
        raise ExpiredError("ID token has expired")
    if iat - skew > now:
        raise IssuedInFutureError("ID token is issued in the future")
    if "nbf" in claims and _int(claims, "nbf") - skew > now:
        raise NotYetValidError("ID token is not yet valid")
    if iat + max_age < now:
        raise ExpiredError(
            f"ID token was issued {now - iat} s ago; at most {max_age} s is accepted to start a task"
        )
    if exp - iat > _MAX_LIFETIME:
        raise ClaimError("ID token lifetime is longer than 24 hours")
    # 7.
    sub = _str(claims, "sub")
    assert sub is not None
    if not _SUB.fullmatch(sub):
        raise ClaimError(
            "ID token claim 'sub' must be 1 to 255 printable ASCII characters "
            "(OpenID Connect Core 1.0 section 2), without control or formatting characters"
        )
    name = _str(claims, "name", required=False)
    return VerifiedAssertion(
        issuer=iss,
        subject=sub,
        audience=auds,
        issued_at=iat,
        expires_at=exp,
        token_hash=sha256_b64url(token),
        name=name,
    )


class LocalIdentityProvider:
    """A minimal OpenID Connect issuer for the demo and tests: it signs ID tokens with its own key."""

    def __init__(
        self, issuer: str = "https://idp.example.org", key: SigningKey | None = None
    ) -> None:
        self.issuer = issuer
        self.key = key or SigningKey.generate()

    @property
    def jwks(self) -> JWKS:
        return JWKS([self.key.public])

    def issue(
        self,
        subject: str,
        *,
        audience: str,
        now: int,
        lifetime: int = 300,
        name: str | None = None,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "nonce": secrets.token_urlsafe(12),
        }
        if name is not None:
            claims["name"] = name
        return sign_compact({"typ": "JWT", "kid": self.key.kid}, claims, self.key)
