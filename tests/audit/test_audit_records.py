"""Typed audit records: every kind round-trips through its event, a version 2 event whose detail is
not what the authority writes is refused as forged, and version 1 events read as release 0.1 read
them, with what a caller supplied kept apart."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from authchain._encoding import sha256_b64url
from authchain._ids import uuid7
from authchain.audit.events import EVENT_VERSION, KINDS, AuditEvent
from authchain.audit.records import (
    ActionInvoked,
    ActionRefused,
    HopDenied,
    HopGranted,
    IssuerTrusted,
    KeyRotated,
    Kind,
    PrincipalRegistered,
    Record,
    TaskDenied,
    TaskEnded,
    TaskRevoked,
    TaskStarted,
    TokenRevoked,
    WorkloadRegistered,
    read,
)
from authchain.errors import LogIntegrityError

ALICE = "alice@example.org"
PLANNER = "spiffe://example.org/agent/planner"
CRM = "spiffe://example.org/agent/crm"
API = "spiffe://example.org/service/crm-api"
TXN = "01a24774-3a65-763a-8a8b-19fd63327172"
JTI = "01a24774-3a65-7bc3-b574-7bddbc5edadb"
TIME = "2026-12-05T18:25:29.179289Z"
DECISION_ID = "01a24774-39a8-7815-8798-241988e8eca4"
DECISION = {
    "id": DECISION_ID,
    "effect": "allow",
    "policies": ["delegate-held-scopes"],
    "reasons": ["an actor may delegate scopes it holds"],
    "errors": [],
    "policy_set_hash": "d8" * 32,
}
JWK = {"kty": "OKP", "crv": "Ed25519", "x": "UMUZwJO2LTPfRfFFHQr-d_a1anw26zFfUDylHffU2qM"}

# One record of every kind, with every detail member set, as the authority would write it.
SAMPLES: dict[Kind, Record] = {
    Kind.TASK_STARTED: TaskStarted(
        txn=TXN,
        initiator=ALICE,
        actor=PLANNER,
        chain=(PLANNER,),
        scope=("crm:read", "crm:write"),
        decision=DECISION,
        parent_token=sha256_b64url("id-token"),
        jti=JTI,
        exp=1796495429,
        depth=1,
        human_approval=True,
        deadline=1796498729,
        initiator_kind="user",
        assertion_issuer="https://idp.example.org",
        purpose="update ACME's record",
    ),
    Kind.TASK_DENIED: TaskDenied(
        initiator=ALICE,
        actor=PLANNER,
        scope=("crm:admin",),
        decision={**DECISION, "effect": "deny"},
        error="policy_denied",
        reason="denied by policy",
        input="subject_token",
        initiator_kind="user",
        assertion_issuer="https://idp.example.org",
        purpose="p",
    ),
    Kind.TASK_ENDED: TaskEnded(txn=TXN, actor="admin"),
    Kind.TASK_REVOKED: TaskRevoked(txn=TXN, actor="admin", reason="incident"),
    Kind.HOP_GRANTED: HopGranted(
        txn=TXN,
        initiator=ALICE,
        actor=PLANNER,
        chain=(PLANNER, CRM),
        scope=("crm:read",),
        decision=DECISION,
        parent_token=sha256_b64url("root"),
        resource=CRM,
        jti=uuid7(),
        exp=1796495429,
        depth=2,
        parent_jti=JTI,
        parent_log=9,
    ),
    Kind.HOP_DENIED: HopDenied(
        txn=TXN,
        initiator=ALICE,
        actor=CRM,
        chain=(PLANNER, CRM),
        scope=("crm:write",),
        parent_token=sha256_b64url("crm"),
        resource="spiffe://example.org/tool/crm-updater",
        error="scope_escalation",
        reason="scope `crm:write` is not in the parent's scope `crm:read`",
        input="scope",
        parent_jti=JTI,
        parent_log=10,
        held_scope=("crm:read",),
    ),
    Kind.ACTION_INVOKED: ActionInvoked(
        action="crm.update_account",
        resource="crm://accounts/acme",
        outcome="succeeded",
        txn=TXN,
        initiator=ALICE,
        actor=CRM,
        chain=(PLANNER, CRM),
        scope=("crm:write",),
        token=sha256_b64url("crm"),
        parent_token=sha256_b64url("root"),
        executor=API,
        executor_kind="service",
        htu="https://crm.example.org/api/accounts/acme",
        jti=JTI,
        log=10,
        proof_jti="r5O8h_UXGSDmSYWdeyOyCg",
        decision_id=DECISION_ID,
        reported={"report_id": "r-1", "attrs": {"rows": 3}},
    ),
    Kind.ACTION_REFUSED: ActionRefused(
        action="crm.update_account",
        resource="crm://accounts/acme",
        txn=TXN,
        initiator=ALICE,
        chain=(PLANNER, CRM),
        scope=("crm:write",),
        token=sha256_b64url("crm"),
        executor=API,
        executor_kind="service",
        jti=JTI,
        log=10,
        holder=CRM,
        unattributed=True,
        error="key_binding_mismatch",
        reason="DPoP proof is signed by a key other than the token's cnf.jkt",
        reported={"presenter": PLANNER, "refusal": "key_binding_mismatch"},
    ),
    Kind.TOKEN_REVOKED: TokenRevoked(
        token=sha256_b64url("crm"), txn=TXN, actor="admin", reason="compromised"
    ),
    Kind.WORKLOAD_REGISTERED: WorkloadRegistered(
        actor=PLANNER,
        workload_kind="agent",
        jkt="jUwh3DTihDHWJk56cyaxHCYd9BSa94Cv1Nmc7-1fBTQ",
        jwk=JWK,
        scopes=("crm:read",),
        previous_jkt="q" * 43,
    ),
    Kind.PRINCIPAL_REGISTERED: PrincipalRegistered(
        initiator=ALICE, principal_kind="user", scopes=("crm:read", "crm:write")
    ),
    Kind.ISSUER_TRUSTED: IssuerTrusted(
        resource="https://idp.example.org",
        issuer="https://idp.example.org",
        kids=("VrVjXbCkmN6_T_k3v5hL6Gqnwu1umCbmDQKDyAJK4zA",),
    ),
    Kind.KEY_ROTATED: KeyRotated(actor="admin", kid="k2", previous_kid="k1", retire_at=1796495429),
}


def _event(record: Record) -> AuditEvent:
    return record.to_event(
        id=uuid7(),
        time=TIME,
        trust_domain="example.org",
        trace_id="91486e77258657de7c09de9042b1afd4",
        span_id="83378b5eb8f86b50",
    )


def _members(event: AuditEvent, **changes: Any) -> dict[str, Any]:
    """The event's JSON object with ``detail`` members changed (None removes one)."""
    data = event.to_dict()
    detail = {**data.get("detail", {}), **changes}
    data["detail"] = {k: v for k, v in detail.items() if v is not None}
    return data


