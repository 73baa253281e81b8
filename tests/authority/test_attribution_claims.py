"""Evidence and claims in version 2 records: attribution rests only on what the authority derived,
and names what a caller supplied (``reported``) only as a claim, in findings, reports and the CLI.

The log here is written as the authority writes version 2 records (through the record types), so
each test controls exactly what is evidence and what is claimed, including what a lying reporter
would put in ``reported``."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from _authority_world import ALICE, BOB, CRM_AGENT, CRM_API, LEGACY, PLANNER, RESEARCH, UPDATER

from authchain._encoding import sha256_b64url
from authchain._ids import uuid7
from authchain.attribution import findings, trace
from authchain.audit.records import (
    ActionInvoked,
    ActionRefused,
    HopGranted,
    Record,
    TaskStarted,
)
from authchain.audit.store import LogStore
from authchain.cli import main

TXN = "01a24774-3a65-763a-8a8b-19fd63327172"
DECISION = {
    "id": "01a24774-39a8-7815-8798-241988e8eca4",
    "effect": "allow",
    "policies": ["delegate-held-scopes"],
    "reasons": ["an actor may delegate scopes it holds"],
    "errors": [],
    "policy_set_hash": "d8" * 32,
}
TOOL_TOKEN = sha256_b64url("the updater's token")
CRM_TOKEN = sha256_b64url("the crm agent's token")
ROOT_TOKEN = sha256_b64url("the planner's token")


def _append(store: LogStore, record: Record) -> int:
    event = record.to_event(
        id=uuid7(), time="2026-12-05T18:25:29.179289Z", trust_domain="example.org"
    )
    return store.append(event)


def _task(store: LogStore) -> int:
    """Planner -> CRM agent -> updater, as the authority records it; the updater's issuance index."""
    root = _append(
        store,
        TaskStarted(
            txn=TXN,
            initiator=ALICE,
            actor=PLANNER,
            chain=(PLANNER,),
            scope=("crm:read", "crm:write"),
            decision=DECISION,
            jti="jti-root",
            exp=1796495429,
            depth=1,
            deadline=1796498729,
        ),
    )
    crm = _append(
        store,
        HopGranted(
            txn=TXN,
            initiator=ALICE,
            actor=PLANNER,
            chain=(PLANNER, CRM_AGENT),
            scope=("crm:read", "crm:write"),
            decision=DECISION,
            parent_token=ROOT_TOKEN,
            resource=CRM_AGENT,
            jti="jti-crm",
            exp=1796495429,
            depth=2,
            parent_jti="jti-root",
            parent_log=root,
        ),
    )
    return _append(
        store,
        HopGranted(
            txn=TXN,
            initiator=ALICE,
            actor=CRM_AGENT,
            chain=(PLANNER, CRM_AGENT, UPDATER),
            scope=("crm:write",),
            decision=DECISION,
            parent_token=CRM_TOKEN,
            resource=UPDATER,
            jti="jti-tool",
            exp=1796495429,
            depth=3,
            parent_jti="jti-crm",
            parent_log=crm,
        ),
    )


def _verified(tool: int, **changes: Any) -> ActionInvoked:
    """The updater's own presentation, verified by the authority."""
    action = ActionInvoked(
        action="crm.update_account",
        resource="crm://accounts/acme",
        outcome="succeeded",
        txn=TXN,
        initiator=ALICE,
        actor=UPDATER,
        chain=(PLANNER, CRM_AGENT, UPDATER),
        scope=("crm:write",),
        token=TOOL_TOKEN,
        parent_token=CRM_TOKEN,
        executor=CRM_API,
        executor_kind="service",
        jti="jti-tool",
        log=tool,
        proof_jti="proof-1",
        reported={"presenter": UPDATER, "report_id": "r-1", "attrs": {"rows": 3}},
    )
    return dataclasses.replace(action, **changes)


def _untokened(presenter: str, initiator: str | None, **changes: Any) -> ActionInvoked:
    """An action a service reports with no task token: everything about who asked is its word."""
    reported: dict[str, Any] = {"presenter": presenter}
    if initiator is not None:
        reported["claimed_initiator"] = initiator
    action = ActionInvoked(
        action="crm.bulk_sync",
        resource="crm://accounts/acme",
        outcome="succeeded",
        executor=CRM_API,
        executor_kind="service",
        unattributed=True,
        reported=reported,
    )
    return dataclasses.replace(action, **changes)


