"""Audit events: strict fields, deterministic canonical leaf bytes, and what is refused."""

from __future__ import annotations

import dataclasses
import enum
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import rfc8785
from conftest import make_event
from hypothesis import given, settings
from hypothesis import strategies as st

from authchain import jcs
from authchain._encoding import sha256_b64url
from authchain.audit.events import ATTRS_MAX_BYTES, EVENT_VERSION, KINDS, AuditEvent, check_leaf
from authchain.audit.records import Kind
from authchain.errors import (
    CanonicalizationError,
    MalformedError,
    RawTokenError,
    SizeLimitError,
)

A_JWT = (
    "eyJhbGciOiJFZERTQSIsInR5cCI6InR4bnRva2VuK2p3dCJ9"
    ".eyJzdWIiOiJ1c2VyOmFsaWNlIn0"
    ".c2lnbmF0dXJlLWJ5dGVz"
)


def test_the_known_kinds_are_exactly_those_of_the_design() -> None:
    # Federation and queued jobs add their kinds with their records, in the issues that add them.
    assert KINDS == {
        "task.started",
        "task.denied",
        "task.ended",
        "hop.granted",
        "hop.denied",
        "action.invoked",
        "action.refused",
        "token.revoked",
        "task.revoked",
        "workload.registered",
        "principal.registered",
        "issuer.trusted",
        "key.rotated",
    }


def test_every_kind_has_exactly_one_record_type() -> None:
    assert KINDS == {kind.value for kind in Kind}


def test_leaf_bytes_are_the_rfc8785_bytes_of_the_event_object() -> None:
    event = make_event()
    assert event.leaf_bytes() == rfc8785.dumps(event.to_dict())


def test_an_event_round_trips_through_its_dict_and_its_leaf_bytes() -> None:
    event = make_event()
    assert AuditEvent.from_dict(event.to_dict()) == event
    assert AuditEvent.from_leaf(event.leaf_bytes()) == event
    assert AuditEvent.from_leaf(event.leaf_bytes()).leaf_bytes() == event.leaf_bytes()


def test_absent_optional_fields_are_omitted_never_null() -> None:
    event = AuditEvent(id=make_event().id, time="2026-11-28T21:17:37.000001Z", kind="task.ended")
    assert event.to_dict() == {
        "id": event.id,
        "time": "2026-11-28T21:17:37.000001Z",
        "kind": "task.ended",
    }
    assert b"null" not in event.leaf_bytes()


def test_an_explicit_null_is_refused() -> None:
    data = make_event().to_dict() | {"txn": None}
    with pytest.raises(MalformedError, match="'txn'.*null"):
        AuditEvent.from_dict(data)


def test_an_event_without_v_is_version_1_and_keeps_its_attrs() -> None:
    event = make_event()
    assert event.v is None and event.attrs is not None and event.attrs["depth"] == 2
    assert b'"v"' not in event.leaf_bytes()


def test_a_version_2_event_keeps_detail_and_reported_apart() -> None:
    event = make_event(attrs=None, v=EVENT_VERSION, detail={"depth": 2}, reported={"note": "hi"})
    assert event.to_dict()["v"] == 2
    assert (event.detail, event.reported) == ({"depth": 2}, {"note": "hi"})
    assert AuditEvent.from_leaf(event.leaf_bytes()) == event


@pytest.mark.parametrize("version", [1, 3, "2", True])
def test_only_the_current_version_is_written_as_v(version: Any) -> None:
    with pytest.raises(MalformedError, match="'v'"):
        make_event(attrs=None, v=version)


def test_attrs_is_refused_in_a_version_2_event() -> None:
    with pytest.raises(MalformedError, match="'attrs'"):
        make_event(v=EVENT_VERSION)


@pytest.mark.parametrize("name", ["detail", "reported"])
def test_detail_and_reported_are_refused_in_a_version_1_event(name: str) -> None:
    with pytest.raises(MalformedError, match=f"'{name}'"):
        make_event(**{name: {"depth": 2}})


@pytest.mark.parametrize("name", ["detail", "reported"])
def test_detail_and_reported_are_bounded_like_attrs(name: str) -> None:
    with pytest.raises(SizeLimitError, match=name):
        make_event(attrs=None, v=EVENT_VERSION, **{name: {"x": "a" * ATTRS_MAX_BYTES}})


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(MalformedError, match="unknown event field 'severity'"):
        AuditEvent.from_dict(make_event().to_dict() | {"severity": "high"})


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(MalformedError, match="unknown event kind 'task.exploded'"):
        make_event(kind="task.exploded")


@pytest.mark.parametrize("missing", ["id", "time", "kind"])
def test_id_time_and_kind_are_required(missing: str) -> None:
    data = make_event().to_dict()
    del data[missing]
    with pytest.raises(MalformedError, match=f"'{missing}'.*required"):
        AuditEvent.from_dict(data)


