"""RFC 8785 JSON Canonicalization Scheme (JCS): the one place Authchain produces canonical JSON.

Authchain's profile of JCS accepts only values that every JSON implementation reads back exactly:

- no floating-point numbers at all (RFC 8785 section 3.2.2.3 would serialise them the ECMAScript way,
  but a float in evidence is an invitation to rounding disputes: times are RFC 3339 strings, amounts
  are integers);
- integers within the I-JSON safe range, -(2**53 - 1) .. 2**53 - 1 (RFC 7493 section 2.2, which
  RFC 8785 section 3.2.2.3 relies on);
- strings that are valid Unicode: no lone surrogates (RFC 8785 section 3.2.2.2 and RFC 7493 2.1);
- object member names that are strings; arrays may be lists or tuples.

Anything else raises :class:`~authchain.errors.CanonicalizationError`.

Under those conditions the serialisation of RFC 8785 section 3.2.2 (no whitespace, literals, integer
numbers as decimal, strings escaped exactly as ECMAScript ``JSON.stringify`` does) is what ``orjson``
produces, so the fast path uses it. The one place they differ is member order: RFC 8785 section 3.2.3
sorts names by their UTF-16 code units, while orjson sorts by UTF-8 bytes. The two orders agree unless
a name contains a character outside the Basic Multilingual Plane, so such objects take the slower,
plainly written serialiser below.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeAlias

import orjson

from authchain.errors import CanonicalizationError

__all__ = ["JsonValue", "MAX_SAFE_INTEGER", "MAX_DEPTH", "canonicalize", "check", "encode"]

JsonValue: TypeAlias = (
    "None | bool | int | str | list[JsonValue] | tuple[JsonValue, ...] | dict[str, JsonValue]"
)

# RFC 7493 section 2.2 (I-JSON): integers outside +-(2**53 - 1) are not exactly representable in
# an IEEE 754 double, so another implementation could read back a different number.
MAX_SAFE_INTEGER = 2**53 - 1

# Nesting limit: deep enough for any event, shallow enough that recursion can never run away.
MAX_DEPTH = 32

# A lone surrogate is any code point in U+D800..U+DFFF inside a Python str (a well-formed pair has
# already been combined into one code point above U+FFFF).
_SURROGATE = re.compile("[\ud800-\udfff]")


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of ``value``, or :class:`CanonicalizationError`."""
    return encode(value, utf16_order=_check(value, 0))


def check(value: Any) -> bool:
    """Check ``value`` against the profile without encoding it.

    Returns True when some member name lies outside the Basic Multilingual Plane, which is when
    :func:`encode` must be told ``utf16_order=True``.
    """
    return _check(value, 0)


def encode(value: Any, *, utf16_order: bool) -> bytes:
    """Encode a value whose structure is already known to fit the profile (see :func:`check`).

    For callers that build a document from parts they have checked one by one (an audit event is
    strings, lists of strings and one checked ``attrs`` object), so the whole document need not be
    walked again. Strings are still checked here: a lone surrogate raises.
    """
    try:
        if utf16_order:
            return _serialize(value).encode("utf-8")
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError, UnicodeEncodeError) as exc:
        raise CanonicalizationError(f"value cannot be canonicalised: {exc}") from exc


def _check(value: Any, depth: int) -> bool:
    """Refuse what the profile forbids; return True if some member name is outside the BMP."""
    if depth > MAX_DEPTH:
        raise CanonicalizationError(f"JSON nesting deeper than {MAX_DEPTH}")
    if value is None or value is True or value is False:
        return False
    kind = type(value)
    if kind is str or isinstance(value, str):
        if not value.isascii() and _SURROGATE.search(value):
            raise CanonicalizationError("string contains a lone surrogate")
        return False
    if kind is int or (isinstance(value, int) and not isinstance(value, bool)):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise CanonicalizationError(
                f"integer {value} is outside the I-JSON safe range (RFC 7493 section 2.2)"
            )
        return False
    if kind is float:
        raise CanonicalizationError(
            "floating-point numbers are not allowed; use an integer or a string"
        )
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        astral = False
        for item in value:
            astral |= _check(item, depth + 1)
        return astral
    if kind is dict or isinstance(value, dict):
        astral = False
        for name, item in value.items():
            if type(name) is not str:
                raise CanonicalizationError(
                    f"object member names must be strings, not {type(name).__name__}"
                )
            if not name.isascii():
                if _SURROGATE.search(name):
                    raise CanonicalizationError("member name contains a lone surrogate")
                astral |= max(name) > "\uffff"
            # Flat members (the common case) are checked here rather than by a call each.
            item_kind = type(item)
            if item_kind is str:
                if not item.isascii() and _SURROGATE.search(item):
                    raise CanonicalizationError("string contains a lone surrogate")
            elif item_kind is int:
                if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    raise CanonicalizationError(
                        f"integer {item} is outside the I-JSON safe range (RFC 7493 section 2.2)"
                    )
            elif item is not None and item_kind is not bool:
                astral |= _check(item, depth + 1)
        return astral
    raise CanonicalizationError(f"{kind.__name__} is not a JSON value")


def _utf16_key(name: str) -> bytes:
    # RFC 8785 section 3.2.3: compare member names as arrays of UTF-16 code units. Big-endian UTF-16
    # bytes compare in exactly that order.
    return name.encode("utf-16-be")


def _serialize(value: Any) -> str:
    """RFC 8785 section 3.2.2, written out for values already checked by :func:`_check`."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        # RFC 8785 section 3.2.2.2: escape '"', '\\' and U+0000..U+001F (with \b \t \n \f \r
        # short forms, other controls as lowercase \u00xx), everything else literal. That is
        # exactly json.dumps with ensure_ascii=False.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(_serialize(item) for item in value) + "]"
    members = sorted(value.items(), key=lambda kv: _utf16_key(kv[0]))
    return (
        "{"
        + ",".join(json.dumps(k, ensure_ascii=False) + ":" + _serialize(v) for k, v in members)
        + "}"
    )
