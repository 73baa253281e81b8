"""What a resource server does with a presented task token and its DPoP proof, offline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authchain.errors import ScopeEscalationError
from authchain.tokens.dpop import DPoPProof, ReplayCache, verify_proof
from authchain.tokens.task_token import (
    TaskTokenClaims,
    TrustList,
    VerifiedTaskToken,
    verify_task_token,
)

__all__ = ["Presentation", "verify_presentation"]


@dataclass(frozen=True, slots=True)
class Presentation:
    """A task token presented with a DPoP proof by its holder, both verified."""

    token: VerifiedTaskToken
    proof: DPoPProof

    @property
    def claims(self) -> TaskTokenClaims:
        return self.token.claims


def verify_presentation(
    token: str,
    proof: str,
    *,
    htm: str,
    htu: str,
    trust: TrustList,
    audience: str,
    now: int,
    replay_cache: ReplayCache | None,
    required_scope: Iterable[str] = (),
) -> Presentation:
    """What a resource server does with ``Authorization: DPoP <token>`` and a ``DPoP`` proof, offline.

    1. RFC 9449 section 7.1: the token is verified as a task token of this trust domain.
    2. RFC 9449 section 4.3 and 7.1: the proof is verified for this request, ``ath`` binds it to this
       token, and its key's thumbprint is the token's ``cnf.jkt`` (only the holder can present).
    3. The route's required scope is within the token's scope.
    """
    # 1.
    verified = verify_task_token(token, trust=trust, audience=audience, now=now)
    # 2.
    dpop = verify_proof(
        proof,
        htm=htm,
        htu=htu,
        now=now,
        replay_cache=replay_cache,
        access_token=token,
        expected_jkt=verified.claims.cnf_jkt,
    )
    # 3.
    missing = [s for s in required_scope if s not in verified.claims.scope]
    if missing:
        raise ScopeEscalationError(
            f"scope `{' '.join(missing)}` is required but the token holds "
            f"`{' '.join(verified.claims.scope)}`"
        )
    return Presentation(verified, dpop)
