"""Principals: the four kinds, what a user's id may be, and how a workload's kind is known."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authchain.errors import InvalidPrincipalError, InvalidSpiffeIdError, VerificationError
from authchain.identity import principal
from authchain.identity.principal import (
    MAX_USER_ID_LENGTH,
    WORKLOAD_KINDS,
    Principal,
    PrincipalKind,
    derive_workload_kind,
)
from authchain.identity.spiffe import SpiffeId, TrustDomain


def test_principal_kinds_are_exactly_the_four_of_the_design() -> None:
    assert [kind.value for kind in PrincipalKind] == ["user", "agent", "tool", "service"]
    assert WORKLOAD_KINDS == {PrincipalKind.AGENT, PrincipalKind.TOOL, PrincipalKind.SERVICE}
    assert not PrincipalKind.USER.is_workload
    assert all(kind.is_workload for kind in WORKLOAD_KINDS)
    # A StrEnum: the wire and log form is the plain string.
    assert f"{PrincipalKind.AGENT}" == "agent"
    assert PrincipalKind.TOOL == "tool"


@pytest.mark.parametrize("value", ["user", "agent", "tool", "service"])
def test_principal_kind_parses_its_own_value(value: str) -> None:
    assert PrincipalKind.parse(value).value == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Agent", 'unknown principal kind "Agent"; expected one of user, agent, tool, service'),
        ("robot", 'unknown principal kind "robot"; expected one of user, agent, tool, service'),
        ("", 'unknown principal kind ""; expected one of user, agent, tool, service'),
        (
            "agent\n",
            'unknown principal kind "agent\\u000a"; expected one of user, agent, tool, service',
        ),
        (
            "x" * 70,
            f'unknown principal kind "{"x" * 64}"...; expected one of user, agent, tool, service',
        ),
        (3, "unknown principal kind int; expected one of user, agent, tool, service"),
    ],
)
def test_unknown_principal_kind_is_refused_not_value_error(value: str, message: str) -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        PrincipalKind.parse(value)
    assert str(info.value) == message
    assert info.value.code == "invalid_principal"


# --------------------------------------------------------------------------------------------------
# Users.


@pytest.mark.parametrize(
    "sub",
    [
        "24400320",  # OpenID Connect Core 1.0 section 2's examples of "sub".
        "AItOawmwtWwcT0k51BayewNvutrJUqsvl6qs7A4",
        "alice@example.com",
        "auth0|5f7c8ec7c33c6c004bbafe82",
        "Jane Doe",
        "x",
        "~" * MAX_USER_ID_LENGTH,
    ],
)
def test_user_is_identified_by_any_printable_ascii_sub(sub: str) -> None:
    user = Principal.user(sub)
    assert user.id == sub
    assert user.kind is PrincipalKind.USER
    assert user.trust_domain is None
    assert not user.is_workload
    assert user.spiffe_id is None
    assert str(user) == sub


def test_user_may_name_the_trust_domain_that_accepted_its_id_token() -> None:
    assert Principal.user("alice", TrustDomain("example.org")).trust_domain == "example.org"
    assert Principal.user("alice", "example.org") == Principal(
        "alice", PrincipalKind.USER, "example.org"
    )


@pytest.mark.parametrize(
    ("sub", "message"),
    [
        ("", "user id is empty"),
        ("a" * (MAX_USER_ID_LENGTH + 1), "user id is longer than 255 characters"),
        ("alice\nbob", "user id contains U+000A at index 5; only printable ASCII is allowed"),
        ("alice\x00", "user id contains U+0000 at index 5; only printable ASCII is allowed"),
        ("\x1b[31malice", "user id contains U+001B at index 0; only printable ASCII is allowed"),
        ("alice\x7f", "user id contains U+007F at index 5; only printable ASCII is allowed"),
        ("al\u00efce", "user id contains U+00EF at index 2; only printable ASCII is allowed"),
        # A right-to-left override could make one id display as another in a report.
        ("alice\u202egnp", "user id contains U+202E at index 5; only printable ASCII is allowed"),
        (" alice", "user id must not start or end with a space"),
        ("alice ", "user id must not start or end with a space"),
        (" ", "user id must not start or end with a space"),
        (
            "spiffe://example.org/agent/planner",
            "user id must not be a SPIFFE ID; workloads are agents, tools or services",
        ),
        (
            "SPIFFE:anything",
            "user id must not be a SPIFFE ID; workloads are agents, tools or services",
        ),
    ],
)
def test_invalid_user_id_is_refused_with_exact_message(sub: str, message: str) -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal.user(sub)
    assert str(info.value) == message


def test_user_with_invalid_trust_domain_is_refused() -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal.user("alice", "Example.org")
    assert str(info.value) == 'trust domain must be lowercase ("E" at index 0)'
    assert isinstance(info.value.__cause__, InvalidSpiffeIdError)


@given(st.text(min_size=1, max_size=MAX_USER_ID_LENGTH + 20))
def test_user_id_is_accepted_or_refused_with_invalid_principal_error(sub: str) -> None:
    try:
        user = Principal.user(sub)
    except InvalidPrincipalError:
        return
    assert user.id == sub
    assert len(sub) <= MAX_USER_ID_LENGTH
    assert sub.isascii() and sub.isprintable() and sub == sub.strip(" ")


# --------------------------------------------------------------------------------------------------
# Workloads.


@pytest.mark.parametrize(
    ("spiffe_id", "kind"),
    [
        ("spiffe://example.org/agent/planner", PrincipalKind.AGENT),
        ("spiffe://example.org/agent", PrincipalKind.AGENT),
        ("spiffe://example.org/tool/crm", PrincipalKind.TOOL),
        ("spiffe://example.org/service/billing/v2", PrincipalKind.SERVICE),
    ],
)
def test_workload_kind_is_derived_from_first_path_segment(
    spiffe_id: str, kind: PrincipalKind
) -> None:
    parsed = SpiffeId.parse(spiffe_id)
    assert derive_workload_kind(parsed) is kind
    workload = Principal.workload(spiffe_id)
    assert workload == Principal(spiffe_id, kind, "example.org")
    assert workload.is_workload
    assert workload.spiffe_id == parsed


@pytest.mark.parametrize(
    "spiffe_id",
    [
        "spiffe://example.org",
        "spiffe://example.org/payments/mysql",
        "spiffe://example.org/Agent/planner",  # The convention is exact and lowercase.
        "spiffe://example.org/agents/planner",
        "spiffe://example.org/x/agent",  # Only the first segment counts.
        "spiffe://example.org/user/alice",  # A user is never a SPIFFE ID.
    ],
)
def test_workload_kind_is_not_derived_outside_the_convention(spiffe_id: str) -> None:
    assert derive_workload_kind(SpiffeId.parse(spiffe_id)) is None
    with pytest.raises(InvalidPrincipalError) as info:
        Principal.workload(spiffe_id)
    assert str(info.value) == (
        f"cannot derive the kind of {spiffe_id}: its path does not start with "
        '"/agent/", "/tool/" or "/service/"; state the kind explicitly'
    )


def test_explicit_workload_kind_wins_over_the_path_convention() -> None:
    # Registrations state the kind; the path is only a default (SPIFFE paths are the operator's).
    tool = Principal.workload("spiffe://example.org/agent/calculator", PrincipalKind.TOOL)
    assert tool.kind is PrincipalKind.TOOL
    mysql = Principal.workload(SpiffeId.parse("spiffe://example.org/payments/mysql"), "service")
    assert mysql.kind is PrincipalKind.SERVICE
    assert mysql.trust_domain == "example.org"


def test_workload_cannot_be_of_kind_user() -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal.workload("spiffe://example.org/agent/planner", PrincipalKind.USER)
    assert str(info.value) == "a workload cannot be of kind user"


@pytest.mark.parametrize(
    ("kind", "spiffe_id", "message"),
    [
        (
            PrincipalKind.AGENT,
            "planner",
            'agent id: invalid SPIFFE ID: missing the "spiffe://" prefix',
        ),
        (
            PrincipalKind.TOOL,
            "spiffe://example.org/tool/../agent/planner",
            'tool id: invalid SPIFFE ID: path must not contain a ".." segment (at index 26)',
        ),
        (
            PrincipalKind.SERVICE,
            "SPIFFE://example.org/service/billing",
            'service id: invalid SPIFFE ID: scheme must be lowercase "spiffe"',
        ),
    ],
)
def test_workload_id_must_be_a_spiffe_id(kind: PrincipalKind, spiffe_id: str, message: str) -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal(spiffe_id, kind)
    assert str(info.value) == message
    # The precise SPIFFE problem stays available to callers that want it.
    assert isinstance(info.value.__cause__, InvalidSpiffeIdError)


def test_workload_factory_reports_invalid_spiffe_id_as_invalid_principal() -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal.workload("spiffe://example.org/agent/")
    assert str(info.value) == 'workload id: invalid SPIFFE ID: path must not end with "/"'


def test_workload_trust_domain_is_filled_from_its_spiffe_id() -> None:
    planner = Principal("spiffe://example.org/agent/planner", PrincipalKind.AGENT)
    assert planner.trust_domain == "example.org"
    assert planner == Principal(
        "spiffe://example.org/agent/planner", PrincipalKind.AGENT, "example.org"
    )


def test_workload_claiming_another_trust_domain_is_refused() -> None:
    # A principal record that says one trust domain while its ID says another would let an audit
    # reader attribute the action to the wrong authority.
    with pytest.raises(InvalidPrincipalError) as info:
        Principal("spiffe://evil.example/agent/planner", PrincipalKind.AGENT, "example.org")
    assert str(info.value) == (
        'agent trust domain "example.org" is not the trust domain "evil.example" of its SPIFFE ID'
    )


def test_principal_kind_given_as_string_is_normalised_to_the_enum() -> None:
    agent = Principal("spiffe://example.org/agent/planner", "agent")  # type: ignore[arg-type]
    assert agent.kind is PrincipalKind.AGENT
    with pytest.raises(InvalidPrincipalError):
        Principal("spiffe://example.org/agent/planner", "robot")  # type: ignore[arg-type]


def test_principal_id_must_be_a_string() -> None:
    with pytest.raises(InvalidPrincipalError) as info:
        Principal(None, PrincipalKind.USER)  # type: ignore[arg-type]
    assert str(info.value) == "user id must be a string, not NoneType"


def test_principals_are_frozen_hashable_values() -> None:
    alice = Principal.user("alice")
    planner = Principal.workload("spiffe://example.org/agent/planner")
    assert len({alice, Principal.user("alice"), planner}) == 2
    with pytest.raises(AttributeError):
        alice.id = "mallory"  # type: ignore[misc]
    # The same sub accepted by different trust domains is not the same principal.
    assert Principal.user("x") != Principal("x", PrincipalKind.USER, "example.org")


def test_invalid_principal_error_is_a_verification_error() -> None:
    assert issubclass(InvalidPrincipalError, VerificationError)


def test_public_surface_of_principal_module_is_pinned() -> None:
    assert sorted(principal.__all__) == [
        "MAX_USER_ID_LENGTH",
        "Principal",
        "PrincipalKind",
        "WORKLOAD_KINDS",
        "derive_workload_kind",
    ]
