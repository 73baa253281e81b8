"""Revocation: of one token (and so of every token derived from it) or of a whole task.

A pure in-memory structure; the authority persists what it needs (the revoked token hashes and
tasks, and the issuance records it already keeps in the audit log) and restores it on start.

Descendants are never enumerated. Every issued token is recorded with the hash of its parent (its
``prev``), and :meth:`RevocationSet.check` walks from the presented token towards the root: a token
is refused if it, any ancestor, or its task was revoked. The walk is bounded by the deepest chain a
verifier accepts, so a check costs at most a few dictionary look-ups.

Tokens are named by their hash (``base64url(SHA-256(token))``, as in ``prev`` and in audit events)
or by their ``jti``: revoking either form revokes the token.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from authchain.errors import ConfigurationError, RevokedError
from authchain.tokens.task_token import MAX_CHAIN_DEPTH

__all__ = ["IssuedToken", "RevocationSet"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """What is remembered of an issued token: enough to walk its lineage."""

    token_hash: str
    parent_hash: str | None
    txn: str
    jti: str
    exp: int | None = None


class RevocationSet:
    """Revoked tokens and tasks, and the lineage of issued tokens.

    Not thread-safe on its own: the authority serialises writes (they follow durable log appends).
    """

    __slots__ = ("_issued", "_by_jti", "_revoked_tokens", "_revoked_tasks", "_max_depth")

    def __init__(self, *, max_depth: int = MAX_CHAIN_DEPTH) -> None:
        if type(max_depth) is not int or max_depth < 1:
            raise ConfigurationError("max_depth must be a positive integer")
        self._issued: dict[str, IssuedToken] = {}
        self._by_jti: dict[str, str] = {}
        self._revoked_tokens: set[str] = set()
        self._revoked_tasks: set[str] = set()
        self._max_depth = max_depth

    # -- recording -------------------------------------------------------------------------------

    def record_issued(
        self,
        token_hash: str,
        parent_hash: str | None,
        txn: str,
        jti: str,
        *,
        exp: int | None = None,
    ) -> None:
        """Remember an issued token and its parent (``prev``). ``exp`` lets :meth:`prune` forget
        it once it has expired."""
        record = IssuedToken(token_hash, parent_hash, txn, jti, exp)
        self._issued[token_hash] = record
        self._by_jti[jti] = token_hash
        # A jti revoked before its issuance was recorded (replayed out of order) still counts.
        if jti in self._revoked_tokens:
            self._revoked_tokens.add(token_hash)

    def revoke_token(self, token_hash_or_jti: str) -> None:
        """Revoke one token, named by its hash or its ``jti``, and with it every descendant."""
        if not isinstance(token_hash_or_jti, str) or not token_hash_or_jti:
            raise ConfigurationError("a token is named by a non-empty hash or jti")
        self._revoked_tokens.add(token_hash_or_jti)
        token_hash = self._by_jti.get(token_hash_or_jti)
        if token_hash is not None:
            self._revoked_tokens.add(token_hash)

    def revoke_task(self, txn: str) -> None:
        """Revoke a whole task: every token that carries ``txn``, issued or still to come."""
        if not isinstance(txn, str) or not txn:
            raise ConfigurationError("a task is named by a non-empty txn")
        self._revoked_tasks.add(txn)

    # -- checking --------------------------------------------------------------------------------

    def check(self, token_hash: str, txn: str) -> None:
        """Return if the token may be used, or raise :class:`RevokedError` naming what was revoked:
        the task, the token itself, or the nearest revoked ancestor."""
        if txn in self._revoked_tasks:
            raise RevokedError(f"task `{txn}` has been revoked")
        revoked = self._revoked_tokens
        if token_hash in revoked:
            raise RevokedError("the token has been revoked")
        record = self._issued.get(token_hash)
        # The walk covers every ancestor a verifiable chain can have (one per actor before it).
        for generation in range(1, self._max_depth + 1):
            if record is None or record.parent_hash is None:
                return
            ancestor = record.parent_hash
            if ancestor in revoked:
                what = "parent" if generation == 1 else f"ancestor ({generation} hops up)"
                raise RevokedError(f"the token's {what} `{ancestor}` has been revoked")
            record = self._issued.get(ancestor)

    def is_revoked(self, token_hash: str, txn: str) -> bool:
        """``check`` as a predicate, for reports. Verifiers call :meth:`check`."""
        try:
            self.check(token_hash, txn)
        except RevokedError:
            return True
        return False

    # -- persistence -----------------------------------------------------------------------------

    def revoked_tokens(self) -> Iterator[str]:
        """Every revoked token name (hashes, and jtis as they were revoked), in no set order."""
        return iter(tuple(self._revoked_tokens))

    def revoked_tasks(self) -> Iterator[str]:
        return iter(tuple(self._revoked_tasks))

    def issued(self) -> Iterator[IssuedToken]:
        return iter(tuple(self._issued.values()))

    def restore(
        self,
        *,
        revoked_tokens: Iterable[str] = (),
        revoked_tasks: Iterable[str] = (),
        issued: Iterable[IssuedToken] = (),
    ) -> None:
        """Load persisted state (adds to what is already here)."""
        for record in issued:
            self.record_issued(
                record.token_hash, record.parent_hash, record.txn, record.jti, exp=record.exp
            )
        for name in revoked_tokens:
            self.revoke_token(name)
        for txn in revoked_tasks:
            self.revoke_task(txn)

    def prune(self, *, now: int) -> int:
        """Forget issued tokens that expired before ``now``, and their revocations.

        Safe because a child never outlives its parent: once a token has expired, so have all its
        descendants, and none of them can be presented again. Revoked tasks are kept. Returns the
        number of records forgotten.
        """
        expired = [r for r in self._issued.values() if r.exp is not None and r.exp < now]
        for record in expired:
            del self._issued[record.token_hash]
            if self._by_jti.get(record.jti) == record.token_hash:
                del self._by_jti[record.jti]
            self._revoked_tokens.discard(record.token_hash)
            self._revoked_tokens.discard(record.jti)
        return len(expired)

    def __len__(self) -> int:
        return len(self._issued)
