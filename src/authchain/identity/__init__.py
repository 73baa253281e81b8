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
from authchain.identity.principal import (
    WORKLOAD_KINDS,
    Principal,
    PrincipalKind,
    derive_workload_kind,
)
from authchain.identity.registry import PrincipalRecord, Registry, WorkloadRecord
from authchain.identity.spiffe import (
    MAX_SPIFFE_ID_LENGTH,
    MAX_TRUST_DOMAIN_LENGTH,
    SpiffeId,
    TrustDomain,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "JWKS",
    "MAX_SPIFFE_ID_LENGTH",
    "MAX_TRUST_DOMAIN_LENGTH",
    "WORKLOAD_KINDS",
    "Algorithm",
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
    "derive_workload_kind",
    "jwk_thumbprint",
]
