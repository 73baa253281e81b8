"""Who is asking: the registered workload whose key signed the request's DPoP proof.

One authentication step for every request the authority takes from a workload (``/token`` and
``/events``): the proof is verified for the request (RFC 9449 section 4.3), with the authority's
replay cache and, when it requires them, its server nonces (section 8); its key must be the
registered key of a workload (section 5: the proof's key identifies the client).

Single use (section 11.1) is checked only once the key is known to be a registered workload's, so
proofs signed by keys nobody registered never take a place in the replay cache or the ledger. The
in-memory cache is the fast first check; the audit log's single-use ledger is the durable one: the
proof's claim is checked there and left for the request's record to spend in its own transaction
(:meth:`Recorder.expect`), so a proof is refused after a restart, and by every process sharing the
store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from authchain.audit.store import Claim
from authchain.authority.recorder import DPOP_PROOF, Recorder
from authchain.errors import (
    AuthchainError,
    DPoPError,
    Input,
    ReplayCacheFullError,
    ReplayError,
)
from authchain.identity.registry import Registry, WorkloadRecord
from authchain.tokens.dpop import DPoPProof, verify_proof
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

__all__ = ["Authenticator"]

#: RFC 9449 section 11.1: how long after its ``iat`` a requester's proof is accepted (the proof
#: verifier's default window), and so how long its ``jti`` is kept.
PROOF_WINDOW: Final = 60


class Authenticator:
    """Verifies requesters' proofs against one registry, replay cache and (optional) nonce source."""

    def __init__(
        self,
        registry: Callable[[], Registry],
        *,
        recorder: Recorder,
        nonce_source: NonceSource | None = None,
        replay_cache: ReplayCache | None = None,
    ) -> None:
        self._registry = registry
        self._recorder = recorder
        self.nonce_source = nonce_source
        self._replay = replay_cache or ReplayCache()

    def authenticate(
        self,
        dpop_proof: str | None,
        *,
        htm: str,
        htu: str,
        now: int,
        content_digest: str | None = None,
    ) -> tuple[DPoPProof, WorkloadRecord]:
        """The verified proof and the workload it identifies. The proof's single-use claim is left
        for the request's next record (:meth:`Recorder.expect`). With ``content_digest`` (the
        request's verified ``Content-Digest``) the proof must cover it.

        Raises an error about :attr:`Input.DPOP_PROOF` when the proof is missing or fails any check
        (:class:`DPoPNonceError` when it lacks the current nonce, :class:`ReplayError` when it was
        used before), or about :attr:`Input.ACTOR` when its key is not any registered workload's;
        :class:`StorageError` when the ledger cannot be read (retry later).
        """
        # A new request starts here: nothing a previous one left may be spent by this one.
        self._recorder.forget_expected()
        if not dpop_proof:
            raise DPoPError("a DPoP proof is required (RFC 9449 section 5)").about(Input.DPOP_PROOF)
        try:
            proof = verify_proof(
                dpop_proof,
                htm=htm,
                htu=htu,
                now=now,
                replay_cache=None,
                nonce_source=self.nonce_source,
                iat_window=PROOF_WINDOW,
                content_digest=content_digest,
            )
        except AuthchainError as exc:
            raise exc.about(Input.DPOP_PROOF) from None
        # RFC 9449 section 5: the proof's key identifies the client; it must be a registered one.
        workload = self._registry().workload_by_jkt(proof.thumbprint)
        if workload is None:
            raise DPoPError("the DPoP proof's key is not the registered key of any workload").about(
                Input.ACTOR
            )
        # RFC 9449 section 11.1: each jti once, for as long as the proof could be accepted. Only now
        # that a registered key signed it, so unregistered keys cannot fill the cache.
        key = f"{proof.thumbprint}:{proof.jti}"
        expires_at = proof.iat + PROOF_WINDOW
        try:
            self._replay.check_and_store(key, expires_at, now)
        except ReplayError as exc:
            raise exc.about(Input.DPOP_PROOF) from None
        except ReplayCacheFullError:
            # The fast check is full; the ledger below, and the record's transaction, still decide.
            pass
        self._recorder.expect(Claim(DPOP_PROOF, key, expires_at))
        return proof, workload
