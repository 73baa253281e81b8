"""``trace``: rebuild the authority path of any event from the log alone.

For an action, the path runs backwards from the presented token: the action record names the
token's issuance entry (its ``log`` claim) and ``jti``; each issuance record (``hop.granted``) names
its parent token's hash, ``jti`` and issuance entry; the walk ends at ``task.started``, which names
the initiator. The walk is :func:`authchain.audit.lineage.lineage`, the one the authority uses too;
here its reader is the walker's, which proves every entry it reads: the entry is in the log (an
inclusion proof against the signed checkpoint, with the leaf hash recomputed from the stored bytes)
and is a valid record of its kind. The walk checks that each entry is an issuance of the same task
that issued the token the step before named; here, that the actors it proves are the actors the
event's chain names, and that every issuance was allowed. Anything that does not hold is a finding,
and the verdict is ``broken``.

What a caller supplied with the event (``record.reported``) is never part of the path: the report
carries it apart, as ``claims``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from authchain.attribution.findings import Finding, make_finding
from authchain.attribution.rules import (
    Issued,
    classify_record,
    forged_message,
    forged_parent,
    forged_presentation,
    task_of,
)
from authchain.audit.checkpoint import SignedCheckpoint
from authchain.audit.lineage import ChainGap, lineage
from authchain.audit.merkle import leaf_hash, verify_inclusion
from authchain.audit.records import (
    ActionInvoked,
    ActionRefused,
    HopDenied,
    HopGranted,
    Issuance,
    KeyRotated,
    Record,
    Refusal,
    TaskDenied,
    TaskEnded,
    TaskRevoked,
    TaskStarted,
    TokenRevoked,
    WorkloadRegistered,
    read,
)
from authchain.audit.store import LogStore
from authchain.errors import AuthchainError, LogIntegrityError, NotFoundError

__all__ = ["ChainEntry", "Report", "trace"]

_BREAKING = frozenset({"CHAIN_GAP", "FORGED_TOKEN", "LOG_INTEGRITY", "UNATTRIBUTED_ACTION"})
_ACTIONS = (ActionInvoked, ActionRefused)
# The kinds that name a task's initiator and chain in their envelope, and those that name an actor.
_ON_A_PATH = (Issuance, Refusal, ActionInvoked, ActionRefused)
_ACTED = (Issuance, Refusal, TokenRevoked, TaskRevoked, TaskEnded, WorkloadRegistered, KeyRotated)


@dataclass(frozen=True, slots=True)
class ChainEntry:
    """One hop of the authority path: who held the token, and what allowed its issuance."""

    actor: str
    token: str | None
    index: int
    kind: str
    decision: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "token": self.token,
            "index": self.index,
            "kind": self.kind,
            "decision": _decision_view(self.decision),
        }


def _decision_view(decision: dict[str, Any] | None) -> dict[str, Any]:
    """What a report shows of a recorded decision: which policies decided, why, under which set."""
    decision = decision or {}
    return {
        "id": decision.get("id"),
        "effect": decision.get("effect"),
        "policies": list(decision.get("policies", [])),
        "reasons": list(decision.get("reasons", [])),
        "policy_set_hash": decision.get("policy_set_hash"),
    }


@dataclass(frozen=True, slots=True)
class Report:
    """The attribution report of one event: the three answers, the path, the verdict, the evidence.

    ``claims`` is what a caller supplied with the event (a service's presenter, the initiator it
    claims, its refusal code, its own attributes): shown for the investigator, never evidence, and
    labelled as a claim wherever it is rendered.

    ``presenter`` is who presented the token of an action, when a signature proves it (the key of
    the presentation's DPoP proof is a registered workload's); otherwise None, and the reporter's
    word on it is among the claims. ``refusal`` is why the authority refused the event (its
    machine ``error``, ``reason``, the ``input`` at fault, and the denying ``decision`` with its
    policies, reasons and policy-set hash), for a refusal and for an action whose presentation
    did not verify; otherwise None.
    """

    event: dict[str, Any]
    task: str | None
    initiator: dict[str, Any] | None
    executor: dict[str, Any] | None
    chain: tuple[ChainEntry, ...]
    verdict: str
    findings: tuple[Finding, ...]
    log: dict[str, Any]
    claims: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    presenter: dict[str, Any] | None = None
    refusal: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "task": self.task,
            "initiator": self.initiator,
            "executor": self.executor,
            "presenter": self.presenter,
            "chain": [c.to_dict() for c in self.chain],
            "verdict": self.verdict,
            "findings": [f.to_dict() for f in self.findings],
            "log": self.log,
            "claims": dict(self.claims),
            "refusal": self.refusal,
        }


class _Walker:
    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.findings: list[Finding] = []
        self.broken = False
        self._verified: set[int] = set()
        # Each entry is read (and flagged) once per trace, however often the walk returns to it.
        self._read: dict[int, Record | None] = {}
        #: Entries flagged LOG_INTEGRITY: shown, but no conclusion is drawn from what they say.
        self.unproven: set[int] = set()
        #: Entries that are canonical events but not valid records, and why.
        self.invalid: dict[int, str] = {}
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
        if code == "LOG_INTEGRITY":
            self.unproven.update(evidence)
        # The verdict is about the authority path itself: a gap, an unverifiable entry or no path
        # at all breaks it. A refusal the log proves (escalation, replay) is a finding about an
        # intact path, as is an autonomous initiator.
        if code in _BREAKING:
            self.broken = True

    def entry(self, index: int) -> Record | None:
        """The record at ``index`` if it is in the log, else None.

        An entry whose inclusion does not verify is still returned (flagged ``LOG_INTEGRITY``), so
        the report shows what the log claims; one that is not a valid record of its kind is not.
        """
        if index not in self._read:
            self._read[index] = self._entry(index)
        return self._read[index]

    def _entry(self, index: int) -> Record | None:
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
        try:
            return read(event, index)
        except LogIntegrityError as exc:
            # A canonical event, but not one the authority writes (a detail member forged or of
            # the wrong type): nothing in it is evidence.
            self.flag("LOG_INTEGRITY", exc.message, [index], event.txn)
            self.invalid[index] = exc.message
            return None


def _executor(record: Record) -> dict[str, Any] | None:
    if isinstance(record, _ACTIONS):
        # The service that reported the action, authenticated by its own key.
        return {"id": record.executor, "kind": record.executor_kind}
    if isinstance(record, _ACTED) and record.actor:
        return {"id": record.actor, "kind": _kind_of(record.actor)}
    return None


def _kind_of(principal: str) -> str:
    if principal.startswith("spiffe://"):
        first = principal[len("spiffe://") :].split("/", 2)
        if len(first) > 1 and first[1] in ("agent", "tool", "service"):
            return first[1]
        return "workload"
    return "user"


def _start(record: Record, index: int) -> tuple[str | None, str | None, int | None, str] | None:
    """Where the walk starts: the hash, jti and issuance entry of the token the record is about,
    and the name of the member that links to it (for a message when it is unusable)."""
    if isinstance(record, Issuance):
        return None, record.jti, index, "log"
    if isinstance(record, HopDenied):
        link = record.parent_token, record.parent_jti, record.parent_log, "parent_log"
    elif isinstance(record, _ACTIONS) and record.token:
        link = record.token, record.jti, record.log, "log"
    else:
        return None
    if record.version > 1 and link[1] is None:
        # The authority writes a token's jti and its issuance entry together, once the token's
        # signature verified. An entry without the jti its link must lead to names no verified
        # token: nothing is walked from it (for an action, it has no authority path at all).
        return link[0], None, None, link[3]
    return link


def _presenter(record: Record) -> dict[str, Any] | None:
    """Who presented an action's token, when a signature proves it (version 2 sets ``actor`` only
    then: the presentation's proof verified under a registered workload's key)."""
    if isinstance(record, _ACTIONS) and record.version > 1 and record.actor:
        return {"id": record.actor, "kind": _kind_of(record.actor)}
    return None


def _refusal(record: Record) -> dict[str, Any] | None:
    """Why the authority refused the event: its own error and, for a refusal, the decision."""
    if isinstance(record, Refusal):
        return {
            "error": record.error,
            "reason": record.reason,
            "input": record.input,
            "decision": _decision_view(record.decision) if record.decision else None,
        }
    if isinstance(record, _ACTIONS) and record.error is not None:
        return {"error": record.error, "reason": record.reason, "input": None, "decision": None}
    return None


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
    record = walker.entry(index)
    if record is None:
        if index in walker.invalid:
            raise NotFoundError(f"no valid event at index {index}: {walker.invalid[index]}")
        raise NotFoundError(f"no event at index {index} (the log's signed size is {walker.size})")
    txn = task_of(record)
    for code, message in classify_record(record):
        walker.flag(code, message, [index], txn)

    chain: list[ChainEntry] = []
    initiator: dict[str, Any] | None = None
    start = _start(record, index)
    if start is not None and start[2] is not None:
        chain, initiator = _walk(walker, record, index, start[0], start[1], start[2])
    elif start is not None and record.version == 1 and _named(record, start[3]):
        # Release 0.1 kept the link among caller-writable attributes, so a link that is not an
        # index reads as absent; it was always a gap, and still is.
        walker.flag("CHAIN_GAP", "the token names no issuance entry in the log", [index], txn)
    elif isinstance(record, TaskDenied | HopDenied) and record.initiator is not None:
        kind = record.initiator_kind if isinstance(record, TaskDenied) else None
        initiator = {"id": record.initiator, "kind": kind or "user"}

    if initiator is not None and initiator.get("kind") != "user":
        walker.flag(
            "AUTONOMOUS_ACTION",
            f"the task was started by {initiator['id']} ({initiator['kind']}), not by a human",
            [chain[0].index] if chain else [index],
            txn,
        )

    is_action = isinstance(record, _ACTIONS)
    checkpoint = walker.checkpoint
    log = {
        "size": walker.size,
        "root": checkpoint.root_hash.hex() if checkpoint is not None else None,
        "checkpoint": checkpoint.text if checkpoint is not None else None,
    }
    verdict = "broken" if walker.broken or (is_action and not chain) else "complete"
    if (
        is_action
        and not chain
        and not any(f.code == "UNATTRIBUTED_ACTION" for f in walker.findings)
    ):
        walker.flag(
            "UNATTRIBUTED_ACTION", "the action has no verifiable authority path", [index], txn
        )
    return Report(
        event={"id": record.id, "index": index, "kind": record.kind.value},
        task=txn,
        initiator=initiator,
        executor=_executor(record),
        chain=tuple(chain),
        verdict=verdict,
        findings=tuple(walker.findings),
        log=log,
        claims=dict(record.reported or {}),
        presenter=_presenter(record),
        refusal=_refusal(record),
    )


def _named(record: Record, member: str) -> bool:
    return (record.reported or {}).get(member) is not None


def _walk(
    walker: _Walker,
    record: Record,
    index: int,
    token: str | None,
    jti: str | None,
    start: int,
) -> tuple[list[ChainEntry], dict[str, Any] | None]:
    """The path the log proves from the issuance at ``start``, first actor to last, and its
    initiator; every step that does not hold is flagged on ``walker``."""
    txn = task_of(record)
    steps: list[Issuance] = []
    try:
        for issued in lineage(walker.entry, start, jti=jti, txn=txn, token=token):
            steps.append(issued)
    except ChainGap as gap:
        walker.flag("CHAIN_GAP", gap.message, [index, *gap.evidence], txn)
    _compare_tokens(walker, record, index, jti, start, steps)

    chain: list[ChainEntry] = []
    for issued in steps:
        assert issued.index is not None  # set by the walker's reader
        chain.append(
            ChainEntry(issued.holder, token, issued.index, issued.kind.value, issued.decision)
        )
        token = issued.parent_token
    initiator: dict[str, Any] | None = None
    root = steps[-1] if steps else None
    if isinstance(root, TaskStarted):
        initiator = {"id": root.initiator, "kind": root.initiator_kind}
        named = record.initiator if isinstance(record, _ON_A_PATH) else None
        if named is not None and named != root.initiator:
            walker.flag(
                "CHAIN_GAP",
                f"the event names initiator {named} but the task was started by {root.initiator}",
                [index, chain[-1].index],
                txn,
            )
    chain.reverse()

    actors = [c.actor for c in chain]
    claimed = list(record.chain or []) if isinstance(record, _ON_A_PATH) else []
    if isinstance(record, HopDenied):
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
    return chain, initiator


def _compare_tokens(
    walker: _Walker,
    record: Record,
    index: int,
    jti: str | None,
    start: int,
    steps: list[Issuance],
) -> None:
    """``FORGED_TOKEN``: every token on the path is compared with what its issuance entry issued.

    The event's own token (an action's presented token, a hop denial's parent) is compared with the
    entry its ``log`` names, as soon as that entry issued its ``jti``, even when the walk stops
    there (a token of another task); each parent on the path is compared with the hop that was
    granted from it.
    """
    txn = task_of(record)
    unproven = walker.unproven
    if isinstance(record, (*_ACTIONS, HopDenied)) and jti is not None:
        first = steps[0] if steps else walker.entry(start)
        if isinstance(first, Issuance) and first.jti == jti and not {index, start} & unproven:
            issued = Issued.of(first, start)
            differences = forged_presentation(record, issued)
            if differences:
                what = "presented" if isinstance(record, _ACTIONS) else "delegated from"
                message = forged_message(
                    f"the token {what} at entry {index}", jti, issued, differences
                )
                walker.flag("FORGED_TOKEN", message, [index, start], txn)
    for child, parent in zip(steps, steps[1:], strict=False):
        if not isinstance(child, HopGranted):
            continue
        assert child.index is not None and parent.index is not None  # set by the walker's reader
        if {child.index, parent.index} & unproven:
            continue  # an edited entry proves nothing, a forgery included
        issued = Issued.of(parent, parent.index)
        differences = forged_parent(child, issued)
        if differences:
            message = forged_message(
                f"the parent token of entry {child.index}", child.parent_jti, issued, differences
            )
            walker.flag("FORGED_TOKEN", message, [child.index, parent.index], txn)