def test_attrs_up_to_the_limit_are_accepted_and_beyond_it_refused() -> None:
    overhead = len(jcs.canonicalize({"x": ""}))
    fits = {"x": "a" * (ATTRS_MAX_BYTES - overhead)}
    assert len(jcs.canonicalize(fits)) == ATTRS_MAX_BYTES
    make_event(attrs=fits)
    with pytest.raises(SizeLimitError, match="attrs"):
        make_event(attrs={"x": "a" * (ATTRS_MAX_BYTES - overhead + 1)})


@pytest.mark.parametrize(
    "attrs",
    [{"amount": 1.5}, {"big": 2**53}, {"nested": [{"f": 0.0}]}, {"s": "\ud800"}],
    ids=["float", "unsafe integer", "nested float", "lone surrogate"],
)
def test_attrs_outside_the_canonical_profile_are_refused(attrs: dict[str, Any]) -> None:
    with pytest.raises(CanonicalizationError):
        make_event(attrs=attrs)


@pytest.mark.parametrize(
    "overrides",
    [
        {"actor": f"Bearer {A_JWT}"},
        {"resource": A_JWT},
        {"initiator": A_JWT},
        {"chain": ["spiffe://example.org/agent/planner", A_JWT]},
        {"attrs": {"authorization": f"DPoP {A_JWT}"}},
        {"attrs": {A_JWT: 1}},
        {"attrs": {"deep": [{"deeper": A_JWT}]}},
    ],
    ids=["actor", "resource", "initiator", "chain", "attrs value", "attrs name", "nested attrs"],
)
def test_a_raw_jwt_anywhere_in_an_event_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(RawTokenError):
        make_event(**overrides)


def test_a_raw_jwt_in_the_decision_is_refused() -> None:
    decision = make_event().decision
    assert decision is not None
    with pytest.raises(RawTokenError):
        make_event(decision=decision | {"reasons": [f"token was {A_JWT}"]})


def test_the_token_field_takes_only_a_sha256_hash() -> None:
    make_event(token=sha256_b64url(A_JWT))
    with pytest.raises(MalformedError, match="'token'"):
        make_event(token=A_JWT)


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-28T21:17:37Z",
        "2026-11-28T21:17:37.123Z",
        "2026-11-28T21:17:37.123456+00:00",
        "2026-11-28 21:17:37.123456Z",
        "2026-02-30T21:17:37.123456Z",
        1764364657.123456,
        1764364657,
    ],
)
def test_time_is_rfc3339_utc_with_microseconds_and_never_a_number(time: Any) -> None:
    with pytest.raises(MalformedError, match="'time'"):
        make_event(time=time)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "01a22400-0000-4000-8000-000000000001"),
        ("trace_id", "0" * 32),
        ("span_id", "ABCDEF0123456789"),
        ("scope", ["crm:read", "crm:read"]),
        ("scope", "crm:read crm:write"),
        ("scope", ["crm read"]),
        ("chain", "spiffe://example.org/agent/planner"),
        ("actor", ""),
        ("actor", "agent\nplanner"),
        ("outcome", "exploded"),
        ("trust_domain", "Example.ORG"),
    ],
)
def test_malformed_fields_are_refused(field: str, value: Any) -> None:
    with pytest.raises(MalformedError):
        make_event(**{field: value})


def test_the_decision_must_be_the_policy_decision_record() -> None:
    decision = make_event().decision
    assert decision is not None
    for broken in (
        decision | {"extra": 1},
        {k: v for k, v in decision.items() if k != "policy_set_hash"},
        decision | {"effect": "Allow"},
        decision | {"policies": "one-policy"},
        decision | {"reasons": [1]},
    ):
        with pytest.raises(MalformedError, match="'decision'"):
            make_event(decision=broken)


def test_an_event_is_immutable_and_does_not_share_the_callers_dicts() -> None:
    attrs: dict[str, Any] = {"depth": 1, "path": ["a"]}
    event = make_event(attrs=attrs)
    attrs["depth"] = 99
    attrs["path"].append("b")
    assert event.attrs == {"depth": 1, "path": ["a"]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = "task.ended"  # type: ignore[misc]


def test_string_enums_are_stored_as_their_plain_value() -> None:
    class Kind(enum.StrEnum):
        HOP = "hop.granted"

    event = make_event(kind=Kind.HOP)
    assert type(event.kind) is str
    assert b'"kind":"hop.granted"' in event.leaf_bytes()
    assert AuditEvent.from_leaf(event.leaf_bytes()) == event


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.replace(b'{"action"', b'{ "action"'),
        lambda b: b.replace(b'"kind":"hop.granted"', b'"kind":"hop.gr\\u0061nted"'),
        lambda b: b[:-1] + b',"outcome":"allowed"}',
        lambda b: b.replace(b'"depth":2', b'"depth":2.0'),
        lambda b: orjson.dumps(dict(reversed(orjson.loads(b).items()))),
        lambda b: b[:-1] + b',"txn":null}',
    ],
    ids=["whitespace", "escaped letter", "duplicate member", "float", "unsorted", "null"],
)
def test_stored_bytes_must_be_exactly_the_canonical_form(mutate: Any) -> None:
    leaf = make_event().leaf_bytes()
    changed = mutate(leaf)
    assert changed != leaf
    with pytest.raises(MalformedError):
        check_leaf(changed)