def _found(store: LogStore) -> list[tuple[str, list[int]]]:
    return [(f.code, list(f.evidence)) for f in findings(store)]


def _message(store: LogStore, code: str) -> str:
    return next(f.message for f in findings(store) if f.code == code)


# --------------------------------------------------------------------------------------------------
# A verified presentation: the path is evidence; the reporter's own attributes are its claims.


def test_a_verified_action_traces_complete_and_carries_the_reporters_claims_apart(
    store: LogStore,
) -> None:
    tool = _task(store)
    index = _append(store, _verified(tool))
    assert findings(store) == []
    report = trace(store, index=index)
    assert report.verdict == "complete"
    assert [c.actor for c in report.chain] == [PLANNER, CRM_AGENT, UPDATER]
    assert report.initiator == {"id": ALICE, "kind": "user"}
    assert report.executor == {"id": CRM_API, "kind": "service"}
    claims = {"presenter": UPDATER, "report_id": "r-1", "attrs": {"rows": 3}}
    assert report.claims == claims
    assert report.to_dict()["claims"] == claims


# --------------------------------------------------------------------------------------------------
# Who asked, when only the reporter says so.


def test_an_untokened_action_names_its_presenter_and_initiator_only_as_claims(
    store: LogStore,
) -> None:
    index = _append(store, _untokened(LEGACY, ALICE))
    assert _found(store) == [("UNATTRIBUTED_ACTION", [index])]
    assert _message(store, "UNATTRIBUTED_ACTION") == (
        f"{CRM_API} performed crm.bulk_sync requested by {LEGACY} (claimed by the reporter) "
        f"with no verifiable task token (claimed to be on behalf of {ALICE})"
    )
    report = trace(store, index=index)
    assert report.verdict == "broken" and report.chain == () and report.initiator is None
    assert report.executor == {"id": CRM_API, "kind": "service"}  # authenticated by its own key
    assert report.claims == {"presenter": LEGACY, "claimed_initiator": ALICE}


def test_a_shared_identity_known_only_from_claims_is_labelled_as_claimed(store: LogStore) -> None:
    for_alice = _append(store, _untokened(LEGACY, ALICE))
    for_bob = _append(store, _untokened(LEGACY, BOB))
    assert ("SHARED_IDENTITY", [for_alice, for_bob]) in _found(store)
    assert _message(store, "SHARED_IDENTITY") == (
        f"{LEGACY} (claimed by the reporter) acted for 2 initiators "
        f"({ALICE} (claimed), {BOB} (claimed)) without per-task chains: "
        "its actions cannot be told apart"
    )


def test_an_initiator_proven_by_a_chain_is_not_labelled_as_claimed(store: LogStore) -> None:
    tool = _task(store)
    _append(store, _verified(tool))
    without = _append(store, _untokened(UPDATER, BOB))
    shared = next(f for f in findings(store) if f.code == "SHARED_IDENTITY")
    assert shared.evidence == (without,)
    assert f"({ALICE}, {BOB} (claimed))" in shared.message


def test_a_presenter_the_authority_verified_is_named_plainly(store: LogStore) -> None:
    # The proof's key was a registered workload's: the authority set the actor itself.
    index = _append(store, _untokened(LEGACY, ALICE, actor=LEGACY))
    message = _message(store, "UNATTRIBUTED_ACTION")
    assert f"requested by {LEGACY} with no verifiable task token" in message
    assert "(claimed by the reporter)" not in message
    assert trace(store, index=index).claims["presenter"] == LEGACY


def test_an_action_with_no_presenter_at_all_names_an_unknown_presenter(store: LogStore) -> None:
    _append(store, _untokened(LEGACY, None, reported=None))
    assert "requested by an unknown presenter with" in _message(store, "UNATTRIBUTED_ACTION")


# --------------------------------------------------------------------------------------------------
# A lying reporter: what it puts in ``reported`` changes no evidence.


