"""Workload identity: SPIFFE IDs, principals, and the keys that bind them."""

from __future__ import annotations

from authchain.identity.keys import JWKS, KeyRing, PublicKey, SigningKey, jwk_thumbprint
from authchain.identity.principal import Principal, PrincipalKind
from authchain.identity.registry import PrincipalRecord, Registry, WorkloadRecord
from authchain.identity.spiffe import SpiffeId, TrustDomain

__all__ = [
    "JWKS",
    "KeyRing",
    "Principal",
    "PrincipalKind",
    "PrincipalRecord",
    "PublicKey",
    "Registry",
    "SigningKey",
    "SpiffeId",
    "TrustDomain",
    "WorkloadRecord",
    "jwk_thumbprint",
]
