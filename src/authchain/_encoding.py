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
from typing import Any

import orjson

from authchain.errors import MalformedError, SizeLimitError

__all__ = [
    "b64url_encode",
    "b64url_decode",
    "sha256_b64url",
    "json_loads_strict",
    "json_dumps_compact",
]

_B64URL_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


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
    if len(raw) % 4 == 1 or not _B64URL_ALPHABET.issuperset(raw):
        raise MalformedError("invalid base64url encoding")
    try:
        decoded = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked above
        raise MalformedError("invalid base64url encoding") from exc
    # Canonical form: re-encoding must give back exactly the input (no stray trailing bits).
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != raw:
        raise MalformedError("non-canonical base64url encoding")
    return decoded


def sha256_b64url(data: bytes | str) -> str:
    """base64url(SHA-256(data)): the form of ``ath``, token hashes in events, and ``prev``."""
    if isinstance(data, str):
        data = data.encode("ascii")
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


def json_loads_strict(data: bytes | str, *, max_len: int = 1 << 20) -> Any:
    """Parse JSON refusing duplicate member names, NaN/Infinity, and inputs over ``max_len`` bytes."""
    if len(data) > max_len:
        raise SizeLimitError(f"JSON document is {len(data)} bytes, limit {max_len}")
    try:
        return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except MalformedError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedError("invalid JSON") from exc


def json_dumps_compact(value: Any) -> bytes:
    """Compact JSON for JOSE headers and payloads we sign (not a canonical form; see ``jcs``)."""
    # orjson: compact UTF-8 output, about ten times faster than json.dumps on token-sized objects.
    return orjson.dumps(value)
