"""The authority's token-signing keys: loading, signing, and rotation with overlap.

Rotation is recorded in the log (``key.rotated``) before it takes effect, so an investigator can
tell which key signed a token of any time and when the previous one stopped verifying.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from authchain._encoding import sha256_b64url
from authchain.audit.records import KeyRotated
from authchain.authority.recorder import Recorder
from authchain.authority.state import SideState
from authchain.identity.keys import JWKS, KeyRing, PublicKey, SigningKey
from authchain.policy import Decision
from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.task_token import TrustList, mint_task_token

__all__ = ["Signer"]

_META_KEYS: Final = "authority.keys"


class Signer:
    """Holds the key ring of one issuer and the trust list resource servers verify with."""

    def __init__(
        self,
        recorder: Recorder,
        state: SideState,
        lock: threading.RLock,
        *,
        issuer: str,
        token_lifetime: int,
        clock: Callable[[], int],
        signing_key: SigningKey | None = None,
    ) -> None:
        self._recorder = recorder
        self._state = state
        self._lock = lock
        self._issuer = issuer
        self._token_lifetime = token_lifetime
        self._now = clock
        self.keys = self._load(signing_key)
        self.trust = self._trust_list()

    def jwks(self) -> JWKS:
        return self.keys.verification_keys(now=self._now())

    def sign(
        self, claims: TaskTokenClaims, decision: Decision, index: int
    ) -> tuple[str, str, TaskTokenClaims]:
        """Sign ``claims`` with the decision that allowed them and the entry that recorded them;
        returns the token, its hash and the claims it carries."""
        claims = replace(
            claims,
            authz={
                "id": decision.id,
                "policies": list(decision.policies),
                "policy_set_hash": decision.policy_set_hash,
            },
            log=index,
        )
        token = mint_task_token(claims, self.keys.active)
        return token, sha256_b64url(token), claims

    def rotate(self, new_key: SigningKey | None = None, *, by: str = "admin") -> str:
        """Rotate with overlap: the new key signs from now on, the old one verifies until every
        token it signed has expired. Recorded first. Returns the new ``kid``."""
        new_key = new_key or SigningKey.generate()
        with self._lock:
            now = self._now()
            previous = self.keys.active.kid
            retire_at = now + self.keys.max_token_lifetime + self.keys.skew
            self._recorder.record(
                KeyRotated(actor=by, kid=new_key.kid, previous_kid=previous, retire_at=retire_at)
            )
            self.keys.rotate(new_key, now=now)
            self._save()
            self.trust = self._trust_list()
            return self.keys.active.kid

    # ----------------------------------------------------------------------------------------------

    def _trust_list(self) -> TrustList:
        return TrustList({self._issuer: self.jwks()})

    def _load(self, signing_key: SigningKey | None) -> KeyRing:
        if signing_key is None:
            stored = self._state.load(_META_KEYS)
            if stored is not None:
                ring = KeyRing(
                    SigningKey.from_private_jwk(stored["active"]),
                    max_token_lifetime=self._token_lifetime,
                )
                for retired in stored.get("retired", []):
                    ring.restore_retired(PublicKey.from_jwk(retired["jwk"]), int(retired["until"]))
                return ring
            signing_key = SigningKey.generate()
        self.keys = KeyRing(signing_key, max_token_lifetime=self._token_lifetime)
        self._save()
        return self.keys

    def _save(self) -> None:
        data: dict[str, Any] = {
            "active": self.keys.active.private_jwk(),
            "retired": [
                {
                    "jwk": {
                        k: v for k, v in key.to_jwk().items() if k not in ("kid", "alg", "use")
                    },
                    "until": until,
                }
                for key, until in self.keys.retired()
            ],
        }
        self._state.save(_META_KEYS, data)
