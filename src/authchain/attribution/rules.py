"""The rules that turn log records into findings.

Per-record rules read one record (a refusal's machine code says what was attempted); cross-record
rules read many (one identity acting for several initiators without per-task chains). Every rule
works on the log alone, so an investigator with an exported log gets the same findings as the
authority.

Rules read typed records (:func:`authchain.audit.records.read`), and only their envelope and detail
members are evidence. What a caller supplied (``record.reported``: the presenter a service names,
the initiator it claims, its own refusal code) is a claim: a finding may mention it, labelled as
such, but never rests on it as if the authority had derived it. Version 1 records (release 0.1, one
``attrs`` object for both) are read as release 0.1 read them, so old logs yield the same findings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

from authchain.attribution.findings import Finding, make_finding
from authchain.audit.records import (
    ActionInvoked,
    ActionRefused,
    HopDenied,
    HopGranted,
    Issuance,
    Record,
    Refusal,
    TaskEnded,
    TaskRevoked,
    TaskStarted,
    TokenRevoked,
)

__all__ = [
    "Issued",
    "classify_record",
    "forged_message",
    "forged_parent",
    "forged_presentation",
    "scan_records",
    "task_of",
]

_Action = ActionInvoked | ActionRefused
_ACTIONS = (ActionInvoked, ActionRefused)

_IN_A_TASK = (Issuance, Refusal, ActionInvoked, ActionRefused, TokenRevoked, TaskRevoked, TaskEnded)

_REPLAY_CODES = frozenset({"key_binding_mismatch", "replay"})
_STALE_CODES = frozenset({"expired", "revoked"})


def task_of(record: Record) -> str | None:
    """The task a record belongs to, for the kinds that belong to one."""
    if isinstance(record, _IN_A_TASK):
        return record.txn
    return None


def _claimed(record: Record, name: str) -> str | None:
    """The string a caller reported as ``name``, if any: a claim, never evidence."""
    value = (record.reported or {}).get(name)
    return value if isinstance(value, str) and value else None


def _presenter(record: _Action | Refusal) -> str:
    """Who presented the token or made the request, as text that labels a claim as a claim.

    In a version 2 record the envelope ``actor`` is set only when the authority verified who it
    was; otherwise the presenter a service names is shown as that service's claim. Version 1 did
    not tell the two apart, and its text is kept as it was.
    """
    if record.actor:
        return record.actor
    if record.version > 1 and isinstance(record, _ACTIONS):
        named = _claimed(record, "presenter")
        if named is not None:
            return f"{named} (claimed by the reporter)"
    return "an unknown presenter"


def classify_record(record: Record) -> list[tuple[str, str]]:
    """Findings that one record proves by itself: ``(code, message)`` pairs."""
    out: list[tuple[str, str]] = []
    if isinstance(record, _ACTIONS):
        who = _presenter(record)
        if record.unattributed:
            out.append(("UNATTRIBUTED_ACTION", _unattributed(record, who)))
        reported_code = _reported_refusal(record)
        if reported_code is not None:
            out.extend(_as_reported(record, who, reported_code))
        else:
            out.extend(_by_code(record, record.error, who))
    elif isinstance(record, Refusal):
        out.extend(_by_code(record, record.error, _presenter(record)))
    elif isinstance(record, TaskStarted) and record.initiator_kind != "user":
        out.append(
            (
                "AUTONOMOUS_ACTION",
                f"task started by {record.initiator} ({record.initiator_kind}), not a human",
            )
        )
    return out


def _unattributed(record: _Action, who: str) -> str:
    text = (
        f"{record.executor} performed {record.action or 'an action'} requested by {who} "
        "with no verifiable task token"
    )
    initiator = _claimed(record, "claimed_initiator")
    if initiator is not None:
        text += f" (claimed to be on behalf of {initiator})"
    if record.reason:
        text += f": {record.reason}"
    return text


def _reported_refusal(record: _Action) -> str | None:
    """The refusal code a service reported for a presentation the authority verified, or None.

    Only version 2 keeps the service's code apart from the authority's (version 1 wrote either as
    ``error``, and is read as it always was). A presentation the authority could not verify has
    its own ``error``, which is the evidence; the service's code then adds nothing.
    """
    if record.version == 1 or record.error is not None or record.unattributed:
        return None
    if record.token is None or record.actor is None:
        return None
    return _claimed(record, "refusal")


def _by_code(record: _Action | Refusal, error: str | None, who: str) -> list[tuple[str, str]]:
    """Findings named by the authority's own refusal code (or, in version 1, the recorded one)."""
    out: list[tuple[str, str]] = []
    kind = record.kind.value
    if error in _REPLAY_CODES:
        holder = record.holder if isinstance(record, _ACTIONS) else None
        text = f"{who} presented a token"
        if holder is not None:
            text += f" held by {holder}"
        text += (
            " with a proof from another key"
            if error == "key_binding_mismatch"
            else " with a reused proof"
        )
        out.append(("TOKEN_REPLAY", text + f"; refused ({kind})"))
    held = record.held_scope if isinstance(record, HopDenied) else None
    if error == "scope_escalation" or _escalates(record, held):
        text = f"{who} asked for scope `{' '.join(record.scope or ())}`"
        if held is not None:
            text += f" while holding `{' '.join(held)}`"
        out.append(("SCOPE_ESCALATION", text + f"; denied and recorded ({kind})"))
    if error in _STALE_CODES:
        what = "expired" if error == "expired" else "been revoked or ended"
        out.append(
            (
                "EXPIRED_OR_REVOKED_AUTHORITY",
                f"{who} used authority that had {what}; refused ({kind})",
            )
        )
    if error == "policy_denied" and not any(code == "SCOPE_ESCALATION" for code, _ in out):
        decision = record.decision if isinstance(record, Refusal) else None
        reasons = (decision or {}).get("reasons") or []
        text = f"{record.action or kind} by {who} was denied by policy"
        if reasons:
            text += ": " + "; ".join(str(r) for r in reasons)
        out.append(("POLICY_DENIED", text))
    return out


