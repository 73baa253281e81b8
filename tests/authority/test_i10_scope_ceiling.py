"""Issue 10, point 1: the receiving workload's registered scopes are a ceiling.

An agent registered for ``research:read`` must never receive ``crm:read crm:write``: not through a
hop that names no scope (it is narrowed to what the receiver may hold), not by asking for them (an
escalation, refused and recorded), and not by starting its own task with a user's ID token. Played
against the authority directly and over the real HTTP app.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from _authority_world import (
    ALICE,
    BOB,
    CRM_AGENT,
    PLANNER,
    RESEARCH,
    UPDATER,
    World,
)

from authchain.attribution import findings
from authchain.audit.records import HopDenied, TaskDenied
from authchain.errors import Input, ScopeEscalationError
from authchain.tokens.hop import receiver_scope

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

import _http_world as http  # noqa: E402


def _escalations(world: World) -> list[int]:
    return [i for f in findings(world.store) if f.code == "SCOPE_ESCALATION" for i in f.evidence]


# --------------------------------------------------------------------------------------------------
# Hops: the audience receives the token.


def test_hop_naming_no_scope_cannot_widen_beyond_the_receivers_registration(world: World) -> None:
    root = world.start(scope="research:read crm:read crm:write")
    child = world.authority.exchange(
        subject_token=root.access_token, dpop_proof=world.token_proof(PLANNER), audience=RESEARCH
    )
    assert child.claims.scope == ("research:read",)
    assert world.record(child.log_index).scope == ("research:read",)


def test_hop_naming_no_scope_keeps_the_parents_order_and_every_scope_the_receiver_may_hold(
    world: World,
) -> None:
    root = world.start(scope="crm:write research:read crm:read")
    child = world.authority.exchange(
        subject_token=root.access_token, dpop_proof=world.token_proof(PLANNER), audience=CRM_AGENT
    )
    assert child.claims.scope == ("crm:write", "crm:read")


def test_hop_asking_beyond_the_receivers_registration_is_refused_and_recorded(
    world: World,
) -> None:
    root = world.start(scope="research:read crm:read crm:write")
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(PLANNER, root, RESEARCH, "research:read crm:write")
    assert caught.value.input is Input.SCOPE
    assert "crm:write" in caught.value.message and RESEARCH in caught.value.message
    record = world.record(caught.value.log_index)
    assert isinstance(record, HopDenied)
    assert (record.error, record.input) == ("scope_escalation", "scope")
    assert record.scope == ("research:read", "crm:write")
    assert record.held_scope == ("research:read", "crm:read", "crm:write")
    assert record.allowed_scope == ("research:read",)
    assert caught.value.log_index in _escalations(world)


def test_hop_whose_narrowing_leaves_nothing_is_refused_as_an_escalation(world: World) -> None:
    root = world.start(scope="crm:read crm:write")
    with pytest.raises(ScopeEscalationError) as caught:
        world.authority.exchange(
            subject_token=root.access_token,
            dpop_proof=world.token_proof(PLANNER),
            audience=RESEARCH,
        )
    assert caught.value.input is Input.SCOPE
    record = world.record(caught.value.log_index)
    assert isinstance(record, HopDenied)
    assert record.error == "scope_escalation"
    assert record.allowed_scope == ("research:read",)
    assert record.held_scope == ("crm:read", "crm:write")
    assert caught.value.log_index in _escalations(world)


def test_hop_within_both_parent_and_receiver_is_granted_unchanged(world: World) -> None:
    root = world.start(scope="research:read crm:read crm:write")
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read crm:write")
    tool = world.hop(CRM_AGENT, crm, UPDATER, "crm:write")
    assert (crm.claims.scope, tool.claims.scope) == (("crm:read", "crm:write"), ("crm:write",))


def test_hop_beyond_the_parent_is_still_refused_as_down_scoping(world: World) -> None:
    # The receiver may hold crm:write, the parent does not: the parent's ceiling still applies.
    root = world.start(scope="research:read")
    with pytest.raises(ScopeEscalationError, match="parent"):
        world.hop(PLANNER, root, CRM_AGENT, "crm:write")


# --------------------------------------------------------------------------------------------------
# Task starts: the first actor receives the token.


def test_task_start_naming_no_scope_narrows_to_the_first_actors_registration(
    world: World,
) -> None:
    issued = world.start(actor=RESEARCH, scope=None)  # type: ignore[arg-type]
    assert issued.claims.scope == ("research:read",)
    assert world.record(issued.log_index).scope == ("research:read",)


def test_agent_starting_its_own_task_with_a_users_id_token_cannot_take_her_crm_scopes(
    world: World,
) -> None:
    # The attack of issue 10: the research agent holds a valid key and Alice's ID token, and asks
    # for what Alice was granted but the agent was never registered for.
    with pytest.raises(ScopeEscalationError) as caught:
        world.start(actor=RESEARCH, scope="crm:read crm:write")
    assert caught.value.input is Input.SCOPE
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied)
    assert (record.error, record.input) == ("scope_escalation", "scope")
    assert record.actor == RESEARCH and record.initiator == ALICE
    assert record.scope == ("crm:read", "crm:write")
    assert record.allowed_scope == ("research:read",)
    assert caught.value.log_index in _escalations(world)


def test_task_start_with_nothing_the_first_actor_may_hold_is_refused(world: World) -> None:
    # Bob was granted crm:read and crm:write; the research agent may hold neither.
    with pytest.raises(ScopeEscalationError) as caught:
        world.start(initiator=BOB, actor=RESEARCH, scope=None)  # type: ignore[arg-type]
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied) and record.allowed_scope == ("research:read",)


def test_task_start_by_an_unregistered_initiator_without_scope_is_refused(world: World) -> None:
    # Nothing was granted to an unknown user, so there is nothing to narrow to.
    with pytest.raises(ScopeEscalationError):
        world.start(initiator="mallory@example.org", scope=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# The rule itself.


def test_receiver_scope_narrows_refuses_and_passes_through() -> None:
    assert receiver_scope(None, available=("a", "b", "c"), registered=("c", "a"), receiver="r") == (
        "a",
        "c",
    )
    assert receiver_scope(("b",), available=(), registered=("b",), receiver="r") == ("b",)
    with pytest.raises(ScopeEscalationError, match="`b` is beyond what `r`"):
        receiver_scope(("a", "b"), available=("a", "b"), registered=("a",), receiver="r")
    with pytest.raises(ScopeEscalationError, match="none of the scopes"):
        receiver_scope(None, available=("b",), registered=("a",), receiver="r")


# --------------------------------------------------------------------------------------------------
# Over HTTP, as the attacker of issue 10 played it.


@pytest.fixture
def web(tmp_path: Path) -> http.World:
    w = http.make_world(tmp_path)
    yield w
    w.client.close()
    w.store.close()


def test_http_hop_naming_no_scope_gives_the_research_agent_only_research_read(
    web: http.World,
) -> None:
    token = web.start(scope="research:read crm:read crm:write")
    issued = web.hop(token, http.PLANNER, to=http.RESEARCH)
    assert http.claims(issued)["scope"] == "research:read"


def test_http_research_agent_starting_a_task_with_crm_scopes_is_invalid_scope_and_recorded(
    web: http.World,
) -> None:
    response = web.post_token(web.start_form(scope="crm:read crm:write"), web.proof(http.RESEARCH))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_scope"
    event = web.store.get(body["log_index"]).to_dict()
    assert event["kind"] == "task.denied"
    assert event["detail"]["error"] == "scope_escalation"
    assert event["detail"]["allowed_scope"] == ["research:read"]


def test_http_hop_asking_beyond_the_receiver_is_invalid_scope_and_recorded(
    web: http.World,
) -> None:
    token = web.start(scope="research:read crm:read crm:write")
    response = web.post_token(
        web.hop_form(token, to=http.RESEARCH, scope="crm:write"), web.proof(http.PLANNER)
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_scope"
    event = web.store.get(body["log_index"]).to_dict()
    assert (event["kind"], event["detail"]["error"]) == ("hop.denied", "scope_escalation")
    assert event["detail"]["allowed_scope"] == ["research:read"]