def test_every_kind_has_a_sample() -> None:
    assert {kind.value for kind in SAMPLES} == KINDS


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_every_kind_round_trips_through_its_event_and_leaf_bytes(kind: Kind) -> None:
    record = SAMPLES[kind]
    assert record.kind is kind
    event = _event(record)
    assert event.kind == kind.value and event.v == EVENT_VERSION and event.attrs is None
    expected = dataclasses.replace(
        record,
        id=event.id,
        time=TIME,
        trust_domain="example.org",
        trace_id=event.trace_id,
        span_id=event.span_id,
        index=7,
    )
    assert read(event, 7) == expected
    assert read(AuditEvent.from_leaf(event.leaf_bytes()), 7) == expected


# A value of each type a detail member can have.
_VALUE: dict[str, Any] = {"str": "x", "int": 1, "bool": True, "strs": ("a", "b"), "obj": {"a": [1]}}


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_every_detail_member_of_every_kind_round_trips(kind: Kind) -> None:
    # The samples leave out members a real record of theirs would not carry together; here every
    # member is set, so a member whose type the reader mishandles fails.
    sample = SAMPLES[kind]
    unset = {
        name: _VALUE[expected]
        for name, expected in type(sample)._DETAIL.items()
        if getattr(sample, name) is None
    }
    full = dataclasses.replace(sample, **unset)
    event = _event(full)
    assert set(event.detail or {}) == set(type(sample)._DETAIL)
    assert dataclasses.replace(read(event), id=None, time=None, trust_domain=None) == (
        dataclasses.replace(full, trace_id=event.trace_id, span_id=event.span_id)
    )


