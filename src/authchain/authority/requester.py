"""Who is asking: the registered workload whose key signed the request's DPoP proof.

One authentication step for every request the authority takes from a workload (``/token`` and
``/events``): the proof is verified for the request (RFC 9449 section 4.3), with the authority's
replay cache and, when it requires them, its server nonces (section 8); its key must be the
registered key of a workload (section 5: the proof's key identifies the client).
"""

from __future__ import annotations

from collections.abc import Callable

from authchain.errors import AuthchainError, DPoPError, Input
from authchain.identity.registry import Registry, WorkloadRecord
from authchain.tokens.dpop import DPoPProof, verify_proof
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

__all__ = ["Authenticator"]


class Authenticator:
    """Verifies requesters' proofs against one registry, replay cache and (optional) nonce source."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        nonce_source: NonceSource | None = None,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self._registry = registry
        self.nonce_source = nonce_source
        self._replay = replay_cache or ReplayCache()

    def authenticate(
        self, dpop_proof: str | None, *, htm: str, htu: str, now: int
    ) -> tuple[DPoPProof, WorkloadRecord]:
        """The verified proof and the workload it identifies.

        Raises an error about :attr:`Input.DPOP_PROOF` when the proof is missing or fails any check
        (:class:`DPoPNonceError` when it lacks the current nonce), or about :attr:`Input.ACTOR` when
        its key is not any registered workload's; :class:`ReplayCacheFullError` when the replay
        cache is full (retry later).
        """
        if not dpop_proof:
            raise DPoPError("a DPoP proof is required (RFC 9449 section 5)").about(Input.DPOP_PROOF)
        try:
            proof = verify_proof(
                dpop_proof,
                htm=htm,
                htu=htu,
                now=now,
                replay_cache=self._replay,
                nonce_source=self.nonce_source,
            )
        except AuthchainError as exc:
            raise exc.about(Input.DPOP_PROOF) from None
        workload = self._registry().workload_by_jkt(proof.thumbprint)
        if workload is None:
            raise DPoPError("the DPoP proof's key is not the registered key of any workload").about(
                Input.ACTOR
            )
        return proof, workload
