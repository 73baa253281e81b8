"""Fail closed: every evaluation error is a denial that carries the error (issue 3, item 2).

Cedar skips a policy whose evaluation errors. A ``forbid`` that errors therefore does not apply and
a matching ``permit`` wins: Cedar alone says Allow. The engine must say deny.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cedarpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authchain.policy import Party, PolicyEngine, PolicyRequest
from authchain.policy import engine as engine_module
from authchain.policy.decision import FAIL_CLOSED_REASON

Build = Callable[..., PolicyRequest]
Write = Callable[..., Path]

PERMIT_DELEGATE = """\
@id("permit-delegate")
@reason("holders may delegate")
permit (principal, action == Action::"delegate", resource);
"""
# Validates against the schema, but overflows Cedar's 64-bit Long for any depth above 1.
FORBID_THAT_ERRORS = """\
@id("forbid-overflows")
@reason("a forbid whose evaluation errors")
forbid (principal, action, resource)
when { context.depth * 4611686018427387904 > 0 };
"""
FORBID_DEEP = """\
@id("forbid-deep")
@reason("too deep")
forbid (principal, action, resource)
when { context.depth > 1 };
"""


def test_erroring_forbid_next_to_matching_permit_is_a_denial_carrying_the_error(
    write_policies: Write, delegate: Build
) -> None:
    engine = PolicyEngine.from_directory(
        write_policies({"p.cedar": PERMIT_DELEGATE, "f.cedar": FORBID_THAT_ERRORS})
    )
    request = delegate(depth=2)

    # The hazard, as Cedar itself decides it: the erroring forbid is skipped and the permit wins.
    cedar_request, delta = engine_module._cedar_inputs(request)
    loaded = engine._loaded
    raw = cedarpy.is_authorized(
        cedar_request,
        loaded.cedar_policies,
        loaded.base_entities.with_added_json_str(delta),
        loaded.cedar_schema,
    )
    assert raw.allowed and raw.diagnostics.errors

    decision = engine.decide(request)
    assert decision.effect == "deny"
    assert not decision.allowed
    assert decision.policies == ()  # the permit did not determine a denial
    assert decision.reasons == (FAIL_CLOSED_REASON,)
    assert len(decision.errors) == 1
    assert "forbid-overflows" in decision.errors[0]
    assert "overflow" in decision.errors[0]


def test_erroring_forbid_next_to_a_matching_forbid_names_the_forbid_and_the_error(
    write_policies: Write, delegate: Build
) -> None:
    engine = PolicyEngine.from_directory(
        write_policies({"a.cedar": PERMIT_DELEGATE + FORBID_THAT_ERRORS + FORBID_DEEP})
    )
    decision = engine.decide(delegate(depth=2))
    assert decision.effect == "deny"
    assert decision.policies == ("forbid-deep",)
    assert decision.reasons == ("too deep",)
    assert any("forbid-overflows" in e for e in decision.errors)


def test_erroring_permit_alone_is_a_denial_carrying_the_error(
    write_policies: Write, delegate: Build
) -> None:
    permit_that_errors = FORBID_THAT_ERRORS.replace("forbid (", "permit (").replace(
        "forbid-overflows", "permit-overflows"
    )
    engine = PolicyEngine.from_directory(write_policies({"p.cedar": permit_that_errors}))
    decision = engine.decide(delegate(depth=2))
    assert decision.effect == "deny"
    assert decision.reasons == (FAIL_CLOSED_REASON,)
    assert "permit-overflows" in decision.errors[0]


def test_request_missing_an_attribute_a_forbid_reads_is_denied(
    monkeypatch: pytest.MonkeyPatch, write_policies: Write, delegate: Build
) -> None:
    # The case measured in the issue: Cedar without a schema would skip `forbid-deep` and allow.
    # A mapper that forgets `depth` stands in for any gap between the request and the policies.
    engine = PolicyEngine.from_directory(
        write_policies({"p.cedar": PERMIT_DELEGATE, "f.cedar": FORBID_DEEP})
    )
    real = engine_module._cedar_inputs

    def forgetful(request: PolicyRequest) -> tuple[dict[str, Any], str]:
        cedar_request, delta = real(request)
        context = json.loads(cedar_request["context"])
        del context["depth"]
        return {**cedar_request, "context": json.dumps(context)}, delta

    monkeypatch.setattr(engine_module, "_cedar_inputs", forgetful)
    decision = engine.decide(delegate(depth=5))
    assert decision.effect == "deny"
    assert decision.reasons == (FAIL_CLOSED_REASON,)
    assert any("depth" in e for e in decision.errors)


def test_party_of_a_kind_the_action_does_not_take_is_denied_with_the_schema_error(
    default_engine: PolicyEngine, start_task: Build, delegate: Build
) -> None:
    # A tool is not a task: starting a task "on" a tool does not fit the schema.
    tool = Party("spiffe://example.org/tool/crm", "tool", "example.org", ("crm:read",))
    decision = default_engine.decide(start_task(resource=tool))
    assert decision.effect == "deny"
    assert decision.reasons == (FAIL_CLOSED_REASON,)
    assert "not valid for" in decision.errors[0]
    # A user never delegates directly: only workloads hold task tokens.
    user = Party("alice@example.org", "user", "example.org", ("crm:read",))
    assert default_engine.decide(delegate(principal=user)).effect == "deny"


def test_unknown_party_kind_is_denied_not_raised(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    robot = Party("spiffe://example.org/robot/r2", "robot", "example.org")  # type: ignore[arg-type]
    decision = default_engine.decide(delegate(principal=robot))
    assert decision.effect == "deny"
    assert decision.reasons == (FAIL_CLOSED_REASON,)
    assert "robot" in decision.errors[0]


def test_value_cedar_cannot_represent_is_denied_not_raised(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    decision = default_engine.decide(delegate(time=2**70))
    assert decision.effect == "deny"
    assert decision.errors


def test_entity_ids_with_cedar_syntax_cannot_change_the_request(
    default_engine: PolicyEngine, start_task: Build
) -> None:
    # A user's sub is any string; ids go to Cedar as JSON, never spliced into policy syntax.
    sneaky = Party('alice", Agent::"spiffe://example.org/agent/x', "user", "example.org", ())
    decision = default_engine.decide(start_task(principal=sneaky))
    assert decision.effect == "deny"
    assert decision.policies == ("start-task-ungranted-scopes",)
    assert decision.errors == ()


# Property: whatever the request, decide returns a decision, and an allow never carries errors.

_text = st.text(max_size=40)
_scopes = st.lists(
    st.sampled_from(["crm:read", "crm:write", "crm:delete", "x"]) | _text, max_size=4
)
_parties = st.builds(
    Party,
    id=_text,
    kind=st.sampled_from(["user", "agent", "tool", "service", "task"]),
    trust_domain=st.sampled_from(["example.org", "partner.example", ""]) | _text,
    scopes=_scopes.map(tuple),
)
_requests = st.builds(
    PolicyRequest,
    action=st.sampled_from(["start_task", "delegate", "invoke", "fly"]),
    principal=_parties,
    resource=_parties,
    task=_text,
    initiator=_text,
    requested_scopes=_scopes.map(tuple),
    held_scopes=_scopes.map(tuple),
    chain=st.lists(_text | st.just("spiffe://example.org/agent/a"), max_size=4).map(tuple),
    depth=st.integers(min_value=-(2**65), max_value=2**65),
    purpose=_text,
    time=st.integers(min_value=-(2**65), max_value=2**65),
    human_approval=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=_requests)
def test_decide_never_raises_and_an_allow_never_carries_errors(request: PolicyRequest) -> None:
    decision = ENGINE.decide(request)
    assert decision.effect in ("allow", "deny")
    if decision.errors:
        assert decision.effect == "deny"
    if decision.allowed:
        assert decision.policies and len(decision.reasons) == len(decision.policies)
    assert decision.policy_set_hash == ENGINE.policy_set_hash


ENGINE = PolicyEngine.default()