# Generated events, for the property that the leaf bytes are RFC 8785 of the event's object.
_free_text = st.text(
    st.characters(exclude_categories=("Cs", "Cc", "Cf", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda s: "eyJ" not in s)
_hash = st.binary(min_size=1, max_size=8).map(sha256_b64url)
_scope = st.lists(
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz:._-"), min_size=1, max_size=8),
    max_size=4,
    unique=True,
)
_safe_int = st.integers(min_value=-jcs.MAX_SAFE_INTEGER, max_value=jcs.MAX_SAFE_INTEGER)
_json_leaf = st.none() | st.booleans() | _safe_int | _free_text
_attrs = st.dictionaries(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=8).filter(lambda s: "eyJ" not in s),
    st.recursive(
        _json_leaf,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_free_text, c, max_size=3),
        max_leaves=8,
    ),
    max_size=5,
)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
)


@st.composite
def events(draw: st.DrawFn) -> AuditEvent:
    fields: dict[str, Any] = {
        "id": make_event().id,
        "time": draw(_times),
        "kind": draw(st.sampled_from(sorted(KINDS))),
    }
    optional = {
        "txn": st.uuids().map(str),
        "initiator": _free_text,
        "actor": _free_text,
        "chain": st.lists(_free_text, max_size=4),
        "token": _hash,
        "parent_token": _hash,
        "action": _free_text,
        "resource": _free_text,
        "scope": _scope,
        "outcome": st.sampled_from(["allowed", "denied", "succeeded", "failed", "refused"]),
        "trust_domain": st.sampled_from(["example.org", "partner.example", "a-b_c.d"]),
        "attrs": _attrs,
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    return AuditEvent(**fields)


@settings(max_examples=300, deadline=None)
@given(events())
def test_generated_events_hash_the_rfc8785_bytes_of_their_object(event: AuditEvent) -> None:
    assert event.leaf_bytes() == rfc8785.dumps(event.to_dict())
    assert check_leaf(event.leaf_bytes()) == event.to_dict() | {
        k: list(v) for k, v in event.to_dict().items() if isinstance(v, list)
    }
    assert AuditEvent.from_leaf(event.leaf_bytes()) == event


def test_equal_events_hash_alike() -> None:
    event = make_event()
    assert {
        event,
        AuditEvent.from_leaf(event.leaf_bytes()),
        AuditEvent.from_dict(event.to_dict()),
    } == {event}


@pytest.mark.parametrize(
    "actor",
    [
        "spiffe://example.org/agent/\u202erennalp",  # right-to-left override
        "spiffe://example.org/agent/planner\u200b",  # zero-width space
        "spiffe://example.org/agent/plan\u2066ner\u2069",  # bidi isolate
        "spiffe://example.org/agent/planner\U000e0041",  # tag character
        "spiffe://example.org/agent/planner\x85",  # C1 control (next line)
    ],
    ids=["rlo", "zwsp", "isolate", "tag", "c1"],
)
def test_invisible_or_reordering_characters_in_a_principal_are_refused(actor: str) -> None:
    # An investigator reads these ids; a character that hides or reorders text would let one
    # principal pass for another in a report.
    with pytest.raises(MalformedError, match="invisible"):
        make_event(actor=actor)
    with pytest.raises(MalformedError):
        make_event(chain=[actor])


def test_every_format_control_and_separator_character_this_python_knows_is_covered() -> None:
    import unicodedata

    from authchain.audit.events import _CONTROL

    uncovered = [
        hex(c)
        for c in range(0x110000)
        if unicodedata.category(chr(c)) in ("Cc", "Cf", "Zl", "Zp") and not _CONTROL.match(chr(c))
    ]
    assert uncovered == [], f"extend _CONTROL for Unicode {unicodedata.unidata_version}"


def test_ordinary_unicode_text_is_accepted_in_a_principal() -> None:
    event = make_event(initiator="user:Zoë Ωmega\u00a0(東京) 😀")
    assert AuditEvent.from_leaf(event.leaf_bytes()) == event
