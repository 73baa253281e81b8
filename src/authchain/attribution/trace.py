"""``trace``: rebuild the authority path of any event from the log alone.

For an action, the path runs backwards from the presented token: the action event names the token's
issuance entry (its ``log`` claim) and ``jti``; each issuance entry (``hop.granted``) names its parent
token's hash, ``jti`` and issuance entry; the walk ends at ``task.started``, which names the initiator.
Every step is checked: the entry is in the log (an inclusion proof against the signed checkpoint,
with the leaf hash recomputed from the stored bytes), it is the kind of entry it should be, it belongs
to the same task and initiator, it issued the token the next step says it did, and the actors it
names are the actors the action's chain names. Anything that does not hold is a finding, and the
verdict is ``broken``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authchain.attribution.findings import Finding, make_finding
from authchain.attribution.rules import classify_event
from authchain.audit.checkpoint import SignedCheckpoint
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import leaf_hash, verify_inclusion
from authchain.audit.store import LogStore
from authchain.errors import AuthchainError, LogIntegrityError, NotFoundError

__all__ = ["ChainEntry", "Report", "trace"]

ISSUANCE_KINDS = frozenset({"task.started", "hop.granted", "federation.redeemed"})
_BREAKING = frozenset({"CHAIN_GAP", "LOG_INTEGRITY", "UNATTRIBUTED_ACTION"})


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One hop of the authority path: who held the token, and what allowed its issuance."""

    actor: str
    token: str | None
    index: int
    kind: str
    decision: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision or {}
        return {
            "actor": self.actor,
            "token": self.token,
            "index": self.index,
            "kind": self.kind,
            "decision": {
                "id": decision.get("id"),
                "effect": decision.get("effect"),
                "policies": list(decision.get("policies", [])),
                "reasons": list(decision.get("reasons", [])),
                "policy_set_hash": decision.get("policy_set_hash"),
            },
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The attribution report of one event: the three answers, the path, the verdict, the evidence."""

    event: dict[str, Any]
    task: str | None
    initiator: dict[str, Any] | None
    executor: dict[str, Any] | None
    chain: tuple[ChainEntry, ...]
    verdict: str
    findings: tuple[Finding, ...]
    log: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "task": self.task,
            "initiator": self.initiator,
            "executor": self.executor,
            "chain": [c.to_dict() for c in self.chain],
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "log": self.log,
        }


class _Walker:
    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.findings: list[Finding] = []
        self.broken = False
        self._verified: set[int] = set()
        self.checkpoint: SignedCheckpoint | None = None
        self.size = 0
        try:
            checkpoint = store.latest_checkpoint()
            # The checkpoint is evidence only once its signature verifies under the log's key.
            checkpoint.verify(store.verifier())
        except AuthchainError as exc:
            self.flag("LOG_INTEGRITY", f"the latest checkpoint does not verify: {exc.message}", [])
            # Nothing can be proven without it, but the entries are still read (unproven, and the
            # verdict already broken) so the report shows what the log claims rather than "not found".
            self.size = store.size()
            return
        self.checkpoint = checkpoint
        self.size = checkpoint.size

    def flag(self, code: str, message: str, evidence: list[int], txn: str | None = None) -> None:
        self.findings.append(make_finding(code, message, evidence, txn=txn))
        # The verdict is about the authority path itself: a gap, an unverifiable entry or no path
        # at all breaks it. A refusal the log proves (escalation, replay) is a finding about an
        # intact path, as is an autonomous initiator.
        if code in _BREAKING:
            self.broken = True

    def entry(self, index: int) -> AuditEvent | None:
        """The event at ``index`` if it is in the log and its inclusion verifies, else None."""
        if index < 0 or index >= self.size:
            return None
        try:
            event = self.store.get(index)
        except LogIntegrityError as exc:
            # The stored bytes are no longer an event: someone edited the log.
            self.flag("LOG_INTEGRITY", f"entry {index} does not verify: {exc.message}", [index])
            return None
        except (AuthchainError, LookupError):
            return None
        if index not in self._verified and self.checkpoint is not None:
            try:
                # Against the checkpoint the walker already verified (one signature check per
                # trace, not per entry); the leaf hash is recomputed from the stored bytes, so an
                # edited entry fails even if its stored hashes were edited too.
                proof = self.store.inclusion_proof(index, self.size)
                verify_inclusion(
                    leaf_hash(self.store.get_leaf(index)),
                    index,
                    self.size,
                    proof.path,
                    self.checkpoint.root_hash,
                )
            except AuthchainError as exc:
                self.flag(
                    "LOG_INTEGRITY",
                    f"entry {index} does not verify against the signed checkpoint of size "
                    f"{self.size}: {exc.message}",
                    [index],
                    event.txn,
                )
            self._verified.add(index)
        return event


def _executor(event: AuditEvent) -> dict[str, Any] | None:
    attrs = event.attrs or {}
    if event.kind.startswith("action."):
        executor = attrs.get("executor")
        if isinstance(executor, str):
            return {"id": executor, "kind": attrs.get("executor_kind", "unknown")}
        return None
    if event.actor:
        return {"id": event.actor, "kind": _kind_of(event.actor)}
    return None


def _kind_of(principal: str) -> str:
    if principal.startswith("spiffe://"):
        first = principal[len("spiffe://") :].split("/", 2)
        if len(first) > 1 and first[1] in ("agent", "tool", "service"):
            return first[1]
        return "workload"
    return "user"


def trace(
    store: LogStore,
    *,
    event_id: str | None = None,
    index: int | None = None,
) -> Report:
    """The attribution report of the event named by ``event_id`` or ``index``."""
    if (event_id is None) == (index is None):
        raise NotFoundError("name exactly one event: by id or by index")
    if event_id is not None:
        found = store.find_by_id(event_id)
        if found is None:
            raise NotFoundError(f"no event with id {event_id!r} in the log")
        index, _ = found
    assert index is not None
    walker = _Walker(store)
    event = walker.entry(index)
    if event is None:
        raise NotFoundError(f"no event at index {index} (the log's signed size is {walker.size})")
    txn = event.txn
    attrs = event.attrs or {}

    for code, message in classify_event(event):
        walker.flag(code, message, [index], txn)

    # Where the walk starts: the issuance entry of the token this event is about.
    chain: list[ChainEntry] = []
    expected_hash: str | None
    expected_jti: Any
    start: Any
    if event.kind in ISSUANCE_KINDS:
        expected_hash, expected_jti, start = None, attrs.get("jti"), index
    elif event.kind in ("hop.denied",) or (event.kind.startswith("action.") and event.token):
        if event.kind == "hop.denied":
            expected_hash, expected_jti, start = (
                event.parent_token,
                attrs.get("parent_jti"),
                attrs.get("parent_log"),
            )
        else:
            expected_hash, expected_jti, start = event.token, attrs.get("jti"), attrs.get("log")
    else:
        expected_hash, expected_jti, start = None, None, None

    initiator: dict[str, Any] | None = None
    if start is not None:
        if not isinstance(start, int):
            walker.flag("CHAIN_GAP", "the token names no issuance entry in the log", [index], txn)
        else:
            cursor: int | None = start
            seen: set[int] = set()
            while cursor is not None:
                if cursor in seen or len(seen) > 64:
                    walker.flag("CHAIN_GAP", "the issuance entries form a loop", [cursor], txn)
                    break
                seen.add(cursor)
                issued = walker.entry(cursor)
                if issued is None or issued.kind not in ISSUANCE_KINDS:
                    walker.flag(
                        "CHAIN_GAP",
                        f"the issuance of token {expected_hash or '(this token)'} is not in the log "
                        f"at index {cursor}",
                        [index, cursor] if issued is not None else [index],
                        txn,
                    )
                    break
                iattrs = issued.attrs or {}
                if expected_jti is not None and iattrs.get("jti") != expected_jti:
                    walker.flag(
                        "CHAIN_GAP",
                        f"entry {cursor} did not issue the token with jti {expected_jti}",
                        [index, cursor],
                        txn,
                    )
                    break
                if txn is not None and issued.txn != txn:
                    walker.flag(
                        "CHAIN_GAP",
                        f"entry {cursor} belongs to task {issued.txn}, not {txn}",
                        [index, cursor],
                        txn,
                    )
                    break
                holder = issued.chain[-1] if issued.chain else (issued.actor or "unknown")
                chain.append(
                    ChainEntry(holder, expected_hash, cursor, issued.kind, issued.decision)
                )
                if issued.kind == "task.started":
                    initiator = {
                        "id": issued.initiator,
                        "kind": iattrs.get("initiator_kind", "user"),
                    }
                    if event.initiator is not None and event.initiator != issued.initiator:
                        walker.flag(
                            "CHAIN_GAP",
                            f"the event names initiator {event.initiator} but the task was "
                            f"started by {issued.initiator}",
                            [index, cursor],
                            txn,
                        )
                    cursor = None
                else:
                    expected_hash = issued.parent_token
                    expected_jti = iattrs.get("parent_jti")
                    parent_log = iattrs.get("parent_log")
                    if not isinstance(parent_log, int):
                        walker.flag(
                            "CHAIN_GAP",
                            f"entry {cursor} names no issuance entry for its parent token",
                            [index, cursor],
                            txn,
                        )
                        break
                    cursor = parent_log
            chain.reverse()
            actors = [c.actor for c in chain]
            claimed = list(event.chain or [])
            if event.kind == "hop.denied":
                claimed = claimed[: len(actors)]
            if initiator is not None and claimed and claimed != actors:
                walker.flag(
                    "CHAIN_GAP",
                    f"the event's chain {claimed} is not the chain the log proves {actors}",
                    [index, *(c.index for c in chain)],
                    txn,
                )
            for entry in chain:
                if (entry.decision or {}).get("effect") != "allow":
                    walker.flag(
                        "CHAIN_GAP",
                        f"entry {entry.index} issued a token without an allowing decision",
                        [entry.index],
                        txn,
                    )
    elif event.kind.startswith(("task.", "hop.")) and event.initiator is not None:
        initiator = {"id": event.initiator, "kind": attrs.get("initiator_kind", "user")}

    if initiator is not None and initiator.get("kind") != "user":
        walker.flag(
            "AUTONOMOUS_ACTION",
            f"the task was started by {initiator['id']} ({initiator['kind']}), not by a human",
            [chain[0].index] if chain else [index],
            txn,
        )

    checkpoint = walker.checkpoint
    log = {
        "size": walker.size,
        "root": checkpoint.root_hash.hex() if checkpoint is not None else None,
        "checkpoint": checkpoint.text if checkpoint is not None else None,
    }
    verdict = (
        "broken"
        if walker.broken or (event.kind.startswith("action.") and not chain)
        else "complete"
    )
    if (
        event.kind.startswith("action.")
        and not chain
        and not any(f.code == "UNATTRIBUTED_ACTION" for f in walker.findings)
    ):
        walker.flag(
            "UNATTRIBUTED_ACTION", "the action has no verifiable authority path", [index], txn
        )
    return Report(
        event={"id": event.id, "index": index, "kind": event.kind},
        task=txn,
        initiator=initiator,
        executor=_executor(event),
        chain=tuple(chain),
        verdict=verdict,
        findings=tuple(walker.findings),
        log=log,
    )
