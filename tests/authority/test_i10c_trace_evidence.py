"""What ``trace`` and ``findings`` conclude when a participant lies, and what they show.

* A token-bearing action without a verified task is ``broken``: walk keys come only from a token
  whose signature verified, and nothing a reporter supplies is walked.
* Findings name an identity plainly only when a signature proves it; otherwise "claimed".
* The trace of a refusal shows the decision that denied it (policies, reasons, policy-set hash),
  and a replay by a registered key names its presenter in the report, not only in a finding.

Every scenario runs against a real authority on a real log, with registered workloads lying.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from _authority_world import (
    ALICE,
    BOB,
    CRM_AGENT,
    CRM_API,
    LEGACY,
    PLANNER,
    RESEARCH,
    UPDATER,
    World,
    sqlite_file,
)

from authchain._ids import uuid7
from authchain.attribution import Finding, findings, trace
from authchain.cli import main
from authchain.errors import PolicyDenied


def _forge(world: World, like: int, **detail: Any) -> int:
    """A copy of entry ``like`` appended with its detail changed (a forger with write access);
    a member set to None is dropped."""
    event = world.store.get(like)
    members = {k: v for k, v in {**(event.detail or {}), **detail}.items() if v is not None}
    return world.store.append(dataclasses.replace(event, id=uuid7(), detail=members))


def _claimed_only(items: list[Finding] | tuple[Finding, ...], identity: str) -> None:
    """Every mention of ``identity`` in a finding is labelled as a claim."""
    for finding in items:
        for match in re.finditer(re.escape(identity), finding.message):
            before, rest = finding.message[: match.start()], finding.message[match.end() :]
            labelled = rest.startswith(" (claimed") or before.endswith(
                "claimed to be on behalf of "
            )
            assert labelled, (finding.code, finding.message)


# --------------------------------------------------------------------------------------------------
# A token-bearing action without a verified task.


def test_an_action_whose_link_lacks_the_verified_jti_is_broken_not_walked(world: World) -> None:
    # An entry carrying a token hash and a log link but no jti: not what the authority writes for a
    # verified token, so nothing is walked from it (release 0.1 walked it and answered complete).
    _, _, _, action = world.clean_task()
    forged = _forge(world, action, jti=None)
    report = trace(world.store, index=forged)
    assert report.verdict == "broken"
    assert report.chain == () and report.initiator is None
    assert "UNATTRIBUTED_ACTION" in [f.code for f in report.findings]


def test_a_junk_token_with_authority_members_in_its_attrs_traces_broken(world: World) -> None:
    # Issue 10, point 2: a junk token reported with attrs naming a real issuance entry.
    root = world.start()
    index = world.act(
        LEGACY,
        "eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2ln",
        proof="not-a-proof",
        attrs={"log": root.log_index, "jti": root.claims.jti, "initiator": ALICE},
    )
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    assert report.chain == () and report.initiator is None and report.presenter is None
    assert [f.code for f in report.findings] == ["UNATTRIBUTED_ACTION"]
    assert report.refusal is not None and report.refusal["error"]  # the authority's own verdict
    assert report.claims["attrs"] == {
        "log": root.log_index,
        "jti": root.claims.jti,
        "initiator": ALICE,
    }
    assert [f.code for f in findings(world.store)] == ["UNATTRIBUTED_ACTION"]


def test_a_presentation_of_a_revoked_token_is_broken(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    world.authority.revoke(token_hash=tool.token_hash, reason="compromised")
    index = world.act(UPDATER, tool)
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    assert {"UNATTRIBUTED_ACTION", "EXPIRED_OR_REVOKED_AUTHORITY"} <= {
        f.code for f in report.findings
    }


# --------------------------------------------------------------------------------------------------
# Framing: what a reporter says about someone else is never a proven finding about them.


def test_token_less_reports_framing_another_agent_name_it_only_as_claimed(world: World) -> None:
    # Issue 10, point 3: the legacy service reports actions "presented" by the planner, with the
    # authority's own member names among its attributes.
    lies = {"error": "key_binding_mismatch", "holder": UPDATER, "held_scope": ["crm:read"]}
    for initiator in (ALICE, BOB):
        world.act(PLANNER, None, executor=LEGACY, claimed_initiator=initiator, attrs=lies)
    found = findings(world.store)
    assert sorted({f.code for f in found}) == ["SHARED_IDENTITY", "UNATTRIBUTED_ACTION"]
    _claimed_only(found, PLANNER)
    _claimed_only(found, BOB)
    assert all(UPDATER not in f.message for f in found)


# --------------------------------------------------------------------------------------------------
# Point 13: the denying decision, and the presenter of a replay.


def _denied_hop(world: World) -> int:
    root = world.start(scope="crm:read crm:write crm:delete", human_approval=True)
    with pytest.raises(PolicyDenied) as caught:
        world.hop(PLANNER, root, CRM_AGENT, "crm:delete")  # sensitive, no human approval
    index = caught.value.log_index
    assert index is not None
    return index


def test_the_trace_of_a_denied_hop_shows_the_denying_decision(world: World) -> None:
    index = _denied_hop(world)
    report = trace(world.store, index=index)
    refusal = report.refusal
    assert refusal is not None
    assert refusal["error"] == "policy_denied" and refusal["input"] == "policy"
    decision = refusal["decision"]
    recorded = world.record(index).decision
    assert decision["effect"] == "deny" and decision["id"] == recorded["id"]
    assert decision["policies"] == recorded["policies"] and decision["policies"]
    assert decision["reasons"] == recorded["reasons"]
    assert decision["policy_set_hash"] == world.authority.policy.policy_set_hash
    assert report.to_dict()["refusal"] == refusal


def test_the_trace_command_prints_the_denying_decision(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    index = _denied_hop(world)
    recorded = world.record(index).decision
    assert main(["trace", "--index", str(index), "--db", str(sqlite_file(world.store))]) == 0
    out = capsys.readouterr().out
    assert "Why was it refused?" in out
    assert f"policy     {recorded['policies'][0]}: {recorded['reasons'][0]}" in out
    assert f"policy set {recorded['policy_set_hash']}" in out
    assert (
        main(["trace", "--index", str(index), "--db", str(sqlite_file(world.store)), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["refusal"]["decision"]["id"] == recorded["id"]


def test_a_replay_by_a_registered_key_names_its_presenter_in_the_report(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    _, _, tool, _ = world.clean_task()
    stolen = world.api_proof(RESEARCH, tool.access_token)  # the research agent's own key
    index = world.act(RESEARCH, tool, proof=stolen)
    report = trace(world.store, index=index)
    assert report.presenter == {"id": RESEARCH, "kind": "agent"}
    assert report.refusal is not None and report.refusal["error"] == "key_binding_mismatch"
    replay = next(f for f in report.findings if f.code == "TOKEN_REPLAY")
    assert replay.message.startswith(f"{RESEARCH} presented a token held by {UPDATER}")
    assert main(["trace", "--index", str(index), "--db", str(sqlite_file(world.store))]) == 1
    out = capsys.readouterr().out
    assert re.search(rf"Who presented the token\? +{re.escape(RESEARCH)} \(agent\)", out), out


def test_a_presenter_known_only_from_the_report_is_not_the_reports_presenter(
    world: World,
) -> None:
    index = world.act(RESEARCH, None, executor=CRM_API)
    report = trace(world.store, index=index)
    assert report.presenter is None
    assert report.claims["presenter"] == RESEARCH


def test_an_honest_action_names_its_holder_as_presenter(world: World, tmp_path: Path) -> None:
    _, _, _, action = world.clean_task()
    report = trace(world.store, index=action)
    assert report.verdict == "complete" and report.refusal is None
    assert report.presenter == {"id": UPDATER, "kind": "tool"}
