"""Server-provided DPoP nonces (RFC 9449 section 8): stateless, shared by replicas through their
secret, checked by :func:`~authchain.tokens.dpop.verify_proof` through its ``nonce_source``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from authchain._encoding import b64url_decode, b64url_encode
from authchain.errors import ConfigurationError, DPoPNonceError, MalformedError

__all__ = ["NonceSource"]


class NonceSource:
    """Stateless server nonces: ``base64url(step || HMAC-SHA-256(secret, context || step)[:16])``
    where ``step = now // lifetime``.

    A nonce is accepted during its own step and the next one, so a client that just fetched one is not
    refused at a step boundary (a nonce lives between ``lifetime`` and ``2 * lifetime`` seconds).
    Replicas that share the secret accept each other's nonces with no shared state. The nonce also
    bounds the proof's creation time by the server's clock (RFC 9449 section 4.3 (11)).
    """

    __slots__ = ("_secret", "lifetime")

    # Domain separation: this MAC input can never be another Authchain signature or MAC input.
    _CONTEXT: Final = b"authchain/dpop-nonce/v1\x00"
    _MAC_BYTES: Final = 16
    _ENCODED_LENGTH: Final = 32  # base64url of 8 + 16 bytes

    def __init__(self, secret: bytes, *, lifetime: int = 300) -> None:
        if len(secret) < 32:
            raise ConfigurationError("nonce secret must be at least 32 bytes")
        if lifetime < 1:
            raise ConfigurationError("nonce lifetime must be positive")
        self._secret = bytes(secret)
        self.lifetime = lifetime

    @classmethod
    def generate(cls, *, lifetime: int = 300) -> NonceSource:
        """A source with a fresh random secret (one process, or share the secret across replicas)."""
        return cls(secrets.token_bytes(32), lifetime=lifetime)

    def _mac(self, step_bytes: bytes) -> bytes:
        mac = hmac.new(self._secret, self._CONTEXT + step_bytes, hashlib.sha256).digest()
        return mac[: self._MAC_BYTES]

    def current(self, now: int) -> str:
        """The nonce to send in ``DPoP-Nonce`` at ``now`` (RFC 9449 section 8.1 NQCHAR-safe)."""
        step_bytes = (now // self.lifetime).to_bytes(8, "big", signed=True)
        return b64url_encode(step_bytes + self._mac(step_bytes))

    def check(self, nonce: str, now: int) -> None:
        """Return if ``nonce`` is current or from the previous step; otherwise raise
        :class:`DPoPNonceError` carrying the nonce to send back (RFC 9449 section 8, ``use_dpop_nonce``)."""
        if not isinstance(nonce, str) or len(nonce) != self._ENCODED_LENGTH:
            raise DPoPNonceError("DPoP nonce is not one this server issued", self.current(now))
        try:
            raw = b64url_decode(nonce)
        except MalformedError as exc:
            raise DPoPNonceError(
                "DPoP nonce is not one this server issued", self.current(now)
            ) from exc
        step_bytes, mac = raw[:8], raw[8:]
        step = int.from_bytes(step_bytes, "big", signed=True)
        if not hmac.compare_digest(mac, self._mac(step_bytes)):
            raise DPoPNonceError("DPoP nonce is not one this server issued", self.current(now))
        current_step = now // self.lifetime
        if step not in (current_step, current_step - 1):
            raise DPoPNonceError("DPoP nonce has expired", self.current(now))
