"""Strict base64url and JSON (authchain._encoding): canonical forms only, duplicates refused, on
both the fast path and the strict fallback."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authchain._encoding import b64url_decode, b64url_encode, json_loads_strict
from authchain.errors import MalformedError, SizeLimitError


@given(st.binary(max_size=200))
def test_base64url_round_trips_every_byte_string(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.binary(min_size=1, max_size=64))
def test_every_other_spelling_of_the_same_bytes_is_refused(data: bytes) -> None:
    canonical = b64url_encode(data)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(canonical[-1])
    for other in alphabet:
        text = canonical[:-1] + other
        if other == canonical[-1]:
            continue
        try:
            decoded = b64url_decode(text)
        except MalformedError:
            continue
        # A different last character may only ever decode to different bytes.
        assert decoded != data, (text, last)


@pytest.mark.parametrize(
    "text",
    ["QQ==", "QQ=", "Q", "QUJD+A", "QUJD/A", "QU JD", "QUJD\n", "QUJDé", "QR", "QUJ"],
    ids=[
        "padding",
        "half-padding",
        "1-mod-4",
        "plus",
        "slash",
        "space",
        "newline",
        "non-ascii",
        "trailing-bits-2",
        "trailing-bits-3",
    ],
)
def test_non_canonical_base64url_is_refused(text: str) -> None:
    with pytest.raises(MalformedError):
        b64url_decode(text)


def test_standard_decoder_would_accept_what_is_refused_here() -> None:
    # The reason for a strict decoder: the standard one maps "QR" and "QQ" to the same byte.
    assert base64.urlsafe_b64decode("QR==") == base64.urlsafe_b64decode("QQ==") == b"A"
    assert b64url_decode("QQ") == b"A"


def test_base64url_size_limit_applies_before_decoding() -> None:
    with pytest.raises(SizeLimitError):
        b64url_decode("A" * 12, max_len=8)


@pytest.mark.parametrize(
    "doc",
    [
        b'{"a":1,"a":2}',
        b'{"a": 1, "a": 1}',
        b'{"act":{"sub":"x","sub":"y"}}',
        b'[{"x":1},{"x":1,"x":1}]',
    ],
    ids=["compact", "spaced", "nested", "in-array"],
)
def test_duplicate_member_names_are_refused(doc: bytes) -> None:
    with pytest.raises(MalformedError, match="duplicate"):
        json_loads_strict(doc)


@pytest.mark.parametrize("doc", ['{"a":NaN}', '{"a":Infinity}', '{"a":-Infinity}', '{"a":1e400}'])
def test_non_finite_numbers_are_refused(doc: str) -> None:
    with pytest.raises(MalformedError):
        json_loads_strict(doc)


@pytest.mark.parametrize(
    ("doc", "value"),
    [
        (b'{"a":1,"b":[true,null,"x"]}', {"a": 1, "b": [True, None, "x"]}),
        (b'{ "a" : 1 }', {"a": 1}),
        (b'{"e":"\\u00e9"}', {"e": "é"}),
        (b'{"big":9007199254740991}', {"big": 9007199254740991}),
    ],
    ids=["compact", "spaced", "escaped", "largest-safe-int"],
)
def test_valid_json_parses_the_same_on_either_path(doc: bytes, value: object) -> None:
    assert json_loads_strict(doc) == value
    assert json_loads_strict(doc.decode()) == value


@pytest.mark.parametrize(
    "doc",
    [b'{"big":123456789012345678901234567890}', b'{"big":9007199254740992}', b'"\\ud800"'],
    ids=["big-int", "unsafe-int", "lone-surrogate"],
)
def test_json_that_canonical_json_cannot_write_is_refused_on_either_path(doc: bytes) -> None:
    # RFC 7493 (I-JSON) sections 2.1 and 2.2: what is accepted can be written back canonically.
    for form in (doc, doc.decode()):
        with pytest.raises(MalformedError, match="RFC 7493"):
            json_loads_strict(form)


@pytest.mark.parametrize("doc", [b"{", b"", b'{"a":1}x', b"\xff"])
def test_invalid_json_is_malformed(doc: bytes) -> None:
    with pytest.raises(MalformedError):
        json_loads_strict(doc)


def test_json_size_limit() -> None:
    with pytest.raises(SizeLimitError):
        json_loads_strict(b'{"a":"' + b"x" * 100 + b'"}', max_len=64)
