"""Each finding of issue 5, produced by a scenario built for it, and absent from a clean run.

A clean run is a task with hops and an action and nothing else: it must yield no finding at all,
so every finding below is caused by its scenario and nothing else. Scenarios run against a real
Authority and a real SQLite log; the findings are read back from the log alone."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from _authority_world import (
    ALICE,
    BOB,
    CRM_AGENT,
    LEGACY,
    PLANNER,
    RESEARCH,
    SCHEDULER,
    UPDATER,
    World,
)

from authchain._encoding import b64url_decode
from authchain._ids import uuid7
from authchain.attribution import Finding, findings, trace
from authchain.audit.events import AuditEvent
from authchain.audit.records import ActionInvoked, ActionRefused, Record, TaskStarted, read
from authchain.errors import (
    AuthchainError,
    KeyBindingError,
    ReplayError,
    RevokedError,
    ScopeEscalationError,
)
from authchain.identity.keys import SigningKey
from authchain.tokens.jws import sign_compact


def _found(world: World, **kwargs: Any) -> list[tuple[str, list[int]]]:
    return [(f.code, list(f.evidence)) for f in findings(world.store, **kwargs)]


def _record(world: World, index: int) -> Record:
    return read(world.store.get(index), index)


def _error(world: World, index: int) -> str | None:
    """The authority's own refusal code recorded for an action."""
    record = _record(world, index)
    assert isinstance(record, ActionInvoked | ActionRefused)
    return record.error


def _codes(items: tuple[Finding, ...] | list[Finding]) -> list[str]:
    return [f.code for f in items]


# --------------------------------------------------------------------------------------------------
# The clean run.


def test_clean_run_has_no_findings_and_a_complete_trace(world: World) -> None:
    root, crm, tool, action = world.clean_task()
    assert findings(world.store) == []
    assert findings(world.store, txn=root.txn) == []
    for index in (root.log_index, crm.log_index, tool.log_index, action):
        report = trace(world.store, index=index)
        assert report.verdict == "complete", (index, report.findings)
        assert report.findings == ()
    report = trace(world.store, index=action)
    assert [c.actor for c in report.chain] == [PLANNER, CRM_AGENT, UPDATER]
    assert report.initiator == {"id": ALICE, "kind": "user"}


# --------------------------------------------------------------------------------------------------
# UNATTRIBUTED_ACTION and SHARED_IDENTITY.


def test_action_without_a_token_is_unattributed(world: World) -> None:
    world.clean_task()
    index = world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=ALICE)
    assert _found(world) == [("UNATTRIBUTED_ACTION", [index])]
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    assert report.chain == ()
    assert report.initiator is None
    assert _codes(report.findings) == ["UNATTRIBUTED_ACTION"]


def test_action_with_an_unverifiable_token_is_unattributed(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    # The same header (the authority's kid) and claims, signed by a key that is not the authority's.
    header, payload, _ = tool.access_token.split(".")
    forged = sign_compact(
        json.loads(b64url_decode(header)), json.loads(b64url_decode(payload)), SigningKey.generate()
    )
    assert forged.split(".")[:2] == [header, payload]
    index = world.act(UPDATER, forged)
    record = _record(world, index)
    assert isinstance(record, ActionInvoked)
    assert record.unattributed is True
    assert record.error == "signature_invalid"
    assert record.txn is None and record.initiator is None  # nothing unverified is believed
    assert _found(world) == [("UNATTRIBUTED_ACTION", [index])]
    assert trace(world.store, index=index).verdict == "broken"


def test_one_identity_acting_for_two_initiators_without_tokens_is_a_shared_identity(
    world: World,
) -> None:
    world.clean_task()
    for_alice = world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=ALICE)
    for_bob = world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=BOB)
    assert _found(world) == [
        ("UNATTRIBUTED_ACTION", [for_alice]),
        ("UNATTRIBUTED_ACTION", [for_bob]),
        ("SHARED_IDENTITY", [for_alice, for_bob]),
    ]
    shared = findings(world.store)[-1]
    assert LEGACY in shared.message and ALICE in shared.message and BOB in shared.message


