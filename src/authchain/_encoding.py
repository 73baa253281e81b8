"""Strict base64url and JSON parsing for untrusted input.

Hand-written rather than ``base64.urlsafe_b64decode`` + ``json.loads`` because both of those are
lenient in ways an attacker can use: the standard decoder ignores padding errors and accepts
non-canonical trailing bits (so two different strings decode to the same bytes, which breaks any
comparison on the encoded form), and ``json.loads`` keeps the *last* of duplicate member names,
while another parser may keep the first (RFC 7515 section 5.2 and RFC 8725 section 3.11 require
refusing duplicates).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from typing import Any, Final

import orjson

from authchain.errors import MalformedError, SizeLimitError
from authchain.jcs import MAX_SAFE_INTEGER

__all__ = [
    "b64url_encode",
    "b64url_decode",
    "sha256_b64url",
    "json_loads_strict",
    "json_dumps_compact",
]

# RFC 4648 section 5: base64url is base64 with "-" and "_" in place of "+" and "/".
_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_B64URL_VALUES = {
    c: i for i, c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
}
_PADDING = {0: b"", 2: b"==", 3: b"="}
# A final group of 2 characters carries 8 bits in 12, one of 3 carries 16 in 18.
_UNUSED_BITS = {2: 0x0F, 3: 0x03}


def b64url_encode(data: bytes) -> str:
    """RFC 7515 section 2: base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes, *, max_len: int = 1 << 20) -> bytes:
    """Decode unpadded base64url, refusing anything that is not the canonical encoding.

    Refused: padding characters, characters outside the URL-safe alphabet, a length of 1 mod 4,
    and non-zero unused trailing bits (which would let two strings name the same bytes).
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if len(raw) > max_len:
        raise SizeLimitError(f"base64url field is {len(raw)} characters, limit {max_len}")
    rem = len(raw) % 4
    # The standard alphabet's "+" and "/" and the padding "=" are not base64url (RFC 4648
    # section 5, RFC 7515 section 2); everything else outside the alphabet is refused by the
    # strict decoder below.
    if rem == 1 or b"+" in raw or b"/" in raw or b"=" in raw:
        raise MalformedError("invalid base64url encoding")
    try:
        decoded = binascii.a2b_base64(raw.translate(_TO_STANDARD) + _PADDING[rem], strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError("invalid base64url encoding") from exc
    # Canonical form (RFC 4648 section 3.5): the bits of the last character that carry no data
    # must be zero, or two strings would decode to the same bytes.
    if rem and _B64URL_VALUES[raw[-1]] & _UNUSED_BITS[rem]:
        raise MalformedError("non-canonical base64url encoding")
    return decoded


def sha256_b64url(data: bytes | str) -> str:
    """base64url(SHA-256(data)): the form of ``ath``, token hashes in events, and ``prev``."""
    if isinstance(data, str):
        # A real token is ASCII; hashing an untrusted non-ASCII string must not raise (the hash of
        # a hostile input is still recorded as evidence), so encode without failing.
        data = data.encode("utf-8", "surrogatepass")
    return b64url_encode(hashlib.sha256(data).digest())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise MalformedError(f"duplicate JSON member name {key!r}")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise MalformedError(f"JSON constant {name} is not allowed")


# RFC 7493 (I-JSON) section 2.2: an integer beyond 2**53 - 1 in magnitude has 16 or more digits, so
# a document without such a run of digits needs no walk to know its integers are in range.
_LONG_DIGITS: Final = re.compile(rb"[0-9]{16}")
# A lone surrogate in a Python str: a well-formed pair is one code point above U+FFFF.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _safe_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        raise MalformedError(
            f"JSON integer {text[:24]} is outside the I-JSON range (RFC 7493 section 2.2)"
        )
    return value


def _check_values(value: Any) -> None:
    """RFC 7493 sections 2.1 and 2.2 over a parsed document: no lone surrogate in a string or a
    member name, no integer outside +-(2**53 - 1). What Authchain accepts, it can also write back
    (canonical JSON refuses both), so no later step fails on a value that was let in."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise MalformedError("a JSON string holds a lone surrogate (RFC 7493 section 2.1)")
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            _safe_int(str(item))
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _finite_float(text: str) -> float:
    # ``json`` turns an out-of-range literal such as 1e400 into infinity without consulting
    # ``parse_constant``; that is Infinity by another spelling, so it is refused the same way.
    value = float(text)
    if not math.isfinite(value):
        raise MalformedError(f"JSON number {text[:32]} is out of range")
    return value


def json_loads_strict(data: bytes | str, *, max_len: int = 1 << 20) -> Any:
    """Parse JSON refusing duplicate member names, NaN/Infinity, lone surrogates, integers outside
    the I-JSON range (RFC 7493 sections 2.1 and 2.2), and inputs over ``max_len`` bytes."""
    if len(data) > max_len:
        raise SizeLimitError(f"JSON document is {len(data)} bytes, limit {max_len}")
    # Fast path for the common case, a document in compact form (what Authchain, PyJWT and joserfc
    # emit): orjson parses it, and if re-serialising gives back exactly the input bytes, the input
    # cannot have had duplicate members (a dict keeps one of each) nor NaN/Infinity (orjson
    # refuses them). Anything else, including everything orjson refuses, takes the strict parser
    # below, so the result and the errors are the same as without this path, only faster.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if orjson.dumps(value) == raw:
            # orjson refuses lone surrogates itself; large integers are the one thing to check.
            if _LONG_DIGITS.search(raw):
                _check_values(value)
            return value
    try:
        value = json.loads(
            data,
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_safe_int,
        )
    except MalformedError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedError("invalid JSON") from exc
    _check_values(value)
    return value


def json_dumps_compact(value: Any) -> bytes:
    """Compact JSON for JOSE headers and payloads we sign (not a canonical form; see ``jcs``)."""
    # orjson: compact UTF-8 output, about ten times faster than json.dumps on token-sized objects.
    return orjson.dumps(value)
