"""The one walk up a token's parents: each step must be the issuance of exactly the token the step
before named, in the same task, and the walk stops (with the steps that held) where it breaks."""

from __future__ import annotations

import dataclasses

import pytest

from authchain._encoding import sha256_b64url
from authchain.audit.lineage import MAX_STEPS, ChainGap, lineage
from authchain.audit.records import HopGranted, Issuance, PrincipalRegistered, Record, TaskStarted

ALICE = "alice@example.org"
PLANNER = "spiffe://example.org/agent/planner"
CRM = "spiffe://example.org/agent/crm"
TOOL = "spiffe://example.org/tool/crm-updater"
TXN = "task-1"
DECISION = {
    "id": "01a24774-39a8-7815-8798-241988e8eca4",
    "effect": "allow",
    "policies": ["p"],
    "reasons": ["r"],
    "errors": [],
    "policy_set_hash": "h",
}


def _root(index: int = 2) -> TaskStarted:
    return TaskStarted(
        index=index,
        txn=TXN,
        initiator=ALICE,
        actor=PLANNER,
        chain=(PLANNER,),
        scope=("crm:write",),
        decision=DECISION,
        jti="jti-root",
        exp=10,
        depth=1,
        deadline=20,
    )


def _hop(index: int, jti: str, parent_jti: str, parent_log: int, holder: str) -> HopGranted:
    return HopGranted(
        index=index,
        txn=TXN,
        initiator=ALICE,
        actor=PLANNER,
        chain=(PLANNER, holder),
        scope=("crm:write",),
        decision=DECISION,
        parent_token=sha256_b64url(parent_jti),
        resource=holder,
        jti=jti,
        exp=10,
        depth=2,
        parent_jti=parent_jti,
        parent_log=parent_log,
    )


def _log() -> dict[int, Record]:
    """Entry 0 a registration, 2 the task's start, 5 and 8 two hops: root -> crm -> tool."""
    return {
        0: PrincipalRegistered(index=0, initiator=ALICE, principal_kind="user", scopes=()),
        2: _root(),
        5: _hop(5, "jti-crm", "jti-root", 2, CRM),
        8: _hop(8, "jti-tool", "jti-crm", 5, TOOL),
    }


def _walk(log: dict[int, Record], start: int, **expected: str | None) -> list[Issuance]:
    return list(lineage(log.get, start, **expected))


def _steps_until_gap(
    log: dict[int, Record], start: int, **expected: str | None
) -> tuple[list[int], ChainGap]:
    steps: list[int] = []
    with pytest.raises(ChainGap) as caught:
        for record in lineage(log.get, start, **expected):
            assert record.index is not None
            steps.append(record.index)
    return steps, caught.value


def test_the_walk_yields_the_token_then_each_ancestor_up_to_the_task_start() -> None:
    steps = _walk(_log(), 8, jti="jti-tool", txn=TXN)
    assert [s.index for s in steps] == [8, 5, 2]
    assert [s.holder for s in steps] == [TOOL, CRM, PLANNER]
    assert isinstance(steps[-1], TaskStarted) and steps[-1].initiator == ALICE


def test_the_walk_from_the_task_start_is_one_step() -> None:
    assert [s.index for s in _walk(_log(), 2, jti="jti-root")] == [2]


def test_without_expectations_only_the_links_are_checked() -> None:
    assert [s.index for s in _walk(_log(), 8)] == [8, 5, 2]


def test_an_entry_that_is_not_in_the_log_is_a_gap() -> None:
    log = _log()
    del log[5]
    steps, gap = _steps_until_gap(log, 8, jti="jti-tool", token="tool-hash")
    assert steps == [8]
    assert (
        gap.message
        == f"the issuance of token {sha256_b64url('jti-crm')} is not in the log at index 5"
    )
    assert gap.evidence == []


def test_an_entry_that_is_not_an_issuance_is_a_gap_naming_it() -> None:
    log = _log()
    log[5] = _hop(5, "jti-crm", "jti-root", 0, CRM)
    steps, gap = _steps_until_gap(log, 8)
    assert steps == [8, 5]
    assert gap.message.endswith("is not in the log at index 0")
    assert gap.evidence == [0]


def test_the_first_step_names_the_token_it_was_asked_about() -> None:
    _, gap = _steps_until_gap({}, 3, token="presented-hash")
    assert gap.message == "the issuance of token presented-hash is not in the log at index 3"
    _, gap = _steps_until_gap({}, 3)
    assert gap.message == "the issuance of token (this token) is not in the log at index 3"


def test_issuance_entries_that_form_a_loop_are_a_gap() -> None:
    log = _log()
    log[2] = _hop(2, "jti-root", "jti-tool", 8, PLANNER)  # the "root" now points back at 8
    steps, gap = _steps_until_gap(log, 8)
    assert steps == [8, 5, 2]
    assert (gap.message, gap.evidence) == ("the issuance entries form a loop", [8])


def test_a_chain_longer_than_any_token_can_be_is_a_loop() -> None:
    log: dict[int, Record] = {0: _root(0)}
    for i in range(1, MAX_STEPS + 2):
        log[i] = _hop(i, f"jti-{i}", "jti-root" if i == 1 else f"jti-{i - 1}", i - 1, CRM)
    steps, gap = _steps_until_gap(log, MAX_STEPS + 1)
    assert len(steps) == MAX_STEPS
    assert gap.message == "the issuance entries form a loop"


def test_an_entry_that_issued_another_jti_is_a_gap() -> None:
    _, gap = _steps_until_gap(_log(), 8, jti="jti-other")
    assert (gap.message, gap.evidence) == (
        "entry 8 did not issue the token with jti jti-other",
        [8],
    )


def test_a_parent_link_naming_another_jti_is_a_gap() -> None:
    log = _log()
    log[8] = _hop(8, "jti-tool", "jti-forged", 5, TOOL)
    steps, gap = _steps_until_gap(log, 8, jti="jti-tool")
    assert steps == [8]
    assert (gap.message, gap.evidence) == (
        "entry 5 did not issue the token with jti jti-forged",
        [5],
    )


def test_an_entry_of_another_task_is_a_gap() -> None:
    log = _log()
    log[5] = dataclasses.replace(_hop(5, "jti-crm", "jti-root", 2, CRM), txn="task-2")
    steps, gap = _steps_until_gap(log, 8, txn=TXN)
    assert steps == [8]
    assert (gap.message, gap.evidence) == (f"entry 5 belongs to task task-2, not {TXN}", [5])