def test_a_reporter_naming_the_authoritys_members_changes_no_finding_and_no_path(
    store: LogStore,
) -> None:
    tool = _task(store)
    lie = {
        "presenter": UPDATER,
        "claimed_initiator": BOB,
        "refusal": "revoked",
        "attrs": {"error": "revoked", "jti": "jti-tool", "log": tool, "holder": RESEARCH},
        "error": "key_binding_mismatch",
        "jti": "jti-tool",
        "log": tool,
    }
    index = _append(store, _untokened(UPDATER, BOB, reported=lie))
    assert _found(store) == [("UNATTRIBUTED_ACTION", [index])]
    report = trace(store, index=index)
    assert report.chain == () and report.initiator is None
    assert [f.code for f in report.findings] == ["UNATTRIBUTED_ACTION"]
    assert report.claims == lie


def test_a_reported_refusal_on_an_unverified_presentation_is_not_a_finding(
    store: LogStore,
) -> None:
    # The authority's own verification failed (a proof from another key): that is the evidence,
    # and what the service said it refused for adds nothing.
    tool = _task(store)
    replay = ActionRefused(
        action="crm.update_account",
        resource="crm://accounts/acme",
        txn=TXN,
        initiator=ALICE,
        chain=(PLANNER, CRM_AGENT, UPDATER),
        scope=("crm:write",),
        token=TOOL_TOKEN,
        executor=CRM_API,
        executor_kind="service",
        jti="jti-tool",
        log=tool,
        holder=UPDATER,
        error="key_binding_mismatch",
        reason="DPoP proof is signed by a key other than the token's cnf.jkt",
        reported={"presenter": RESEARCH, "refusal": "expired"},
    )
    index = _append(store, replay)
    assert _found(store) == [("TOKEN_REPLAY", [index])]
    assert _message(store, "TOKEN_REPLAY") == (
        f"{RESEARCH} (claimed by the reporter) presented a token held by {UPDATER} "
        "with a proof from another key; refused (action.refused)"
    )


def test_a_service_refusal_of_a_verified_presentation_is_worded_as_its_report(
    store: LogStore,
) -> None:
    tool = _task(store)
    refused = ActionRefused(
        **{
            f.name: getattr(_verified(tool), f.name)
            for f in dataclasses.fields(ActionInvoked)
            if f.name not in ("outcome", "reported")
            and getattr(_verified(tool), f.name) is not None
        },
        reported={"presenter": UPDATER, "refusal": "scope_escalation"},
    )
    index = _append(store, refused)
    assert _found(store) == [("SCOPE_ESCALATION", [index])]
    assert _message(store, "SCOPE_ESCALATION") == (
        f"{CRM_API} reports that crm.update_account by {UPDATER} needs more than the token's "
        "scope `crm:write`; refused (action.refused)"
    )
    report = trace(store, index=index)
    assert report.verdict == "complete"  # the path is intact; the refusal is the service's
    assert report.claims["refusal"] == "scope_escalation"


@pytest.mark.parametrize(
    ("refusal", "code", "text"),
    [
        ("key_binding_mismatch", "TOKEN_REPLAY", "presented a token with a proof from another key"),
        ("replay", "TOKEN_REPLAY", "presented a token with a reused proof"),
        ("expired", "EXPIRED_OR_REVOKED_AUTHORITY", "used authority that had expired"),
        ("revoked", "EXPIRED_OR_REVOKED_AUTHORITY", "used authority that had been revoked"),
        ("policy_denied", "POLICY_DENIED", "its policy denied crm.update_account by"),
    ],
)
def test_each_refusal_code_a_service_reports_is_its_report(
    store: LogStore, refusal: str, code: str, text: str
) -> None:
    tool = _task(store)
    index = _append(store, _verified(tool, reported={"refusal": refusal}, outcome="refused"))
    assert _found(store) == [(code, [index])]
    message = _message(store, code)
    assert message.startswith(f"{CRM_API} reports that") and text in message


def test_an_unknown_refusal_code_is_kept_as_a_claim_and_is_no_finding(store: LogStore) -> None:
    tool = _task(store)
    index = _append(store, _verified(tool, reported={"refusal": "teapot"}))
    assert findings(store) == []
    assert trace(store, index=index).claims == {"refusal": "teapot"}


# --------------------------------------------------------------------------------------------------
# The command line: claims labelled, and log text printed as text.


def _db(store: LogStore) -> str:
    path = getattr(store, "path", None)
    assert path is not None
    return str(Path(path))


