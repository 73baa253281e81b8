"""The Decision record, the request's JSON form, and the public surface of authchain.policy."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import authchain.policy
from authchain.errors import ConfigurationError, MalformedError
from authchain.policy import (
    Decision,
    Party,
    PolicyEngine,
    PolicyRequest,
    PolicySettings,
)
from authchain.policy.decision import DENY_BY_DEFAULT_REASON

Build = Callable[..., PolicyRequest]


def test_public_surface_is_pinned() -> None:
    # Constants and file names stay in their modules; the package holds what callers use.
    assert sorted(authchain.policy.__all__) == sorted(
        [
            "Action",
            "Decision",
            "Effect",
            "Party",
            "PolicyEngine",
            "PolicyInfo",
            "PolicyRequest",
            "PolicySettings",
            "default_policy_directory",
            "schema_text",
        ]
    )
    for name in authchain.policy.__all__:
        assert hasattr(authchain.policy, name)


def test_decision_is_a_frozen_slotted_value(default_engine: PolicyEngine, delegate: Build) -> None:
    decision = default_engine.decide(delegate())
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.effect = "deny"  # type: ignore[misc]
    assert not hasattr(decision, "__dict__")


def test_decision_id_is_a_uuidv7_stamped_with_the_request_time(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    first = default_engine.decide(delegate())
    second = default_engine.decide(delegate())
    assert first.id != second.id
    parsed = uuid.UUID(first.id)
    assert parsed.version == 7 and str(parsed) == first.id
    assert parsed.int >> 80 == delegate().time * 1000  # RFC 9562 5.7: unix_ts_ms


def test_to_dict_is_json_ready_and_round_trips(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    for request in (delegate(), delegate(requested_scopes=("crm:export",))):
        decision = default_engine.decide(request)
        as_dict = decision.to_dict()
        assert set(as_dict) == {"id", "effect", "policies", "reasons", "errors", "policy_set_hash"}
        assert Decision.from_dict(json.loads(json.dumps(as_dict))) == decision


def test_authz_claim_carries_id_policies_and_hash(
    default_engine: PolicyEngine, delegate: Build
) -> None:
    decision = default_engine.decide(delegate())
    assert decision.authz_claim() == {
        "id": decision.id,
        "policies": ["delegate-held-scopes"],
        "policy_set_hash": default_engine.policy_set_hash,
    }


def test_deny_by_default_has_no_policies_and_says_why() -> None:
    decision = Decision("x", "deny", (), (DENY_BY_DEFAULT_REASON,), (), "0" * 64)
    assert not decision.allowed
    assert decision.to_dict()["reasons"] == ["no policy permits this request (deny by default)"]


GOOD: dict[str, Any] = {
    "id": "018bcfe5-6800-7260-8537-5fc98851b3a2",
    "effect": "allow",
    "policies": ["p"],
    "reasons": ["r"],
    "errors": [],
    "policy_set_hash": "a" * 64,
}


@pytest.mark.parametrize(
    "change",
    [
        {"effect": "maybe"},
        {"effect": "allow", "errors": ["boom"]},  # an allow never carries errors
        {"policy_set_hash": "A" * 64},
        {"policy_set_hash": "a" * 63},
        {"id": "not-a-uuid"},
        {"policies": "p"},
        {"reasons": [1]},
        {"extra": 1},
    ],
)
def test_decision_from_dict_refuses_what_the_engine_never_writes(change: dict[str, Any]) -> None:
    assert Decision.from_dict(GOOD).allowed
    with pytest.raises(MalformedError):
        Decision.from_dict({**GOOD, **change})


def test_decision_from_dict_refuses_a_missing_member() -> None:
    with pytest.raises(MalformedError):
        Decision.from_dict({k: v for k, v in GOOD.items() if k != "errors"})


# PolicyRequest and Party --------------------------------------------------------------------------


def test_request_round_trips_through_json(delegate: Build) -> None:
    request = delegate(human_approval=True)
    assert PolicyRequest.from_dict(json.loads(json.dumps(request.to_dict()))) == request


def test_collections_are_stored_as_tuples(delegate: Build) -> None:
    request = delegate(requested_scopes=frozenset({"crm:read"}), chain=["a", "b"])
    assert request.requested_scopes == ("crm:read",)
    assert request.chain == ("a", "b")
    assert Party("a", "agent", "example.org", ["x"]).scopes == ("x",)  # type: ignore[arg-type]


def test_a_scope_string_is_refused_rather_than_split_into_characters(delegate: Build) -> None:
    with pytest.raises(TypeError):
        delegate(requested_scopes="crm:read crm:write")
    with pytest.raises(TypeError):
        Party("a", "agent", "example.org", "crm:read")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"action": "fly"}, "action"),
        ({"depth": "2"}, "depth"),
        ({"depth": True}, "depth"),
        ({"time": 1.5}, "time"),
        ({"human_approval": "yes"}, "human_approval"),
        ({"requested_scopes": "crm:read"}, "requested_scopes"),
        ({"principal": {"id": "x", "kind": "robot", "trust_domain": "t"}}, "kind"),
        ({"resource": "spiffe://example.org/tool/crm"}, "resource"),
        ({"surprise": 1}, "unknown member"),
    ],
)
def test_request_from_dict_names_what_is_wrong(
    delegate: Build, change: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(MalformedError, match=complaint):
        PolicyRequest.from_dict({**delegate().to_dict(), **change})


def test_request_from_dict_defaults_depth_to_the_chain_length(delegate: Build) -> None:
    data = delegate().to_dict()
    del data["depth"]
    assert PolicyRequest.from_dict(data).depth == len(data["chain"])


def test_settings_round_trip_and_refuse_bad_values() -> None:
    settings = PolicySettings(max_depth=3, federated_trust_domains=frozenset({"p.example"}))
    assert PolicySettings.from_dict(settings.to_dict()) == settings
    with pytest.raises(ConfigurationError):
        PolicySettings(max_depth=-1)
    with pytest.raises(TypeError):
        PolicySettings(sensitive_scopes="crm:delete")  # type: ignore[arg-type]
