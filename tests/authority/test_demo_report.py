"""The demo (issue 5, "The demo"): its final report asserted field by field, its findings exactly, and
the same through ``authchain demo --json``. Every expectation is read back from the log the demo
wrote, never from the demo's own bookkeeping, so the report is checked against the evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _authority_world import RAW_JWT

from authchain.audit.events import AuditEvent
from authchain.audit.records import read
from authchain.audit.store import LogStore, open_store
from authchain.cli import main
from authchain.demo import DemoOutcome, run_demo
from authchain.policy import PolicyEngine

ALICE = "alice@example.org"
BOB = "bob@example.org"
PLANNER = "spiffe://example.org/agent/planner"
RESEARCH = "spiffe://example.org/agent/research"
CRM_AGENT = "spiffe://example.org/agent/crm"
UPDATER = "spiffe://example.org/tool/crm-updater"
CRM_API = "spiffe://example.org/service/crm-api"
LEGACY = "spiffe://example.org/service/legacy-sync"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DemoOutcome, LogStore]]:
    store = open_store(str(tmp_path_factory.mktemp("demo") / "demo.db"), create=True)
    try:
        yield run_demo(store), store
    finally:
        store.close()


def _events(store: LogStore) -> list[tuple[int, AuditEvent]]:
    return list(store.entries(0, store.size()))


def _only(store: LogStore, kind: str, **match: Any) -> int:
    """The index of the one event of ``kind`` whose record members (or reported words) match."""
    found = []
    for index, event in _events(store):
        if event.kind != kind:
            continue
        record = read(event, index)
        reported = record.reported or {}
        if all(getattr(record, k, None) == v or reported.get(k) == v for k, v in match.items()):
            found.append(index)
    assert len(found) == 1, (kind, match, found)
    return found[0]


def _record(store: LogStore, index: int) -> Any:
    """The typed record at ``index`` (``Any``: tests read each kind's own members)."""
    return read(store.get(index), index)


def _decision(decision: dict[str, Any]) -> dict[str, Any]:
    """A decision as the report shows it: the log's record without ``errors``."""
    return {k: decision[k] for k in ("id", "effect", "policies", "reasons", "policy_set_hash")}


# --------------------------------------------------------------------------------------------------
# The final tool action's report.


def test_demo_final_report_names_the_action_its_initiator_and_executor(
    demo: tuple[DemoOutcome, LogStore],
) -> None:
    outcome, store = demo
    final = store.get(outcome.final_index)
    report = outcome.report.to_dict()

    assert final.kind == "action.invoked"
    assert final.actor == UPDATER
    assert report["event"] == {
        "id": final.id,
        "index": outcome.final_index,
        "kind": "action.invoked",
    }
    assert final.txn is not None
    assert report["task"] == final.txn
    assert report["initiator"] == {"id": ALICE, "kind": "user"}
    assert report["executor"] == {"id": CRM_API, "kind": "service"}
    assert report["verdict"] == "complete"
    assert report["findings"] == []


def test_demo_final_report_chain_is_planner_crm_agent_updater_with_their_decisions(
    demo: tuple[DemoOutcome, LogStore],
) -> None:
    outcome, store = demo
    chain = outcome.report.to_dict()["chain"]
    policy_set_hash = PolicyEngine.default().policy_set_hash

    started = _only(store, "task.started")
    to_crm = _only(store, "hop.granted", resource=CRM_AGENT)
    to_updater = _only(store, "hop.granted", resource=UPDATER)
    assert [c["actor"] for c in chain] == [PLANNER, CRM_AGENT, UPDATER]
    assert [c["index"] for c in chain] == [started, to_crm, to_updater]
    assert [c["kind"] for c in chain] == ["task.started", "hop.granted", "hop.granted"]

    expected_policies = [
        (
            ["start-task-granted-scopes"],
            ["the initiator may start a task with scopes granted to it"],
        ),
        (["delegate-held-scopes"], ["an actor may delegate scopes it holds"]),
        (["delegate-held-scopes"], ["an actor may delegate scopes it holds"]),
    ]
    for entry, (policies, reasons) in zip(chain, expected_policies, strict=True):
        recorded = store.get(entry["index"]).decision
        assert recorded is not None
        assert entry["decision"] == _decision(recorded)
        assert entry["decision"]["effect"] == "allow"
        assert entry["decision"]["policies"] == policies
        assert entry["decision"]["reasons"] == reasons
        assert entry["decision"]["policy_set_hash"] == policy_set_hash


def test_demo_chain_token_hashes_link_the_action_to_each_issuance(
    demo: tuple[DemoOutcome, LogStore],
) -> None:
    outcome, store = demo
    final = store.get(outcome.final_index)
    chain = outcome.report.chain
    # The last hop's token is the one the action presented; each earlier one is the parent that the
    # next issuance names (``parent_token``), so the hashes form the lineage.
    assert chain[-1].token == final.token
    for parent, child in zip(chain, chain[1:], strict=False):
        assert store.get(child.index).parent_token == parent.token
        assert _record(store, child.index).parent_log == parent.index
    assert _record(store, outcome.final_index).log == chain[-1].index
    assert final.chain == (PLANNER, CRM_AGENT, UPDATER)
    assert final.initiator == ALICE
    assert len({c.token for c in chain}) == 3


def test_demo_report_log_is_the_stores_signed_state(demo: tuple[DemoOutcome, LogStore]) -> None:
    outcome, store = demo
    checkpoint = store.latest_checkpoint()
    assert outcome.report.log == {
        "size": store.size(),
        "root": store.root().hex(),
        "checkpoint": checkpoint.text,
    }
    assert outcome.log["verifier_key"] == store.verifier_key()
    assert store.verify().size == store.size()


# --------------------------------------------------------------------------------------------------
# The findings over the demo's log.


def test_demo_findings_are_exactly_the_scenarios_misdeeds_with_their_evidence(
    demo: tuple[DemoOutcome, LogStore],
) -> None:
    outcome, store = demo
    escalation = _only(store, "hop.denied", error="scope_escalation")
    legacy_alice = _only(store, "action.invoked", claimed_initiator=ALICE)
    legacy_bob = _only(store, "action.invoked", claimed_initiator=BOB)
    replay = _only(store, "action.refused", error="key_binding_mismatch")

    got = [(f.code, list(f.evidence)) for f in outcome.findings]
    assert got == [
        ("SCOPE_ESCALATION", [escalation]),
        ("UNATTRIBUTED_ACTION", [legacy_alice]),
        ("UNATTRIBUTED_ACTION", [legacy_bob]),
        ("TOKEN_REPLAY", [replay]),
        ("SHARED_IDENTITY", [legacy_alice, legacy_bob]),
    ]
    # The events behind them are what the scenario says happened.
    denied = store.get(escalation)
    assert (denied.actor, denied.resource, denied.scope) == (RESEARCH, UPDATER, ("crm:write",))
    assert _record(store, escalation).held_scope == ("research:read",)
    for index in (legacy_alice, legacy_bob):
        legacy = _record(store, index)
        # Nobody proved who asked: the legacy job is only the reporter's word.
        assert (legacy.actor, legacy.token) == (None, None)
        assert (legacy.reported or {})["presenter"] == LEGACY
        assert legacy.unattributed is True
    refused = _record(store, replay)
    assert refused.actor == RESEARCH  # its own proof's key is registered
    assert refused.holder == CRM_AGENT


def test_demo_findings_carry_severity_frameworks_and_task(
    demo: tuple[DemoOutcome, LogStore],
) -> None:
    outcome, store = demo
    by_code = {f.code: f.to_dict() for f in outcome.findings}
    task = outcome.report.task
    assert by_code["SCOPE_ESCALATION"]["severity"] == "high"
    assert by_code["TOKEN_REPLAY"]["severity"] == "critical"
    assert by_code["SHARED_IDENTITY"]["severity"] == "high"
    assert by_code["SCOPE_ESCALATION"]["task"] == task
    assert by_code["TOKEN_REPLAY"]["task"] == task
    assert "task" not in by_code["SHARED_IDENTITY"]  # it spans initiators, not one task
    for finding in by_code.values():
        frameworks = finding["frameworks"]
        assert set(frameworks) == {
            "owasp_asi",
            "owasp_agentic_threats",
            "csa_maestro",
            "mitre_atlas",
            "nist_ai_rmf",
        }
        assert all(a.startswith("ASI") for a in frameworks["owasp_asi"]) and frameworks["owasp_asi"]
        assert all(t.startswith("T") for t in frameworks["owasp_agentic_threats"])
        assert all(m.startswith("L") for m in frameworks["csa_maestro"])
        assert set(frameworks["nist_ai_rmf"]) <= {"GOVERN", "MAP", "MEASURE", "MANAGE"}
        assert finding["message"]
    assert "alice@example.org" in by_code["SHARED_IDENTITY"]["message"]
    assert "bob@example.org" in by_code["SHARED_IDENTITY"]["message"]


def test_demo_log_holds_no_raw_token(demo: tuple[DemoOutcome, LogStore]) -> None:
    _, store = demo
    for entry in store.raw_entries(0, store.size()):
        assert RAW_JWT.search(entry.leaf) is None, entry.index


# --------------------------------------------------------------------------------------------------
# The same through the command line.


def test_demo_json_command_prints_report_findings_and_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli-demo.db"
    assert main(["demo", "--db", str(db), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"report", "findings", "log"}

    report = out["report"]
    assert report["event"]["kind"] == "action.invoked"
    assert report["initiator"] == {"id": ALICE, "kind": "user"}
    assert report["executor"] == {"id": CRM_API, "kind": "service"}
    assert [c["actor"] for c in report["chain"]] == [PLANNER, CRM_AGENT, UPDATER]
    assert {c["decision"]["policy_set_hash"] for c in report["chain"]} == {
        PolicyEngine.default().policy_set_hash
    }
    assert report["verdict"] == "complete"
    assert report["findings"] == []
    assert [f["code"] for f in out["findings"]] == [
        "SCOPE_ESCALATION",
        "UNATTRIBUTED_ACTION",
        "UNATTRIBUTED_ACTION",
        "TOKEN_REPLAY",
        "SHARED_IDENTITY",
    ]

    # The printed report is the log's: reopen the file and compare.
    with open_store(str(db), create=False) as store:
        event = store.get(report["event"]["index"])
        assert event.id == report["event"]["id"]
        assert out["log"]["size"] == store.size() == report["log"]["size"]
        assert out["log"]["root"] == store.root().hex()
        assert out["log"]["verifier_key"] == store.verifier_key()
        for entry in report["chain"]:
            recorded = store.get(entry["index"]).decision
            assert recorded is not None and entry["decision"] == _decision(recorded)


def test_demo_command_prints_the_three_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    db = tmp_path / "readable.db"
    assert main(["demo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    for text in (
        "Who initiated it?",
        "alice@example.org (user)",
        "Which identity executed it?",
        "crm-api (service)",
        "What allowed each delegation?",
        "delegate-held-scopes",
        "complete",
        "SCOPE_ESCALATION",
        "SHARED_IDENTITY",
        "TOKEN_REPLAY",
    ):
        assert text in out, text


def test_demo_without_db_writes_a_fresh_log_in_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert (tmp_path / "authchain-demo.db").exists()
    # Run again: the default log is the demo's own and starts afresh, so the report is the same
    # shape at the same indexes rather than a longer log.
    assert main(["demo", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["log"]["size"] == first["log"]["size"]
    assert second["report"]["event"]["index"] == first["report"]["event"]["index"]
    assert second["report"]["event"]["id"] != first["report"]["event"]["id"]