def test_detail_and_reported_are_kept_apart_in_the_event() -> None:
    event = _event(SAMPLES[Kind.ACTION_INVOKED])
    assert event.reported == {"report_id": "r-1", "attrs": {"rows": 3}}
    assert event.detail is not None and "report_id" not in event.detail
    assert event.detail["executor"] == API and event.actor == CRM


# The wrong JSON type for each type a detail member can have.
_WRONG = {"str": 1, "int": "1", "bool": "true", "strs": "crm:read", "obj": ["a"]}
_DETAIL_MEMBERS = [
    (kind, name, expected)
    for kind in Kind
    for name, expected in sorted(type(SAMPLES[kind])._DETAIL.items())
]


@pytest.mark.parametrize(
    ("kind", "name", "expected"), _DETAIL_MEMBERS, ids=[f"{k}.{n}" for k, n, _ in _DETAIL_MEMBERS]
)
def test_a_detail_member_of_the_wrong_type_is_refused_as_forged(
    kind: Kind, name: str, expected: str
) -> None:
    event = AuditEvent.from_dict(_members(_event(SAMPLES[kind]), **{name: _WRONG[expected]}))
    with pytest.raises(LogIntegrityError, match=f"entry 3 is not a valid {kind}.*{name!r}") as e:
        read(event, 3)
    assert e.value.index == 3


@pytest.mark.parametrize(("name", "value"), [("depth", True), ("parent_log", False)])
def test_a_boolean_is_not_an_integer(name: str, value: bool) -> None:
    # JSON true is not 1: an entry whose link became a boolean is refused, not read as entry 1.
    event = AuditEvent.from_dict(_members(_event(SAMPLES[Kind.HOP_GRANTED]), **{name: value}))
    with pytest.raises(LogIntegrityError, match=name):
        read(event, 0)


def test_a_list_of_strings_must_hold_only_strings() -> None:
    event = AuditEvent.from_dict(_members(_event(SAMPLES[Kind.HOP_DENIED]), held_scope=["a", 1]))
    with pytest.raises(LogIntegrityError, match="held_scope"):
        read(event, 0)


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_an_unknown_detail_member_is_refused_as_forged(kind: Kind) -> None:
    event = AuditEvent.from_dict(_members(_event(SAMPLES[kind]), claimed_initiator=ALICE))
    with pytest.raises(LogIntegrityError, match="'claimed_initiator' is not one of this kind"):
        read(event, 0)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (Kind.HOP_GRANTED, "parent_log"),
        (Kind.TASK_STARTED, "jti"),
        (Kind.ACTION_INVOKED, "executor"),
        (Kind.HOP_DENIED, "error"),
        (Kind.WORKLOAD_REGISTERED, "jwk"),
    ],
)
def test_a_missing_required_member_is_refused_as_forged(kind: Kind, name: str) -> None:
    event = AuditEvent.from_dict(_members(_event(SAMPLES[kind]), **{name: None}))
    with pytest.raises(LogIntegrityError, match=f"lacks a required member.*{name}"):
        read(event, 0)


