"""RFC 8785 canonical JSON: published vectors, the profile's refusals, and rfc8785 as reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from authchain import jcs
from authchain.errors import CanonicalizationError

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "rfc8785_jcs.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_published_vectors_canonicalise_byte_for_byte(case: dict[str, str]) -> None:
    assert jcs.canonicalize(json.loads(case["input"])) == case["output"].encode("utf-8")


@pytest.mark.parametrize("case", VECTORS["refused"], ids=lambda c: c["name"])
def test_published_vectors_with_floats_are_refused(case: dict[str, str]) -> None:
    with pytest.raises(CanonicalizationError, match="floating-point"):
        jcs.canonicalize(json.loads(case["input"]))


def test_member_names_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, which sorts before U+FB33; by code point
    # (and by UTF-8 bytes, orjson's order) it would sort after.
    value = {"\ufb33": 1, "\U0001f600": 2}
    assert jcs.canonicalize(value) == '{"\U0001f600":2,"\ufb33":1}'.encode()
    assert jcs.canonicalize(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        1.0,
        {"a": 0.5},
        [float("nan")],
        2**53,
        -(2**53),
        {"big": 10**20},
        "lone \ud800 surrogate",
        {"\udfff": 1},
        {1: "non-string name"},
        b"bytes",
        {1, 2},
        object(),
    ],
    ids=repr,
)
def test_values_outside_the_profile_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalizationError):
        jcs.canonicalize(value)


def test_integers_at_the_edge_of_the_safe_range_are_accepted() -> None:
    assert jcs.canonicalize([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


def test_nesting_beyond_the_limit_is_refused() -> None:
    value: Any = []
    for _ in range(jcs.MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(CanonicalizationError, match="nesting"):
        jcs.canonicalize(value)


def test_tuples_are_arrays() -> None:
    assert jcs.canonicalize({"a": (1, "x")}) == b'{"a":[1,"x"]}'


# Any JSON value of the profile: no floats, safe integers, any Unicode text without surrogates
# (including astral characters in member names, where UTF-16 and code point order differ).
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-jcs.MAX_SAFE_INTEGER, max_value=jcs.MAX_SAFE_INTEGER)
    | _text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_canonical_bytes_equal_the_rfc8785_reference(value: Any) -> None:
    assert jcs.canonicalize(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_bytes_round_trip_through_a_parser(value: Any) -> None:
    encoded = jcs.canonicalize(value)
    assert jcs.canonicalize(json.loads(encoded)) == encoded
