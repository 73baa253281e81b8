"""Workload identity: SPIFFE IDs, principals, and the keys that bind them."""

from __future__ import annotations

from authchain.identity.keys import (
    ALLOWED_ALGORITHMS,
    JWKS,
    Algorithm,
    KeyRing,
    PublicKey,
    SigningKey,
    jwk_thumbprint,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "JWKS",
    "Algorithm",
    "KeyRing",
    "PublicKey",
    "SigningKey",
    "jwk_thumbprint",
]
