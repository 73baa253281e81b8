"""The public surface of the identity package is pinned, so an accidental export is noticed."""

from __future__ import annotations

import authchain.identity as identity


def test_identity_package_exports() -> None:
    # Limits, the algorithm allow-list and the kind helpers stay in their modules.
    assert sorted(identity.__all__) == [
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
    for name in identity.__all__:
        assert hasattr(identity, name)