def _as_reported(record: _Action, who: str, code: str) -> list[tuple[str, str]]:
    """Findings named by a service's own refusal of a verified presentation, worded as its report.

    The service authenticated itself and the presentation verified, so who presented is evidence;
    why the service refused is its word, and the finding says so.
    """
    by = f"{record.executor} reports that"
    kind = record.kind.value
    if code in _REPLAY_CODES:
        how = "a proof from another key" if code == "key_binding_mismatch" else "a reused proof"
        return [("TOKEN_REPLAY", f"{by} {who} presented a token with {how}; refused ({kind})")]
    if code == "scope_escalation":
        scope = " ".join(record.scope or ())
        return [
            (
                "SCOPE_ESCALATION",
                f"{by} {record.action} by {who} needs more than the token's scope `{scope}`; "
                f"refused ({kind})",
            )
        ]
    if code in _STALE_CODES:
        what = "expired" if code == "expired" else "been revoked or ended"
        return [
            (
                "EXPIRED_OR_REVOKED_AUTHORITY",
                f"{by} {who} used authority that had {what}; refused ({kind})",
            )
        ]
    if code == "policy_denied":
        return [("POLICY_DENIED", f"{by} its policy denied {record.action} by {who}")]
    return []


def _escalates(record: Record, held: tuple[str, ...] | None) -> bool:
    if not isinstance(record, HopDenied) or held is None or not record.scope:
        return False
    return not set(record.scope).issubset(set(held))


class Issued(NamedTuple):
    """What an issuance entry (at log index ``entry``) says it issued: the facts a token that
    names it must repeat."""

    entry: int
    txn: str
    initiator: str
    chain: tuple[str, ...]
    scope: tuple[str, ...]
    exp: int

    @classmethod
    def of(cls, record: Issuance, index: int) -> Issued:
        return cls(index, record.txn, record.initiator, record.chain, record.scope, record.exp)


