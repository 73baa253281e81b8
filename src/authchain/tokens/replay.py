"""The DPoP replay cache (RFC 9449 section 11.1): each proof's ``jti`` is accepted once.

The cache keys a ``jti`` by the proof key's thumbprint, not by the target URI alone: one client
cannot burn another client's ``jti`` values, and a ``jti`` reused by the same key on another URL is
still a replay.
"""

from __future__ import annotations

import hashlib
import heapq
import threading
from typing import Final

from authchain.errors import ConfigurationError, ReplayCacheFullError, ReplayError

__all__ = ["ReplayCache"]


# Entries are kept this many seconds past their expiry, so that two threads whose ``now`` differ by a
# clock step cannot see an entry evicted by one while the other still accepts its proof.
_RETENTION_SLACK: Final = 5


class ReplayCache:
    """Remembers each proof's ``jti`` until the proof could no longer be accepted (RFC 9449 section
    11.1). Thread-safe, in-process (a replica keeps its own; see docs/dpop.md for several replicas).

    Bounded memory: at most ``max_entries`` entries of a fixed size (a 128-bit hash of the key, not
    the key itself). When it holds ``max_entries`` unexpired entries it fails closed: the new proof is
    refused with :class:`~authchain.errors.ReplayCacheFullError` rather than a live ``jti`` being
    forgotten, which would let that proof be replayed. That error is a ``CapacityError`` (HTTP 503,
    retry later), not a ``ReplayError`` nor any ``VerificationError``: nothing is wrong with the
    proof, and an ``except ReplayError`` does not catch it. Size the cache to the peak proof rate
    times the acceptance window; pass ``expected_jkt`` to
    :func:`~authchain.tokens.dpop.verify_proof` so only holders of tokens consume entries.

    ``window`` is the longest retention the cache accepts: an entry that would need to be kept longer
    means the verifier's acceptance window is wider than the cache was sized for, a configuration
    error.
    """

    __slots__ = ("max_entries", "window", "_seen", "_expiry", "_lock")

    def __init__(self, max_entries: int = 100_000, window: int = 300) -> None:
        if max_entries < 1 or window < 1:
            raise ConfigurationError("replay cache max_entries and window must be positive")
        self.max_entries = max_entries
        self.window = window
        # A digest is in ``_seen`` exactly when it is in the ``_expiry`` heap: a key is inserted only
        # when absent and both are removed together, so the heap never holds stale entries.
        self._seen: dict[bytes, int] = {}
        self._expiry: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()

    def check_and_store(self, key: str, expires_at: int, now: int) -> None:
        """Record ``key`` until ``expires_at``, or raise if it is already held.

        Raises:
            ReplayError: ``key`` is held: the proof is a replay.
            ReplayCacheFullError: the cache is full of unexpired entries (a ``CapacityError``, not a
                ``ReplayError``: the same proof may be accepted once entries expire).
            ConfigurationError: ``expires_at`` is more than ``window`` seconds ahead.
        """
        if expires_at - now > self.window:
            raise ConfigurationError(
                f"replay entry must be kept {expires_at - now} s, beyond the cache window of "
                f"{self.window} s; widen the window or narrow the proof acceptance window"
            )
        # Fixed-size entries whatever the key's length. surrogatepass: a JSON string may carry a lone
        # surrogate, which must hash rather than raise.
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:16]
        with self._lock:
            self._evict(now)
            if digest in self._seen:
                raise ReplayError("DPoP proof jti was already used")
            if expires_at + _RETENTION_SLACK < now:
                return  # already past its window: nothing could be replayed within it
            if len(self._seen) >= self.max_entries:
                raise ReplayCacheFullError(
                    f"replay cache holds {self.max_entries} unexpired proofs; refusing rather than "
                    "forgetting one"
                )
            self._seen[digest] = expires_at
            heapq.heappush(self._expiry, (expires_at, digest))

    def _evict(self, now: int) -> None:
        heap = self._expiry
        horizon = now - _RETENTION_SLACK
        while heap and heap[0][0] < horizon:
            _, digest = heapq.heappop(heap)
            del self._seen[digest]

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
