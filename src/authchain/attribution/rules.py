"""The rules that turn log entries into findings.

Per-entry rules read one event (a refusal's machine code says what was attempted); cross-entry rules
read many (one identity acting for several initiators without per-task chains). Every rule works on
the log alone, so an investigator with an exported log gets the same findings as the authority.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from authchain.attribution.findings import Finding, make_finding
from authchain.audit.events import AuditEvent

__all__ = ["classify_event", "scan_events"]

_REPLAY_CODES = frozenset({"key_binding_mismatch", "replay"})
_STALE_CODES = frozenset({"expired", "revoked"})
_ISSUANCE_KINDS = frozenset({"task.started", "hop.granted", "federation.redeemed"})


def classify_event(event: AuditEvent) -> list[tuple[str, str]]:
    """Findings that one entry proves by itself: ``(code, message)`` pairs."""
    attrs: dict[str, Any] = event.attrs or {}
    error = attrs.get("error")
    out: list[tuple[str, str]] = []
    who = event.actor or "an unknown presenter"
    if event.kind.startswith("action.") and attrs.get("unattributed"):
        executor = attrs.get("executor", "a service")
        text = f"{executor} performed {event.action or 'an action'} requested by {who} with no verifiable task token"
        claimed = attrs.get("claimed_initiator")
        if isinstance(claimed, str):
            text += f" (claimed to be on behalf of {claimed})"
        reason = attrs.get("reason")
        if isinstance(reason, str) and reason:
            text += f": {reason}"
        out.append(("UNATTRIBUTED_ACTION", text))
    if error in _REPLAY_CODES:
        holder = attrs.get("holder")
        text = f"{who} presented a token"
        if isinstance(holder, str):
            text += f" held by {holder}"
        text += (
            " with a proof from another key"
            if error == "key_binding_mismatch"
            else " with a reused proof"
        )
        out.append(("TOKEN_REPLAY", text + f"; refused ({event.kind})"))
    if error == "scope_escalation" or (event.kind == "hop.denied" and _escalates(event, attrs)):
        held = attrs.get("held_scope")
        asked = " ".join(event.scope or [])
        text = f"{who} asked for scope `{asked}`"
        if isinstance(held, list):
            text += f" while holding `{' '.join(str(s) for s in held)}`"
        out.append(("SCOPE_ESCALATION", text + f"; denied and recorded ({event.kind})"))
    if error in _STALE_CODES:
        out.append(
            (
                "EXPIRED_OR_REVOKED_AUTHORITY",
                f"{who} used authority that had {'expired' if error == 'expired' else 'been revoked or ended'}"
                f"; refused ({event.kind})",
            )
        )
    if error == "policy_denied" and not any(code == "SCOPE_ESCALATION" for code, _ in out):
        reasons = (event.decision or {}).get("reasons") or []
        text = f"{event.action or event.kind} by {who} was denied by policy"
        if reasons:
            text += ": " + "; ".join(str(r) for r in reasons)
        out.append(("POLICY_DENIED", text))
    if event.kind == "task.started" and attrs.get("initiator_kind") not in (None, "user"):
        out.append(
            (
                "AUTONOMOUS_ACTION",
                f"task started by {event.initiator} ({attrs.get('initiator_kind')}), not a human",
            )
        )
    return out


def _escalates(event: AuditEvent, attrs: dict[str, Any]) -> bool:
    held = attrs.get("held_scope")
    if not isinstance(held, list) or not event.scope:
        return False
    return not set(event.scope).issubset(set(held))


def _chain_gap(
    event: AuditEvent, attrs: dict[str, Any], issued: dict[str, tuple[int, str | None]]
) -> tuple[str, list[int]] | None:
    """A use of a token (an action, or a hop from it) whose issuance is not in the log before it."""
    if event.kind.startswith("action.") and event.token and isinstance(attrs.get("jti"), str):
        jti, named = attrs["jti"], attrs.get("log")
        what = f"the token presented at {event.kind}"
    elif event.kind in ("hop.granted", "hop.denied") and isinstance(attrs.get("parent_jti"), str):
        jti, named = attrs["parent_jti"], attrs.get("parent_log")
        what = f"the parent token of {event.kind}"
    else:
        return None
    found = issued.get(jti)
    if found is None:
        return (f"{what} (jti {jti}) has no issuance entry earlier in the log", [])
    if named != found[0] or found[1] != event.txn:
        return (
            f"{what} (jti {jti}) names issuance entry {named}, but the log issued it at "
            f"entry {found[0]}",
            [found[0]],
        )
    return None


def scan_events(entries: Iterable[tuple[int, AuditEvent]]) -> list[Finding]:
    """Findings over many entries, in log order: per-entry rules, then cross-entry rules."""
    findings: list[Finding] = []
    # identity -> initiators it acted for without a task token, and the entries that show it
    untokened: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    tokened: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    # jti -> (index, txn) of every issuance seen so far: a token is issued before it is used, so
    # in log order a use whose issuance was not seen is a gap (or a forged entry).
    issued: dict[str, tuple[int, str | None]] = {}
    for index, event in entries:
        for code, message in classify_event(event):
            findings.append(make_finding(code, message, [index], txn=event.txn))
        attrs = event.attrs or {}
        gap = _chain_gap(event, attrs, issued)
        if gap is not None:
            findings.append(make_finding("CHAIN_GAP", gap[0], [index, *gap[1]], txn=event.txn))
        if event.kind in _ISSUANCE_KINDS and isinstance(attrs.get("jti"), str):
            issued[attrs["jti"]] = (index, event.txn)
        if not event.kind.startswith("action.") or event.actor in (None, "unknown"):
            continue
        assert event.actor is not None
        if attrs.get("unattributed") and not event.token:
            claimed = attrs.get("claimed_initiator")
            untokened[event.actor][str(claimed) if claimed else "(unknown)"].append(index)
        elif event.token and event.initiator:
            tokened[event.actor][event.initiator].append(index)
    for identity, by_initiator in untokened.items():
        initiators = set(by_initiator) | set(tokened.get(identity, {}))
        if len(initiators) < 2:
            continue
        evidence = [i for idx in by_initiator.values() for i in idx]
        named = sorted(i for i in initiators if i != "(unknown)")
        findings.append(
            make_finding(
                "SHARED_IDENTITY",
                f"{identity} acted for {len(initiators)} initiators"
                + (f" ({', '.join(named)})" if named else "")
                + " without per-task chains: its actions cannot be told apart",
                evidence,
            )
        )
    return findings
