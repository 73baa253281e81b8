"""What a resource server does with a presented task token and its DPoP proof, offline.

A holder presents ``Authorization: DPoP <task token>`` with a ``DPoP`` proof (RFC 9449 section 7.1).
:func:`verify_presentation` verifies both and binds them together; the tool middleware runs it on
every request. (The authority, which must keep what held when a later step fails, runs the same
two verifiers itself on every action reported to it.) It needs only the
token code: a tool that verifies tokens loads no authority, policy engine or store.

Each refusal names the input it is about (:class:`~authchain.errors.Input`): the presented token,
the presented proof, or the scope the route requires. A caller picks its answer (``invalid_token``,
``invalid_dpop_proof``, ``insufficient_scope``) from that name, without verifying anything twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from authchain.errors import Input, ScopeEscalationError, VerificationError
from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.dpop import DPoPProof, verify_proof
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import TrustList, VerifiedTaskToken, verify_task_token

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
    """Verify a presented task token and its DPoP proof for one request, or raise.

    1. RFC 9449 section 7.1: the token is verified as a task token of this trust domain.
    2. RFC 9449 sections 4.3 and 7.1: the proof is verified for this request, ``ath`` binds it to
       this token, and its key's thumbprint is the token's ``cnf.jkt`` (only the holder can
       present).
    3. RFC 6750 section 3.1 (``insufficient_scope``): the route's required scope is within the
       token's scope.

    Raises:
        VerificationError: from step 1 with ``input`` :attr:`Input.PRESENTED_TOKEN`, from step 2
            with :attr:`Input.PRESENTED_PROOF`; :class:`ScopeEscalationError` from step 3 with
            :attr:`Input.SCOPE`.
        ReplayCacheFullError: the replay cache is full (a ``CapacityError``: retry later).
        ConfigurationError: ``now`` or the replay cache's window is unusable.
    """
    # 1.
    try:
        verified = verify_task_token(token, trust=trust, audience=audience, now=now)
    except VerificationError as exc:
        exc.about(Input.PRESENTED_TOKEN)
        raise
    # 2. The token verified, so whatever is refused here is the proof's fault (the key binding
    #    included: a proof made by another key than the token's is not its holder's proof).
    try:
        dpop = verify_proof(
            proof,
            htm=htm,
            htu=htu,
            now=now,
            replay_cache=replay_cache,
            access_token=token,
            expected_jkt=verified.claims.cnf_jkt,
        )
    except VerificationError as exc:
        exc.about(Input.PRESENTED_PROOF)
        raise
    # 3.
    missing = [s for s in required_scope if s not in verified.claims.scope]
    if missing:
        raise ScopeEscalationError(
            f"scope `{' '.join(missing)}` is required but the token holds "
            f"`{' '.join(verified.claims.scope)}`"
        ).about(Input.SCOPE)
    return Presentation(verified, dpop)
