"""TaskTokenClaims: the payload's shape, the chain properties, and the strict reader that refuses
every malformed or oversized claim with ClaimError or SizeLimitError."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest
from _tasktoken_helpers import (
    CRM,
    HASH_A,
    MAILER,
    PLANNER,
    PLANNER_KEY,
    POLICY_HASH,
    make_claims,
    mint,
)
from hypothesis import given
from hypothesis import strategies as st

from authchain.errors import ClaimError, InvalidSpiffeIdError, SizeLimitError
from authchain.tokens._frozen import FrozenDict, FrozenList, freeze_json
from authchain.tokens.claims import (
    MAX_CHAIN_DEPTH,
    TaskTokenClaims,
    act_from_chain,
    chain_from_act,
    parse_scope,
)


def test_payload_has_the_wire_forms() -> None:
    payload = make_claims(act=act_from_chain([PLANNER, CRM])).to_payload()
    assert payload["scope"] == "crm:read crm:write mail:send"
    assert payload["cnf"] == {"jkt": PLANNER_KEY.kid}
    # RFC 8693 4.1: the current actor outermost, the first most deeply nested.
    assert payload["act"] == {"sub": CRM, "act": {"sub": PLANNER}}
    # Absent optional claims are omitted, never null.
    assert not {"authz", "prev", "log", "nbf"} & payload.keys()


def test_chain_properties_read_the_nested_act() -> None:
    claims = make_claims(act=act_from_chain([PLANNER, CRM, MAILER]))
    assert claims.actor == MAILER
    assert claims.chain == (PLANNER, CRM, MAILER)
    assert claims.depth == 3
    assert claims.scope_str == "crm:read crm:write mail:send"
    assert chain_from_act(claims.act) == claims.chain


def test_payload_round_trips() -> None:
    claims = make_claims(
        authz={"id": "d-1", "policies": ["a", "b"], "policy_set_hash": POLICY_HASH},
        prev=HASH_A,
        log=0,
        nbf=1,
        tctx={"purpose": "p", "nested": {"list": [1, "two", None, True]}},
    )
    assert TaskTokenClaims.from_payload(claims.to_payload()) == claims


def _without(name: str) -> dict[str, Any]:
    payload = make_claims().to_payload()
    del payload[name]
    return payload


def _with(**changes: Any) -> dict[str, Any]:
    payload = make_claims().to_payload()
    payload.update(changes)
    return payload


MALFORMED: list[tuple[str, dict[str, Any], type[Exception]]] = [
    *[
        (f"missing-{n}", _without(n), ClaimError)
        for n in (
            "iss",
            "aud",
            "iat",
            "exp",
            "jti",
            "txn",
            "sub",
            "act",
            "scope",
            "tctx",
            "rctx",
            "cnf",
        )
    ],
    ("aud-array", _with(aud=["example.org"]), ClaimError),
    ("iat-bool", _with(iat=True), ClaimError),
    ("iat-float", _with(iat=1.5e9), ClaimError),
    ("iat-string", _with(iat="1800000000"), ClaimError),
    ("exp-negative", _with(exp=-1), ClaimError),
    ("exp-unsafe", _with(exp=2**60), ClaimError),
    ("nbf-float", _with(nbf=1.0), ClaimError),
    ("sub-empty", _with(sub=""), ClaimError),
    ("sub-newline", _with(sub="alice\nforged line"), ClaimError),
    ("sub-oversized", _with(sub="a" * 2049), SizeLimitError),
    ("jti-oversized", _with(jti="j" * 129), SizeLimitError),
    ("txn-number", _with(txn=7), ClaimError),
    ("scope-empty", _with(scope=""), ClaimError),
    ("scope-double-space", _with(scope="a  b"), ClaimError),
    ("scope-leading-space", _with(scope=" a"), ClaimError),
    ("scope-quote", _with(scope='a"b'), ClaimError),
    ("scope-backslash", _with(scope="a\\b"), ClaimError),
    ("scope-non-ascii", _with(scope="crm:lire\u00e9"), ClaimError),
    ("scope-duplicate", _with(scope="a b a"), ClaimError),
    ("scope-array", _with(scope=["a"]), ClaimError),
    ("scope-too-many", _with(scope=" ".join(f"s{i}" for i in range(65))), SizeLimitError),
    ("scope-token-too-long", _with(scope="s" * 129), SizeLimitError),
    ("act-string", _with(act=PLANNER), ClaimError),
    ("act-no-sub", _with(act={"act": {"sub": PLANNER}}), ClaimError),
    ("act-extra-member", _with(act={"sub": PLANNER, "exp": 1}), ClaimError),
    ("act-sub-not-string", _with(act={"sub": 1}), ClaimError),
    ("act-sub-not-spiffe", _with(act={"sub": "planner"}), InvalidSpiffeIdError),
    (
        "act-nested-not-spiffe",
        _with(act={"sub": PLANNER, "act": {"sub": "https://x"}}),
        InvalidSpiffeIdError,
    ),
    (
        "act-too-deep",
        _with(
            act=act_from_chain(
                [f"spiffe://example.org/agent/a{i}" for i in range(MAX_CHAIN_DEPTH + 1)]
            )
        ),
        SizeLimitError,
    ),
    ("cnf-empty", _with(cnf={}), ClaimError),
    ("cnf-extra", _with(cnf={"jkt": HASH_A, "x5t#S256": HASH_A}), ClaimError),
    ("cnf-jkt-short", _with(cnf={"jkt": HASH_A[:-1]}), ClaimError),
    ("cnf-jkt-alphabet", _with(cnf={"jkt": HASH_A[:-1] + "="}), ClaimError),
    ("prev-not-hash", _with(prev="abc"), ClaimError),
    ("log-negative", _with(log=-1), ClaimError),
    ("log-bool", _with(log=False), ClaimError),
    ("authz-missing-member", _with(authz={"id": "d", "policies": []}), ClaimError),
    (
        "authz-extra-member",
        _with(authz={"id": "d", "policies": [], "policy_set_hash": POLICY_HASH, "x": 1}),
        ClaimError,
    ),
    (
        "authz-policies-string",
        _with(authz={"id": "d", "policies": "p", "policy_set_hash": POLICY_HASH}),
        ClaimError,
    ),
    (
        "authz-too-many-policies",
        _with(authz={"id": "d", "policies": ["p"] * 65, "policy_set_hash": POLICY_HASH}),
        SizeLimitError,
    ),
    ("tctx-array", _with(tctx=["x"]), ClaimError),
    ("tctx-float", _with(tctx={"amount": 1.5}), ClaimError),
    ("tctx-unsafe-int", _with(tctx={"n": 2**60}), ClaimError),
    ("tctx-lone-surrogate", _with(tctx={"s": "\ud800"}), ClaimError),
    ("tctx-long-string", _with(tctx={"s": "x" * 1025}), SizeLimitError),
    ("tctx-long-key", _with(tctx={"k" * 1025: "x"}), SizeLimitError),
    ("tctx-too-deep", _with(tctx={"a": {"b": {"c": {"d": {"e": 1}}}}}), SizeLimitError),
    ("tctx-too-many-members", _with(tctx={"a": list(range(70))}), SizeLimitError),
    ("rctx-string", _with(rctx="chat"), ClaimError),
    ("rctx-non-string-key", _with(rctx={1: "x"}), ClaimError),
    ("rctx-nested-non-string-key", _with(rctx={"a": {2: "x"}}), ClaimError),
    ("too-many-claims", _with(**{f"x{i}": 1 for i in range(32)}), SizeLimitError),
]


@pytest.mark.parametrize(
    ("payload", "error"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_claim_is_refused_with_its_specific_error(
    payload: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        TaskTokenClaims.from_payload(payload)
    assert type(caught.value) is error


def test_claims_set_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ClaimError):
        TaskTokenClaims.from_payload(["iss"])  # type: ignore[arg-type]


def test_unknown_claims_are_ignored() -> None:
    # Txn-Tokens 9.2: recipients must ignore claims they do not understand.
    payload = _with(req_wl="spiffe://example.org/agent/planner", custom={"a": 1})
    assert TaskTokenClaims.from_payload(payload) == make_claims()


def test_nothing_invalid_is_ever_signed() -> None:
    with pytest.raises(ClaimError):
        mint(make_claims(scope=()))
    with pytest.raises(ClaimError):
        mint(make_claims(tctx={"amount": 0.5}))
    # Frozen containers are checked like any other: their type vouches for nothing.
    with pytest.raises(ClaimError):
        mint(make_claims(rctx=FrozenDict({"amount": 0.5})))


def test_parse_scope_accepts_tokens_or_the_string_form() -> None:
    assert parse_scope("a b:c") == ("a", "b:c")
    assert parse_scope(["a", "b:c"]) == ("a", "b:c")
    for bad in (["a b"], [""], [1], []):
        with pytest.raises(ClaimError):
            parse_scope(bad)  # type: ignore[arg-type]


def test_act_from_chain_needs_an_actor() -> None:
    with pytest.raises(ClaimError):
        act_from_chain([])


def test_frozen_containers_refuse_every_mutation_and_copy_to_plain_ones() -> None:
    frozen = freeze_json({"a": [1, {"b": 2}], "c": {"d": "e"}})
    assert isinstance(frozen, FrozenDict) and isinstance(frozen["a"], FrozenList)
    for mutate in (
        lambda: frozen.__setitem__("x", 1),
        lambda: frozen.pop("a"),
        lambda: frozen.update({"x": 1}),
        lambda: frozen.setdefault("x", 1),
        lambda: frozen.clear(),
        lambda: frozen["a"].append(3),
        lambda: frozen["a"].sort(),
        lambda: frozen["a"][1].__setitem__("b", 3),
    ):
        with pytest.raises(TypeError):
            mutate()
    assert type(copy.deepcopy(frozen)) is dict and type(copy.deepcopy(frozen)["a"]) is list
    assert type(pickle.loads(pickle.dumps(frozen))) is dict
    assert frozen == {"a": [1, {"b": 2}], "c": {"d": "e"}}


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _json, max_size=6))
def test_context_is_accepted_or_refused_with_a_documented_error(tctx: dict[str, Any]) -> None:
    try:
        claims = TaskTokenClaims.from_payload(_with(tctx=tctx))
    except (ClaimError, SizeLimitError):
        return
    assert claims.tctx == tctx
