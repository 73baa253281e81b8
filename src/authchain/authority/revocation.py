"""Revocation: of one token (and so of every token derived from it), or of a whole task.

Descendants are never enumerated. A token is refused if it, one of its ancestors, or its task was
revoked or ended, or if its holder's key was replaced since; its ancestors are read from the log by
the one lineage walk (:func:`authchain.audit.lineage.lineage`), and only for tokens of tasks that
hold a revoked token, so the common case costs three dictionary look-ups.

Revocations are recorded first, then applied and saved beside the log; the saved set is checked
against those records when an authority opens a store.

Revocation is serialised with issuance: a hop holds :meth:`Revocations.issuing` (shared) from its
revocation check to the durable record of the token it issues, and a revocation holds
:meth:`Revocations.revoking` (exclusive) while it is recorded and applied. So no child is ever
recorded after the revocation of its parent or of its task, yet hops still run side by side and
their records still share one commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from authchain.audit.lineage import ChainGap, lineage
from authchain.audit.records import HopGranted, TaskEnded, TaskRevoked, TokenRevoked
from authchain.authority.recorder import Recorder
from authchain.authority.state import SideState
from authchain.errors import MalformedError, RevokedError
from authchain.identity.registry import Registry
from authchain.tokens.task_token import VerifiedTaskToken

__all__ = ["Revocations"]

_META_REVOCATIONS: Final = "authority.revocations"
MAX_REASON = 512


class _ReadersWriterLock:
    """Many holders in shared mode, or one in exclusive mode; a waiting writer goes first.

    Python's standard library has no readers-writer lock, and neither of its locks fits: one mutex
    around every hop would serialise the hops (and so defeat the store's group commit), and no lock
    would let a revocation land between a hop's check and its record. Writers are preferred (a new
    reader waits while a writer waits) so that a steady stream of hops cannot hold a revocation off.
    Not reentrant: a holder must not acquire it again, in either mode.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class Revocations:
    """Revoked tokens and tasks (ended tasks count as revoked), and the check every use makes."""

    def __init__(
        self,
        recorder: Recorder,
        state: SideState,
        lock: threading.RLock,
        registry: Callable[[], Registry],
    ) -> None:
        self._recorder = recorder
        self._state = state
        self._lock = lock
        self._registry = registry
        self._serial = _ReadersWriterLock()
        # token hash -> log index of its token.revoked; txn -> index of its task.revoked/task.ended
        self._tokens: dict[str, int] = {}
        self._tasks: dict[str, int] = {}
        # Tasks holding a revoked token: only their tokens need the walk up their lineage.
        self._token_txns: set[str] = set()
        # Revoked tokens whose task the log could not name (see ``revoke``): while any stands, every
        # token's lineage is checked, not only the lineages of tasks known to hold a revoked token.
        self._unscoped: set[str] = set()
        self._load()

    @contextmanager
    def issuing(self) -> Iterator[None]:
        """Hold revocations off (shared) from a token's :meth:`check` to the durable record of what
        it is used for: a revocation recorded meanwhile would come after that record in the log."""
        with self._serial.shared():
            yield

    @contextmanager
    def revoking(self) -> Iterator[None]:
        """Hold issuance off (exclusive) while something that ends tokens is recorded and applied:
        a revocation, the end of a task, a workload's new key."""
        with self._serial.exclusive():
            yield

    def check(self, token: VerifiedTaskToken) -> None:
        """Raise :class:`RevokedError` if the token, an ancestor or its task was revoked or ended,
        or if its holder's registered key is no longer the key the token is bound to."""
        claims = token.claims
        if claims.txn in self._tasks:
            raise RevokedError(
                f"task {claims.txn} was revoked or ended (log index {self._tasks[claims.txn]})"
            )
        if token.token_hash in self._tokens:
            raise RevokedError(
                f"this token was revoked (log index {self._tokens[token.token_hash]})"
            )
        # Re-registering a workload with a new key ends what was bound to the old one: whoever
        # held the old key (a thief, say) must not keep using tokens issued to it.
        registry = self._registry()
        holder = registry.find_workload(claims.actor)
        if holder is None or holder.key.kid != claims.cnf_jkt:
            index = registry.logged("workload", claims.actor)
            raise RevokedError(
                f"this token is bound to a key that is no longer {claims.actor}'s registered key "
                f"(the workload was re-registered at log index {index})"
                if holder is not None
                else f"the holder {claims.actor} of this token is not a registered workload"
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
        with self.revoking(), self._lock:
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
        with self.revoking(), self._lock:
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
