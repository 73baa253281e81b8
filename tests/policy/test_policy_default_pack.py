"""The default pack: an allow and a deny case for every policy in it (issue 3, item 4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from authchain.policy import (
    Decision,
    Party,
    PolicyEngine,
    PolicyRequest,
    PolicySettings,
)
from authchain.policy.decision import DENY_BY_DEFAULT_REASON

Build = Callable[..., PolicyRequest]

DEFAULT_POLICY_IDS = (
    "chain-depth-limit",
    "delegate-held-scopes",
    "delegate-unheld-scopes",
    "invoke-held-scopes",
    "invoke-unheld-scopes",
    "sensitive-scope-needs-approval",
    "start-task-granted-scopes",
    "start-task-ungranted-scopes",
    "trust-domain-boundary",
)


def assert_allowed_by(decision: Decision, policy_id: str) -> None:
    assert decision.effect == "allow", decision
    assert decision.policies == (policy_id,)
    assert decision.errors == ()
    assert len(decision.reasons) == 1 and decision.reasons[0]


def assert_denied_by(decision: Decision, policy_id: str) -> None:
    assert decision.effect == "deny", decision
    assert policy_id in decision.policies
    assert decision.errors == ()
    assert len(decision.reasons) == len(decision.policies)


def test_default_pack_has_exactly_the_documented_policies(default_engine: PolicyEngine) -> None:
    assert default_engine.policy_ids == DEFAULT_POLICY_IDS
    assert all(p.reason for p in default_engine.policies)


# start_task ---------------------------------------------------------------------------------------


def test_user_may_start_a_task_with_granted_scopes(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    decision = default_engine.decide(start_task(requested_scopes=("crm:read", "crm:write")))
    assert_allowed_by(decision, "start-task-granted-scopes")
    assert decision.reasons == ("the initiator may start a task with scopes granted to it",)


def test_user_may_not_start_a_task_with_an_ungranted_scope(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    decision = default_engine.decide(start_task(requested_scopes=("crm:read", "crm:export")))
    assert_denied_by(decision, "start-task-ungranted-scopes")
    assert "start-task-granted-scopes" not in decision.policies


def test_user_without_grants_may_not_start_a_task_with_any_scope(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    nobody = Party("mallory@example.org", "user", "example.org", ())
    decision = default_engine.decide(start_task(principal=nobody))
    assert_denied_by(decision, "start-task-ungranted-scopes")


def test_triggering_service_may_start_a_task_with_its_registered_scopes(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    cron = Party("spiffe://example.org/service/nightly", "service", "example.org", ("crm:read",))
    assert_allowed_by(
        default_engine.decide(start_task(principal=cron)), "start-task-granted-scopes"
    )


# delegate -----------------------------------------------------------------------------------------


def test_agent_may_delegate_a_scope_it_holds(default_engine: PolicyEngine, delegate: Build) -> None:
    decision = default_engine.decide(delegate())
    assert_allowed_by(decision, "delegate-held-scopes")
    assert decision.reasons == ("an actor may delegate scopes it holds",)


def test_scope_escalation_on_a_hop_is_denied_naming_the_policy(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    decision = default_engine.decide(delegate(requested_scopes=("crm:read", "crm:export")))
    assert_denied_by(decision, "delegate-unheld-scopes")
    assert decision.reasons[decision.policies.index("delegate-unheld-scopes")] == (
        "an actor may not delegate a scope it does not hold"
    )


# invoke -------------------------------------------------------------------------------------------


def test_actor_may_invoke_within_held_scopes(default_engine: PolicyEngine, invoke: Build) -> None:
    assert_allowed_by(default_engine.decide(invoke()), "invoke-held-scopes")


def test_actor_may_not_invoke_with_a_scope_it_does_not_hold(
    default_engine: PolicyEngine, invoke: Build
) -> None:
    decision = default_engine.decide(invoke(requested_scopes=("crm:write",)))
    assert_denied_by(decision, "invoke-unheld-scopes")


# chain-depth-limit --------------------------------------------------------------------------------


def test_chain_at_the_depth_limit_is_allowed(default_engine: PolicyEngine, delegate: Build) -> None:
    assert default_engine.settings.max_depth == 8
    assert_allowed_by(default_engine.decide(delegate(depth=8)), "delegate-held-scopes")


def test_chain_deeper_than_the_limit_is_denied(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    assert_denied_by(default_engine.decide(delegate(depth=9)), "chain-depth-limit")


def test_depth_limit_comes_from_settings_not_from_cedar_text(delegate: Build) -> None:
    engine = PolicyEngine.default(settings=PolicySettings(max_depth=2))
    assert_allowed_by(engine.decide(delegate(depth=2)), "delegate-held-scopes")
    assert_denied_by(engine.decide(delegate(depth=3)), "chain-depth-limit")


# sensitive-scope-needs-approval -------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["crm:delete", "payments:write"])
def test_sensitive_scope_without_human_approval_is_denied(
    default_engine: PolicyEngine, delegate: Build, scope: str
) -> None:
    request = delegate(requested_scopes=(scope,), held_scopes=("crm:read", scope))
    assert_denied_by(default_engine.decide(request), "sensitive-scope-needs-approval")


def test_sensitive_scope_with_recorded_human_approval_is_allowed(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    request = delegate(
        requested_scopes=("crm:delete",), held_scopes=("crm:delete",), human_approval=True
    )
    assert_allowed_by(default_engine.decide(request), "delegate-held-scopes")


def test_sensitive_scope_at_task_start_needs_approval_too(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    alice = Party("alice@example.org", "user", "example.org", ("crm:read", "crm:delete"))
    request = start_task(principal=alice, requested_scopes=("crm:delete",))
    assert_denied_by(default_engine.decide(request), "sensitive-scope-needs-approval")
    approved = start_task(principal=alice, requested_scopes=("crm:delete",), human_approval=True)
    assert_allowed_by(default_engine.decide(approved), "start-task-granted-scopes")


def test_sensitive_scopes_come_from_settings(delegate: Build) -> None:
    engine = PolicyEngine.default(settings=PolicySettings(sensitive_scopes=frozenset({"crm:read"})))
    assert_denied_by(engine.decide(delegate()), "sensitive-scope-needs-approval")


# trust-domain-boundary ----------------------------------------------------------------------------


def test_delegation_outside_the_allowed_trust_domains_is_denied(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    outsider = Party("spiffe://partner.example/agent/helper", "agent", "partner.example", ())
    assert_denied_by(default_engine.decide(delegate(resource=outsider)), "trust-domain-boundary")


def test_delegation_to_a_federated_trust_domain_is_allowed(delegate: Build) -> None:
    engine = PolicyEngine.default(
        settings=PolicySettings(federated_trust_domains=frozenset({"partner.example"}))
    )
    partner = Party("spiffe://partner.example/agent/helper", "agent", "partner.example", ())
    assert_allowed_by(engine.decide(delegate(resource=partner)), "delegate-held-scopes")


def test_delegation_to_an_additional_allowed_trust_domain_is_allowed(delegate: Build) -> None:
    settings = PolicySettings(allowed_trust_domains=frozenset({"example.org", "corp.example"}))
    engine = PolicyEngine.default(settings=settings)
    colleague = Party("spiffe://corp.example/tool/wiki", "tool", "corp.example", ())
    assert_allowed_by(engine.decide(delegate(resource=colleague)), "delegate-held-scopes")


# Several controls at once, and deny by default ----------------------------------------------------


def test_every_violated_control_is_named_in_the_denial(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    outsider = Party("spiffe://evil.example/agent/x", "agent", "evil.example", ())
    decision = default_engine.decide(
        delegate(resource=outsider, requested_scopes=("payments:write",), depth=20)
    )
    assert decision.effect == "deny"
    assert decision.policies == (
        "chain-depth-limit",
        "delegate-unheld-scopes",
        "sensitive-scope-needs-approval",
        "trust-domain-boundary",
    )
    by_id = {p.id: p.reason for p in default_engine.policies}
    assert decision.reasons == tuple(by_id[p] for p in decision.policies)


def test_request_no_permit_matches_is_denied_by_default(
    write_policies: Callable[..., object], delegate: Build
) -> None:
    only_invoke = (
        '@id("invoke-anything") @reason("test")\n'
        'permit (principal, action == Action::"invoke", resource);\n'
    )
    engine = PolicyEngine.from_directory(write_policies({"a.cedar": only_invoke}))  # type: ignore[arg-type]
    decision = engine.decide(delegate())
    assert decision.effect == "deny"
    assert decision.policies == ()
    assert decision.reasons == (DENY_BY_DEFAULT_REASON,)
    assert decision.errors == ()