def _differs(what: str, presented: Any, issued: Any) -> str:
    def text(value: Any) -> str:
        return " ".join(value) if isinstance(value, tuple) else str(value)

    return f"its {what} is `{text(presented)}` but the log issued `{text(issued)}`"


def forged_presentation(record: _Action | HopDenied, issued: Issued) -> list[str]:
    """How the token a record names differs from what its issuance entry issued.

    An action record (and a hop denial) carries the presented token's claims as the authority read
    them after its signature verified: task, initiator, chain and scope. A token whose ``jti`` and
    ``log`` name an issuance entry, but whose other claims are not what that entry issued, was
    signed with the authority's key without being issued by it (a stolen key's twin token), or the
    record was written by someone else; either way its authority is forged.
    """
    out: list[str] = []
    if record.txn != issued.txn:
        out.append(_differs("task", record.txn, issued.txn))
    if record.initiator != issued.initiator:
        out.append(_differs("initiator", record.initiator, issued.initiator))
    chain = tuple(record.chain or ())
    if isinstance(record, HopDenied):
        # A hop denial names the parent's chain, or the child's once the hop was derived.
        chain = chain[: len(issued.chain)]
        if record.held_scope is not None and set(record.held_scope) != set(issued.scope):
            out.append(_differs("scope", record.held_scope, issued.scope))
    elif set(record.scope or ()) != set(issued.scope):
        out.append(_differs("scope", tuple(record.scope or ()), issued.scope))
    if chain != issued.chain:
        out.append(_differs("chain", chain, issued.chain))
    return out


def forged_parent(child: HopGranted, parent: Issued) -> list[str]:
    """How the parent token a hop was granted from differs from what its issuance issued.

    The authority derives a child from the parent token it verified: the same initiator, the
    parent's chain plus the next actor, a scope within the parent's, an expiry no later than the
    parent's; and only the parent's holder can ask (its proof's key is the token's ``cnf``). A hop
    that breaks one of these was granted from a token its issuance entry did not issue.
    """
    out: list[str] = []
    if child.initiator != parent.initiator:
        out.append(_differs("initiator", child.initiator, parent.initiator))
    if child.chain[:-1] != parent.chain:
        out.append(_differs("chain", child.chain[:-1], parent.chain))
    if parent.chain and child.actor != parent.chain[-1]:
        out.append(_differs("holder", child.actor, parent.chain[-1]))
    if not set(child.scope) <= set(parent.scope):
        out.append(_differs("scope", child.scope, parent.scope))
    if child.exp > parent.exp:
        out.append(f"it outlives its parent (exp {child.exp} after {parent.exp})")
    return out


def forged_message(what: str, jti: str, issued: Issued, differences: list[str]) -> str:
    return (
        f"{what} (jti {jti}) is not the token entry {issued.entry} issued: "
        + "; ".join(differences)
        + ". It carries the authority's signature, so it was signed outside the authority "
        "(a stolen signing key) or the entries were forged"
    )


def _forged(record: Record, issued: dict[str, Issued]) -> tuple[str, list[int]] | None:
    """A use of a token whose claims are not what its issuance entry issued (see above)."""
    if isinstance(record, (*_ACTIONS, HopDenied)):
        jti, named = (
            (record.jti, record.log)
            if isinstance(record, _ACTIONS)
            else (record.parent_jti, record.parent_log)
        )
        found = issued.get(jti) if jti is not None else None
        if jti is None or found is None or found.entry != named:
            return None  # no token, or a gap (_chain_gap says so)
        differences = forged_presentation(record, found)
        what = f"the token presented at {record.kind.value}"
    elif isinstance(record, HopGranted):
        jti = record.parent_jti
        found = issued.get(jti)
        if found is None or found.entry != record.parent_log:
            return None
        differences = forged_parent(record, found)
        what = f"the parent token of {record.kind.value}"
    else:
        return None
    if not differences:
        return None
    return forged_message(what, jti, found, differences), [found.entry]