def test_one_initiator_through_a_service_account_is_not_a_shared_identity(world: World) -> None:
    first = world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=ALICE)
    second = world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=ALICE)
    assert _found(world) == [("UNATTRIBUTED_ACTION", [first]), ("UNATTRIBUTED_ACTION", [second])]


def test_identity_with_a_chain_for_one_user_and_none_for_another_is_a_shared_identity(
    world: World,
) -> None:
    # The updater acts for Alice through a proper chain, then for Bob with no token: its actions
    # for the two can no longer be told apart by identity alone.
    _, _, _, with_chain = world.clean_task()
    without = world.act(UPDATER, None, claimed_initiator=BOB)
    found = _found(world)
    assert ("SHARED_IDENTITY", [without]) in found
    assert ("UNATTRIBUTED_ACTION", [without]) in found
    assert all(with_chain not in evidence for _, evidence in found)


# --------------------------------------------------------------------------------------------------
# TOKEN_REPLAY.


def test_token_presented_with_a_proof_from_another_key_is_a_replay(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    stolen = world.api_proof(RESEARCH, tool.access_token)  # the research agent's own key
    index = world.act(RESEARCH, tool, proof=stolen)
    record = _record(world, index)
    assert isinstance(record, ActionInvoked)
    assert record.error == "key_binding_mismatch"
    assert record.holder == UPDATER
    assert record.actor == RESEARCH  # the proof's key is the research agent's registered key
    assert record.txn == tool.txn  # the token's signature verified: its task is named
    assert sorted(_found(world)) == [("TOKEN_REPLAY", [index]), ("UNATTRIBUTED_ACTION", [index])]
    replay = next(f for f in findings(world.store) if f.code == "TOKEN_REPLAY")
    assert RESEARCH in replay.message and UPDATER in replay.message
    assert "TOKEN_REPLAY" in _codes(trace(world.store, index=index).findings)


def test_refused_replay_is_recorded_as_a_refusal_and_flagged(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    stolen = world.api_proof(RESEARCH, tool.access_token)
    index = world.act(RESEARCH, tool, proof=stolen, outcome="refused", refusal=KeyBindingError.code)
    assert world.store.get(index).kind == "action.refused"
    assert _found(world) == [("TOKEN_REPLAY", [index])]


def test_proof_jti_reported_twice_is_a_replay_of_the_second_report(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    proof = world.api_proof(UPDATER, tool.access_token)
    first = world.act(UPDATER, tool, proof=proof)
    assert findings(world.store) == []
    # The same proof reported again, here by another service: single use is domain-wide.
    second = world.act(UPDATER, tool, proof=proof, executor=LEGACY)
    assert _error(world, second) == ReplayError.code
    assert sorted(_found(world)) == [
        ("TOKEN_REPLAY", [second]),
        ("UNATTRIBUTED_ACTION", [second]),
    ]
    assert first != second


def test_delegating_a_token_held_by_another_key_is_a_replay(world: World) -> None:
    root, crm, _, _ = world.clean_task()
    with pytest.raises(KeyBindingError) as caught:
        world.hop(RESEARCH, crm, UPDATER, "crm:write")  # the CRM agent's token, research's key
    index = caught.value.log_index
    assert index is not None and world.store.get(index).kind == "hop.denied"
    assert _found(world) == [("TOKEN_REPLAY", [index])]


def test_reused_proof_at_the_token_endpoint_is_a_replay(world: World) -> None:
    root = world.start()
    proof = world.token_proof(PLANNER)
    world.authority.exchange(
        subject_token=root.access_token, dpop_proof=proof, audience=CRM_AGENT, scope="crm:read"
    )
    with pytest.raises(ReplayError) as caught:
        world.authority.exchange(
            subject_token=root.access_token, dpop_proof=proof, audience=CRM_AGENT, scope="crm:read"
        )
    assert _found(world) == [("TOKEN_REPLAY", [caught.value.log_index])]


# --------------------------------------------------------------------------------------------------
# SCOPE_ESCALATION (the denial itself is pinned in test_authority_hops.py).


def test_scope_escalation_is_flagged_with_what_was_held(world: World) -> None:
    root = world.start()
    research = world.hop(PLANNER, root, RESEARCH, "research:read")
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    index = caught.value.log_index
    assert _found(world) == [("SCOPE_ESCALATION", [index])]
    finding = findings(world.store)[0]
    assert "crm:write" in finding.message and "research:read" in finding.message
    assert finding.txn == root.txn
    report = trace(world.store, index=index)
    # The denial's path is the requester's own: it is traced, and the escalation is its finding.
    assert [c.actor for c in report.chain] == [PLANNER, RESEARCH]
    assert _codes(report.findings) == ["SCOPE_ESCALATION"]


# --------------------------------------------------------------------------------------------------
# EXPIRED_OR_REVOKED_AUTHORITY.


def test_action_after_expiry_is_expired_authority(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    world.clock.advance(world.authority.token_lifetime + 120)  # beyond exp and the allowed skew
    index = world.act(UPDATER, tool)
    assert _error(world, index) == "expired"
    assert sorted(_found(world)) == [
        ("EXPIRED_OR_REVOKED_AUTHORITY", [index]),
        ("UNATTRIBUTED_ACTION", [index]),
    ]


def test_hop_after_expiry_is_refused_and_expired_authority(world: World) -> None:
    root = world.start()
    world.clock.advance(world.authority.token_lifetime + 120)
    with pytest.raises(AuthchainError) as caught:
        world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    assert caught.value.code == "expired"
    assert _found(world) == [("EXPIRED_OR_REVOKED_AUTHORITY", [caught.value.log_index])]


def test_token_used_within_its_lifetime_is_not_expired(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    world.clock.advance(world.authority.token_lifetime - 30)
    world.act(UPDATER, tool)
    assert findings(world.store) == []


def test_revoked_token_is_refused_at_use_and_at_delegation(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    revoked = world.authority.revoke(token_hash=tool.token_hash, reason="compromised tool")
    event = world.store.get(revoked)
    assert (event.kind, event.token, event.txn) == ("token.revoked", tool.token_hash, tool.txn)
    used = world.act(UPDATER, tool)
    assert _error(world, used) == RevokedError.code
    assert ("EXPIRED_OR_REVOKED_AUTHORITY", [used]) in _found(world)
    # Its sibling line is untouched.
    research = world.hop(PLANNER, root, RESEARCH, "research:read")
    assert research.log_index > revoked


def test_revoking_a_token_never_presented_refuses_its_descendants(world: World) -> None:
    # The root was only ever delegated, never presented: the log names it only as a parent.
    root, crm, tool, _ = world.clean_task()
    world.authority.revoke(token_hash=root.token_hash, reason="the user withdrew the request")
    with pytest.raises(RevokedError) as at_hop:
        world.hop(CRM_AGENT, crm, UPDATER, "crm:write")  # a child of the revoked token
    used = world.act(UPDATER, tool)  # a grandchild
    record = _record(world, used)
    assert isinstance(record, ActionInvoked)
    assert record.error == RevokedError.code
    assert record.reason is not None and "ancestor" in record.reason
    found = _found(world)
    assert ("EXPIRED_OR_REVOKED_AUTHORITY", [at_hop.value.log_index]) in found
    assert ("EXPIRED_OR_REVOKED_AUTHORITY", [used]) in found


def test_revoking_a_presented_token_refuses_its_descendants(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    world.act(CRM_AGENT, crm)  # presented once: the log now names its task by its hash
    world.authority.revoke(token_hash=crm.token_hash)
    used = world.act(UPDATER, tool)
    assert _error(world, used) == RevokedError.code
    # Another task of the same user is not affected.
    _, _, other_tool, other_action = world.clean_task()
    assert _error(world, other_action) is None


def test_work_after_task_end_is_refused_and_flagged(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    ended = world.authority.end_task(root.txn)
    assert world.store.get(ended).kind == "task.ended"
    with pytest.raises(RevokedError) as caught:
        world.hop(PLANNER, root, RESEARCH, "research:read")
    late = world.act(UPDATER, tool)
    assert _found(world, txn=root.txn) == [
        ("EXPIRED_OR_REVOKED_AUTHORITY", [caught.value.log_index]),
        ("UNATTRIBUTED_ACTION", [late]),
        ("EXPIRED_OR_REVOKED_AUTHORITY", [late]),
    ]


def test_revoked_task_refuses_every_token_of_the_task(world: World) -> None:
    root, crm, tool, _ = world.clean_task()
    world.authority.revoke(txn=root.txn, reason="incident")
    for holder, token, to, scope in (
        (PLANNER, root, RESEARCH, "research:read"),
        (CRM_AGENT, crm, UPDATER, "crm:write"),
    ):
        with pytest.raises(RevokedError):
            world.hop(holder, token, to, scope)
    assert [c for c, _ in _found(world)] == ["EXPIRED_OR_REVOKED_AUTHORITY"] * 2


# --------------------------------------------------------------------------------------------------
# CHAIN_GAP: forged entries, appended directly to the log (they verify: the forger had write
# access), whose claimed authority the log does not back.


def _forge(world: World, like: int, **changes: Any) -> int:
    """Append a copy of the event at ``like`` with ``changes``, as a forger would: ``detail`` holds
    the authority's members to change, written where the event's version keeps them."""
    event = world.store.get(like)
    members = changes.pop("detail", {})
    if event.v is None:  # version 1: one attrs object
        changes["attrs"] = {**(event.attrs or {}), **members}
    else:
        changes["detail"] = {**(event.detail or {}), **members}
    forged: AuditEvent = dataclasses.replace(event, id=uuid7(), **changes)
    return world.store.append(forged)


def _first(world: World, kind: str) -> int:
    return next(index for index, event in world.events() if event.kind == kind)


def test_action_naming_a_non_issuance_entry_is_a_chain_gap(world: World) -> None:
    _, _, _, action = world.clean_task()
    registration = _first(world, "workload.registered")
    forged = _forge(world, action, detail={"log": registration})
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    gap = next(f for f in report.findings if f.code == "CHAIN_GAP")
    assert gap.evidence == (registration, forged)
    assert report.chain == ()


def test_action_naming_the_wrong_jti_is_a_chain_gap(world: World) -> None:
    _, _, tool, action = world.clean_task()
    forged = _forge(world, action, detail={"jti": uuid7()})
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    gap = next(f for f in report.findings if f.code == "CHAIN_GAP")
    assert gap.evidence == (tool.log_index, forged)


def test_action_naming_an_entry_beyond_the_log_is_a_chain_gap(world: World) -> None:
    _, _, _, action = world.clean_task()
    forged = _forge(world, action, detail={"log": 10_000})
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    assert [f.evidence for f in report.findings if f.code == "CHAIN_GAP"] == [(forged,)]


def test_action_claiming_another_chain_is_a_chain_gap(world: World) -> None:
    _, _, _, action = world.clean_task()
    forged = _forge(world, action, chain=(PLANNER, RESEARCH, UPDATER))
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    assert "CHAIN_GAP" in _codes(report.findings)
    # The path shown is the one the log proves, not the one the event claims.
    assert [c.actor for c in report.chain] == [PLANNER, CRM_AGENT, UPDATER]


def test_action_claiming_another_initiator_is_a_chain_gap(world: World) -> None:
    _, _, _, action = world.clean_task()
    forged = _forge(world, action, initiator=BOB)
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    assert "CHAIN_GAP" in _codes(report.findings)
    assert report.initiator == {"id": ALICE, "kind": "user"}


def test_hop_whose_parent_issuance_is_missing_is_a_chain_gap(world: World) -> None:
    # A forged issuance entry whose parent is a registration, and a forged action that uses it.
    _, _, tool, action = world.clean_task()
    registration = _first(world, "principal.registered")
    fake_hop = _forge(world, tool.log_index, detail={"parent_log": registration})
    forged = _forge(world, action, detail={"log": fake_hop})
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    gaps = [f for f in report.findings if f.code == "CHAIN_GAP"]
    assert gaps and gaps[0].evidence == (registration, forged)


def test_hop_issued_without_an_allowing_decision_is_a_chain_gap(world: World) -> None:
    _, _, tool, action = world.clean_task()
    granted = world.store.get(tool.log_index)
    assert granted.decision is not None
    denying = {**granted.decision, "effect": "deny"}
    fake_hop = _forge(world, tool.log_index, decision=denying)
    forged = _forge(world, action, detail={"log": fake_hop})
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    assert [f.evidence for f in report.findings if f.code == "CHAIN_GAP"] == [(fake_hop,)]


# --------------------------------------------------------------------------------------------------
# AUTONOMOUS_ACTION.


def test_task_started_by_a_service_principal_is_autonomous_but_complete(world: World) -> None:
    world.authority.register_principal(SCHEDULER, kind="service", scopes=["crm:write"])
    root = world.start(initiator=SCHEDULER, scope="crm:write", purpose="nightly CRM hygiene")
    tool = world.hop(PLANNER, root, UPDATER, "crm:write")
    action = world.act(UPDATER, tool)
    started = _record(world, root.log_index)
    assert isinstance(started, TaskStarted)
    assert started.initiator == SCHEDULER
    assert started.initiator_kind == "service"

    assert _found(world) == [("AUTONOMOUS_ACTION", [root.log_index])]
    report = trace(world.store, index=action)
    # Autonomous is allowed: the path is whole, and the report says who (what) started it.
    assert report.verdict == "complete"
    assert report.initiator == {"id": SCHEDULER, "kind": "service"}
    assert [(f.code, f.evidence) for f in report.findings] == [
        ("AUTONOMOUS_ACTION", (root.log_index,))
    ]


def test_human_initiated_task_is_not_autonomous(world: World) -> None:
    _, _, _, action = world.clean_task()
    assert "AUTONOMOUS_ACTION" not in _codes(trace(world.store, index=action).findings)
    assert "AUTONOMOUS_ACTION" not in _codes(findings(world.store))


# --------------------------------------------------------------------------------------------------
# Scoping findings to one task.


def test_findings_for_one_task_leave_out_other_tasks(world: World) -> None:
    first, _, _, _ = world.clean_task()
    second = world.start()
    research = world.hop(PLANNER, second, RESEARCH, "research:read")
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    assert findings(world.store, txn=first.txn) == []
    assert _found(world, txn=second.txn) == [("SCOPE_ESCALATION", [caught.value.log_index])]


def test_the_log_wide_scan_finds_forged_uses_without_tracing_them(world: World) -> None:
    _, _, tool, action = world.clean_task()
    registration = _first(world, "workload.registered")
    wrong_entry = _forge(world, action, detail={"log": registration})
    unknown_jti = _forge(world, action, detail={"jti": uuid7()})
    gaps = [f.evidence for f in findings(world.store) if f.code == "CHAIN_GAP"]
    assert gaps == [(tool.log_index, wrong_entry), (unknown_jti,)]


def test_a_clean_log_has_no_chain_gap_in_the_scan(world: World) -> None:
    world.clean_task()
    world.clean_task()
    assert "CHAIN_GAP" not in [f.code for f in findings(world.store)]
