"""Revocation: of one token (and so of every token derived from it), or of a whole task.

Descendants are never enumerated. A token is refused if it, one of its ancestors, or its task was
revoked or ended; its ancestors are read from the log by the one lineage walk
(:func:`authchain.audit.lineage.lineage`), and only for tokens of tasks that hold a revoked token,
so the common case costs two dictionary look-ups.

Revocations are recorded first, then applied and saved beside the log; the saved set is checked
against those records when an authority opens a store.
"""

from __future__ import annotations

import threading
from typing import Final

from authchain.audit.lineage import ChainGap, lineage
from authchain.audit.records import HopGranted, TaskEnded, TaskRevoked, TokenRevoked
from authchain.authority.recorder import Recorder
from authchain.authority.state import SideState
from authchain.errors import MalformedError, RevokedError
from authchain.tokens.task_token import VerifiedTaskToken

__all__ = ["Revocations"]

_META_REVOCATIONS: Final = "authority.revocations"
MAX_REASON = 512


class Revocations:
    """Revoked tokens and tasks (ended tasks count as revoked), and the check every use makes."""

    def __init__(self, recorder: Recorder, state: SideState, lock: threading.RLock) -> None:
        self._recorder = recorder
        self._state = state
        self._lock = lock
        # token hash -> log index of its token.revoked; txn -> index of its task.revoked/task.ended
        self._tokens: dict[str, int] = {}
        self._tasks: dict[str, int] = {}
        # Tasks holding a revoked token: only their tokens need the walk up their lineage.
        self._token_txns: set[str] = set()
        # Revoked tokens whose task the log could not name (see ``revoke``): while any stands, every
        # token's lineage is checked, not only the lineages of tasks known to hold a revoked token.
        self._unscoped: set[str] = set()
        self._load()

    def check(self, token: VerifiedTaskToken) -> None:
        """Raise :class:`RevokedError` if the token, an ancestor or its task was revoked or ended."""
        claims = token.claims
        if claims.txn in self._tasks:
            raise RevokedError(
                f"task {claims.txn} was revoked or ended (log index {self._tasks[claims.txn]})"
            )
        if token.token_hash in self._tokens:
            raise RevokedError(
                f"this token was revoked (log index {self._tokens[token.token_hash]})"
            )
        if claims.log is None or not (claims.txn in self._token_txns or self._unscoped):
            return
        try:
            for issued in lineage(self._state.entry, claims.log, jti=claims.jti):
                if isinstance(issued, HopGranted) and issued.parent_token in self._tokens:
                    raise RevokedError(
                        "an ancestor of this token was revoked "
                        f"(log index {self._tokens[issued.parent_token]})"
                    )
        except ChainGap:
            # The token verified, so its lineage is the authority's own; a gap means the log
            # cannot show more ancestors, and what it showed was checked.
            return

    def revoke(
        self,
        *,
        token_hash: str | None = None,
        txn: str | None = None,
        reason: str = "",
        by: str = "admin",
    ) -> int:
        """Revoke one token (and so every descendant) by its hash, or a whole task. Recorded."""
        if (token_hash is None) == (txn is None):
            raise MalformedError("revoke exactly one of a token hash or a task id")
        if len(reason) > MAX_REASON:
            raise MalformedError(f"reason is longer than {MAX_REASON} characters")
        with self._lock:
            if token_hash is not None:
                used = self._recorder.store.find_by_token(token_hash)
                event_txn = used[0][1].txn if used else None
                index = self._recorder.record(
                    TokenRevoked(token=token_hash, txn=event_txn, actor=by, reason=reason or None)
                )
                self._tokens[token_hash] = index
                if event_txn:
                    self._token_txns.add(event_txn)
                else:
                    # A token never presented names no event by its hash: its issuance entry is
                    # written before it is signed, so it carries the jti, not the hash. Its task
                    # is unknown, yet its descendants must still be refused.
                    self._unscoped.add(token_hash)
            else:
                assert txn is not None
                index = self._recorder.record(TaskRevoked(txn=txn, actor=by, reason=reason or None))
                self._tasks[txn] = index
            self._save()
            return index

    def end_task(self, txn: str, *, by: str = "admin") -> int:
        """End a task: late work under any of its tokens is refused and the refusal recorded."""
        with self._lock:
            index = self._recorder.record(TaskEnded(txn=txn, actor=by))
            self._tasks[txn] = index
            self._save()
            return index

    # ----------------------------------------------------------------------------------------------

    def _save(self) -> None:
        self._state.save(
            _META_REVOCATIONS,
            {
                "tokens": self._tokens,
                "tasks": self._tasks,
                "token_txns": sorted(self._token_txns),
                "unscoped": sorted(self._unscoped),
            },
        )

    def _load(self) -> None:
        data = self._state.load(_META_REVOCATIONS)
        if data is None:
            return
        self._tokens = {k: int(v) for k, v in data.get("tokens", {}).items()}
        self._tasks = {k: int(v) for k, v in data.get("tasks", {}).items()}
        self._token_txns = set(data.get("token_txns", []))
        self._unscoped = set(data.get("unscoped", []))
        # Like the registry: each revocation must be the log's own record of it.
        for token_hash, index in self._tokens.items():
            self._state.logged(
                index,
                TokenRevoked,
                lambda r, h=token_hash: r.token == h,  # type: ignore[misc]
                f"the stored revocation of {token_hash}",
            )
        for txn, index in self._tasks.items():
            self._state.logged(
                index,
                (TaskRevoked, TaskEnded),
                lambda r, t=txn: r.txn == t,  # type: ignore[misc]
                f"the stored revocation of {txn}",
            )