def _chain_gap(record: Record, issued: dict[str, Issued]) -> tuple[str, list[int]] | None:
    """A use of a token (an action, or a hop from it) whose issuance is not in the log before it."""
    if isinstance(record, _ACTIONS) and record.token and record.jti is not None:
        jti, named = record.jti, record.log
        what = f"the token presented at {record.kind.value}"
    elif isinstance(record, HopGranted | HopDenied) and record.parent_jti is not None:
        jti, named = record.parent_jti, record.parent_log
        what = f"the parent token of {record.kind.value}"
    else:
        return None
    found = issued.get(jti)
    if found is None:
        return (f"{what} (jti {jti}) has no issuance entry earlier in the log", [])
    if named != found.entry or found.txn != task_of(record):
        return (
            f"{what} (jti {jti}) names issuance entry {named}, but the log issued it at "
            f"entry {found.entry}",
            [found.entry],
        )
    return None


class _Identities:
    """Who acted for whom, with and without a task token: the input of ``SHARED_IDENTITY``.

    An identity or initiator known only from a reporter's claim (version 2) is remembered as such,
    so the finding can label it.
    """

    def __init__(self) -> None:
        # identity -> initiator -> the entries that show it
        self.untokened: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.tokened: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        self.claimed_identities: set[str] = set()
        self.claimed_initiators: dict[str, set[str]] = defaultdict(set)

    def add(self, index: int, record: _Action) -> None:
        identity = record.actor
        by_claim = False
        if record.version > 1 and identity is None:
            identity, by_claim = _claimed(record, "presenter"), True
        if identity is None or identity == "unknown":
            return
        if record.unattributed and not record.token:
            initiator: Any = (record.reported or {}).get("claimed_initiator")
            name = str(initiator) if initiator else "(unknown)"
            self.untokened[identity][name].append(index)
            if record.version > 1:
                if by_claim:
                    self.claimed_identities.add(identity)
                if initiator:
                    self.claimed_initiators[identity].add(name)
        elif record.token and record.initiator and not by_claim:
            self.tokened[identity][record.initiator].append(index)

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for identity, by_initiator in self.untokened.items():
            proven = set(self.tokened.get(identity, {}))
            initiators = set(by_initiator) | proven
            if len(initiators) < 2:
                continue
            evidence = [i for idx in by_initiator.values() for i in idx]
            claims = self.claimed_initiators.get(identity, set()) - proven
            named = [
                f"{i} (claimed)" if i in claims else i
                for i in sorted(i for i in initiators if i != "(unknown)")
            ]
            who = identity
            if identity in self.claimed_identities:
                who += " (claimed by the reporter)"
            out.append(
                make_finding(
                    "SHARED_IDENTITY",
                    f"{who} acted for {len(initiators)} initiators"
                    + (f" ({', '.join(named)})" if named else "")
                    + " without per-task chains: its actions cannot be told apart",
                    evidence,
                )
            )
        return out


def scan_records(entries: Iterable[tuple[int, Record]]) -> list[Finding]:
    """Findings over many records, in log order: per-record rules, then cross-record rules."""
    findings: list[Finding] = []
    identities = _Identities()
    # jti -> what every issuance seen so far issued: a token is issued before it is used, so in
    # log order a use whose issuance was not seen is a gap (or a forged entry), and a use whose
    # token says other than its issuance is a forged token.
    issued: dict[str, Issued] = {}
    for index, record in entries:
        txn = task_of(record)
        for code, message in classify_record(record):
            findings.append(make_finding(code, message, [index], txn=txn))
        gap = _chain_gap(record, issued)
        if gap is not None:
            findings.append(make_finding("CHAIN_GAP", gap[0], [index, *gap[1]], txn=txn))
        forged = _forged(record, issued)
        if forged is not None:
            findings.append(make_finding("FORGED_TOKEN", forged[0], [index, *forged[1]], txn=txn))
        if isinstance(record, Issuance):
            issued[record.jti] = Issued.of(record, index)
        if isinstance(record, _ACTIONS):
            identities.add(index, record)
    findings.extend(identities.findings())
    return findings