def test_reported_names_the_authority_uses_are_not_read_as_detail() -> None:
    # A reporter that puts the authority's member names among its own attributes gains nothing.
    sample = SAMPLES[Kind.ACTION_INVOKED]
    assert isinstance(sample, ActionInvoked)
    record = dataclasses.replace(
        sample,
        jti=None,
        log=None,
        reported={"jti": JTI, "log": 9, "error": "revoked", "unattributed": True},
    )
    read_back = read(_event(record), 0)
    assert isinstance(read_back, ActionInvoked)
    assert (read_back.jti, read_back.log, read_back.error, read_back.unattributed) == (
        None,
        None,
        None,
        None,
    )
    assert read_back.reported == {"jti": JTI, "log": 9, "error": "revoked", "unattributed": True}


def test_a_reader_error_is_a_log_integrity_error_naming_the_event_when_no_index() -> None:
    event = AuditEvent.from_dict(_members(_event(SAMPLES[Kind.TASK_ENDED]), bogus=1))
    with pytest.raises(LogIntegrityError, match=f"event {event.id} is not a valid task.ended"):
        read(event)


# ------------------------------------------------------------------------------------------------
# Version 1: one ``attrs`` object, read as release 0.1 read it.


def _v1(kind: str, attrs: dict[str, Any], **envelope: Any) -> AuditEvent:
    return AuditEvent(id=uuid7(), time=TIME, kind=kind, attrs=attrs, **envelope)


def test_v1_attrs_of_known_names_and_types_are_read_as_detail() -> None:
    event = _v1(
        "hop.granted",
        {"jti": JTI, "exp": 1, "depth": 2, "parent_jti": JTI, "parent_log": 9},
        txn=TXN,
        initiator=ALICE,
        actor=PLANNER,
        chain=[PLANNER, CRM],
        scope=["crm:read"],
        decision=DECISION,
        action="delegate",
    )
    record = read(event, 4)
    assert isinstance(record, HopGranted)
    assert (record.version, record.index, record.parent_log, record.depth) == (1, 4, 9, 2)
    assert record.chain == (PLANNER, CRM) and record.reported is None


def test_v1_attrs_of_other_names_or_types_land_in_reported() -> None:
    event = _v1(
        "action.invoked",
        {
            "executor": API,
            "unattributed": True,
            "claimed_initiator": ALICE,
            "log": "9",
            "rows": 3,
        },
        actor="spiffe://example.org/service/legacy-sync",
        action="crm.bulk_sync",
        resource="crm://accounts/acme",
        outcome="succeeded",
    )
    record = read(event, 13)
    assert isinstance(record, ActionInvoked)
    assert (record.executor, record.unattributed, record.log) == (API, True, None)
    assert record.reported == {"claimed_initiator": ALICE, "log": "9", "rows": 3}
    # Version 1 did not tell a verified actor from a named one; the envelope is read as it was.
    assert record.actor == "spiffe://example.org/service/legacy-sync"


def test_v1_registrations_read_their_kind_under_its_new_name() -> None:
    workload = read(
        _v1(
            "workload.registered",
            {"kind": "agent", "jkt": "j" * 43, "jwk": JWK, "scopes": ["crm:read"]},
            actor=PLANNER,
            outcome="succeeded",
        )
    )
    assert isinstance(workload, WorkloadRegistered) and workload.workload_kind == "agent"
    principal = read(
        _v1("principal.registered", {"kind": "service", "scopes": []}, initiator=ALICE)
    )
    assert isinstance(principal, PrincipalRegistered) and principal.principal_kind == "service"


def test_a_v1_event_lacking_a_required_member_is_refused_as_forged() -> None:
    event = _v1("hop.granted", {"jti": JTI}, txn=TXN, actor=PLANNER)
    with pytest.raises(LogIntegrityError, match="lacks a required member"):
        read(event, 0)