def test_the_trace_command_shows_claims_labelled_as_claimed(
    store: LogStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    index = _append(store, _untokened(LEGACY, ALICE))
    assert main(["trace", "--index", str(index), "--db", _db(store)]) == 1
    out = capsys.readouterr().out
    assert "What the reporter claimed" in out
    assert f"presenter          {LEGACY} (claimed)" in out
    assert f"claimed_initiator  {ALICE} (claimed)" in out
    initiated = next(line for line in out.splitlines() if "Who initiated it?" in line)
    assert initiated.split("Who initiated it?")[1].strip(" │") == "unknown"


@pytest.mark.parametrize(
    "hostile", ["crm.[/]sync", "crm.[conceal]sync[/conceal]", "crm.[bold red]x"]
)
def test_markup_in_an_action_name_is_printed_verbatim(
    store: LogStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    hostile: str,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    index = _append(store, _untokened(LEGACY, f"{hostile}@example.org", action=hostile))
    db = _db(store)
    assert main(["trace", "--index", str(index), "--db", db]) == 1
    traced = capsys.readouterr().out
    assert main(["findings", "--db", db]) == 0
    listed = capsys.readouterr().out
    for out in (traced, listed):
        assert f"performed {hostile} requested by" in out
    assert f"{hostile}@example.org (claimed)" in traced


def test_markup_in_a_principal_is_printed_verbatim(
    store: LogStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    initiator, actor = "[conceal]alice[/conceal]", "spiffe://example.org/agent/[/]planner"
    started = TaskStarted(
        txn=TXN,
        initiator=initiator,
        actor=actor,
        chain=(actor,),
        scope=("crm:read",),
        decision=DECISION,
        jti="jti-root",
        exp=1796495429,
        depth=1,
        deadline=1796498729,
    )
    index = _append(store, started)
    assert main(["trace", "--index", str(index), "--db", _db(store)]) == 0
    out = capsys.readouterr().out
    assert f"{initiator} (user)" in out  # who initiated it
    assert f"{actor} (agent)" in out  # which identity executed it
    assert f"1. {actor}  (task.started, log #{index})" in out  # the path


# --------------------------------------------------------------------------------------------------
# Forged records: an entry that verifies (the forger had write access) but is not what the
# authority writes is not evidence of anything.


def _forged(store: LogStore, like: int, **detail: Any) -> int:
    event = store.get(like)
    forged = dataclasses.replace(event, id=uuid7(), detail={**(event.detail or {}), **detail})
    return store.append(forged)


def test_a_link_to_an_entry_that_is_no_issuance_is_a_chain_gap(store: LogStore) -> None:
    tool = _task(store)
    action = _append(store, _verified(tool))
    unrelated = _append(store, _untokened(LEGACY, ALICE))
    forged = _forged(store, action, log=unrelated)
    report = trace(store, index=forged)
    assert report.verdict == "broken" and report.chain == ()
    gap = next(f for f in report.findings if f.code == "CHAIN_GAP")
    assert (
        gap.message == f"the issuance of token {TOOL_TOKEN} is not in the log at index {unrelated}"
    )
    assert gap.evidence == (unrelated, forged)
    assert ("CHAIN_GAP", [tool, forged]) in _found(store)  # the scan: issued at tool, not there


def test_a_detail_member_of_the_wrong_type_is_log_integrity_not_a_path(
    store: LogStore, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _task(store)
    action = _append(store, _verified(tool))
    forged = _forged(store, action, log=str(tool))
    assert _found(store) == [("LOG_INTEGRITY", [forged])]
    assert "detail member 'log' must be of type int" in _message(store, "LOG_INTEGRITY")
    assert main(["trace", "--index", str(forged), "--db", _db(store)]) == 4
    assert "not a valid action.invoked record" in capsys.readouterr().err


def test_a_forged_issuance_on_the_path_breaks_the_trace_with_log_integrity(
    store: LogStore,
) -> None:
    tool = _task(store)
    fake_hop = _forged(store, tool, holder_note="mine")
    action = _append(store, _verified(tool, log=fake_hop))
    report = trace(store, index=action)
    assert report.verdict == "broken" and report.chain == ()
    assert [(f.code, f.evidence) for f in report.findings] == [
        ("LOG_INTEGRITY", (fake_hop,)),
        ("CHAIN_GAP", (action,)),
        ("UNATTRIBUTED_ACTION", (action,)),
    ]
