"""Audit events: the records the log holds (docs/audit-log.md).

An :class:`AuditEvent` is a frozen value object. Its leaf bytes, the input of the Merkle leaf hash,
are the RFC 8785 canonical JSON of :meth:`AuditEvent.to_dict`, produced by :mod:`authchain.jcs`.

Encoding rules, chosen so that the bytes of an event are a function of its value and nothing else:

- An absent optional field is **omitted**, never written as ``null``; ``null`` in a stored event is
  refused. Omission (rather than ``null`` everywhere) keeps old events canonical when a field is
  added to the schema later.
- ``chain`` and ``scope`` are JSON arrays of strings in the order given (``chain`` first to last
  actor; ``scope`` as in the token, duplicates refused). An empty array is a value, distinct from
  an absent field.
- ``decision`` is the policy decision record with exactly the members ``id``, ``effect``,
  ``policies``, ``reasons``, ``errors``, ``policy_set_hash`` (``authchain.policy.Decision.to_dict``).
- ``v`` is the event format version. Events written by this release carry ``"v": 2``; events
  written by release 0.1 carry no ``v`` and are version 1. Both verify and trace.
- Version 2 keeps what the authority derived from verified input apart from what a caller said:
  ``detail`` holds the authority's own members of the kind (typed by :mod:`authchain.audit.records`),
  ``reported`` holds whatever a caller supplied (a reporter's attributes, an untrusted string of a
  refused request), and is never read as evidence. Version 1 had one ``attrs`` object for both; it is
  refused in a version 2 event, as ``detail`` and ``reported`` are in a version 1 event.
- ``attrs``, ``detail`` and ``reported`` are small objects of JSON values, each at most
  :data:`ATTRS_MAX_BYTES` canonical bytes.
- ``time`` is RFC 3339 UTC with exactly six fractional digits (``2026-11-28T21:17:37.123456Z``);
  there are no floats anywhere.
- ``token`` and ``parent_token`` are base64url SHA-256 hashes of tokens (43 characters), never the
  tokens. Any string anywhere in an event that looks like a raw JWT (``eyJ...``.``...``.``...``) is
  refused, so a raw token can never reach the log by mistake.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import orjson

from authchain import jcs
from authchain.errors import (
    CanonicalizationError,
    MalformedError,
    RawTokenError,
    SizeLimitError,
)

__all__ = [
    "AuditEvent",
    "KINDS",
    "OUTCOMES",
    "EVENT_FIELDS",
    "DECISION_FIELDS",
    "ATTRS_MAX_BYTES",
    "EVENT_MAX_BYTES",
    "EVENT_VERSION",
    "check_leaf",
]

#: Every kind of event the log accepts. One set, in one place: add a kind here to extend it.
KINDS: Final[frozenset[str]] = frozenset(
    {
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
)

#: The format version of the events this release writes (see the module docstring).
EVENT_VERSION: Final = 2

#: What became of the thing the event records.
OUTCOMES: Final[frozenset[str]] = frozenset({"allowed", "denied", "succeeded", "failed", "refused"})

#: The members of an event, in the order of the design. ``id``, ``time`` and ``kind`` are required.
EVENT_FIELDS: Final[tuple[str, ...]] = (
    "id",
    "time",
    "kind",
    "txn",
    "trace_id",
    "span_id",
    "initiator",
    "actor",
    "chain",
    "token",
    "parent_token",
    "action",
    "resource",
    "scope",
    "decision",
    "outcome",
    "trust_domain",
    "attrs",
    "v",
    "detail",
    "reported",
)
_OBJECTS: Final = ("attrs", "detail", "reported")
_REQUIRED: Final = ("id", "time", "kind")
_REQUIRED_SET: Final = frozenset(_REQUIRED)

#: The members of ``decision`` (docs/policy.md).
DECISION_FIELDS: Final[frozenset[str]] = frozenset(
    {"id", "effect", "policies", "reasons", "errors", "policy_set_hash"}
)

#: ``attrs`` is for small context (a reason, a jti, a depth), not payloads.
ATTRS_MAX_BYTES: Final = 8 * 1024
#: A whole event; the other fields are bounded individually, this bounds the sum.
EVENT_MAX_BYTES: Final = 64 * 1024

_MAX_CHAIN: Final = 64  # delegation depth is bounded far below this (docs/tokens.md)
_MAX_SCOPE: Final = 256
_MAX_DECISION_ITEMS: Final = 256
_MAX_TEXT: Final = 2048

# RFC 9562 section 5.7: UUIDv7 in its canonical lowercase form (authchain._ids.uuid7).
_UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Any RFC 9562 UUID (decision ids are UUIDv7 by design, but the policy layer owns that rule).
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# RFC 3339 section 5.6, profiled: UTC ("Z") and exactly microseconds, so a time has one spelling.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
# W3C Trace Context 3.2.2.3 / 3.2.2.4: lowercase hex, not all zero (checked separately).
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
# base64url (RFC 4648 section 5, unpadded) of 32 bytes: 43 characters, and the last one carries
# two zero padding bits, so only 16 letters can end a canonical encoding.
_SHA256_B64URL = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
# RFC 6749 section 3.3: scope-token = 1*NQCHAR.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# Identifiers without spaces or controls (txn, policy set hash).
_IDENT = re.compile(r"[\x21-\x7e]{1,256}")
# SPIFFE trust domain characters (SPIFFE-ID section 2.1).
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
# Principal ids, actions and resources are read by people in attribution reports, so beside control
# characters (C0, DEL, C1; newlines belong in attrs) they may not hold characters that are
# invisible or reorder text: Unicode format characters (general category Cf: bidi overrides and
# isolates, zero-width spaces and joiners, tag characters...) and the line and paragraph
# separators. A fixed list (Unicode 15.1's Cf, Zl, Zp), not the Python version's Unicode tables,
# so every verifier applies the same rule to the same bytes.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f]"
)
# A compact JWS/JWE: a base64url JSON header ("eyJ" is base64 of '{"') followed by at least two
# more dot-separated base64url segments. Searched in the canonical bytes, where a token would appear
# verbatim (JCS escapes none of these characters).
_RAW_JWT = re.compile(rb"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.")


def _fail(name: str, why: str) -> MalformedError:
    return MalformedError(f"event field {name!r}: {why}")


_TEXT_RULE: Final = (
    f"must be a string of 1 to {_MAX_TEXT} characters without control characters or invisible "
    "formatting characters (bidi controls, zero-width characters)"
)

# What each field must be: the text of a refusal.
_RULES: Final[dict[str, str]] = {
    "id": "must be a lowercase UUIDv7",
    "time": "must be RFC 3339 UTC with microseconds, like 2026-11-28T21:17:37.123456Z",
    "txn": "must be 1 to 256 visible ASCII characters",
    "trace_id": "must be 32 lowercase hex digits, not all zero (W3C Trace Context)",
    "span_id": "must be 16 lowercase hex digits, not all zero (W3C Trace Context)",
    "initiator": _TEXT_RULE,
    "actor": _TEXT_RULE,
    "chain": f"must be a list of at most {_MAX_CHAIN} principal ids, each {_TEXT_RULE[8:]}",
    "token": "must be a base64url SHA-256 hash (43 characters), never a raw token",
    "parent_token": "must be a base64url SHA-256 hash (43 characters), never a raw token",
    "action": _TEXT_RULE,
    "resource": _TEXT_RULE,
    "scope": f"must be a list of at most {_MAX_SCOPE} distinct scope tokens (RFC 6749 section 3.3)",
    "decision": "must be an object with exactly: id (a lowercase UUID), effect ('allow' or 'deny'), "
    f"policies, reasons and errors (lists of at most {_MAX_DECISION_ITEMS} strings of at most "
    f"{_MAX_TEXT} characters), policy_set_hash (1 to 256 visible ASCII characters)",
    "trust_domain": "must be a trust domain name (lowercase letters, digits, '.', '-', '_')",
    "attrs": "must be an object, and only in a version 1 event (no 'v')",
    "v": f"must be {EVENT_VERSION}, or absent for a version 1 event",
    "detail": "must be an object, and only in a version 2 event",
    "reported": "must be an object, and only in a version 2 event",
}

_FIELD_SET: Final = frozenset(EVENT_FIELDS)
_LISTS: Final = (list, tuple)

# Bound methods of the precompiled patterns: the checks below run on every stored entry during
# verification, so each field is one exact-type test and one regex, with no call per field.
_uuid7 = _UUID7.fullmatch
_uuid = _UUID.fullmatch
_time = _TIME.fullmatch
_trace_id = _TRACE_ID.fullmatch
_span_id = _SPAN_ID.fullmatch
_sha256_b64url = _SHA256_B64URL.fullmatch
_scope_token = _SCOPE_TOKEN.fullmatch
_ident = _IDENT.fullmatch
_trust_domain = _TRUST_DOMAIN.fullmatch
_control = _CONTROL.search
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def _is_string_list(value: Any) -> bool:
    if type(value) not in _LISTS or len(value) > _MAX_DECISION_ITEMS:
        return False
    for item in value:
        if type(item) is not str or len(item) > _MAX_TEXT:
            return False
    return True


def _first_invalid(m: Mapping[str, Any]) -> str | None:
    """The name of the first member that breaks its rule, or None. These are THE rules.

    Written as one flat function because it runs on every stored entry during verification.
    """
    v = m["id"]
    if type(v) is not str or not _uuid7(v):
        return "id"
    v = m["time"]
    if type(v) is not str or not _time(v):
        return "time"
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return "time"
    v = m["kind"]
    if type(v) is not str or v not in KINDS:
        return "kind"
    get = m.get
    v = get("txn")
    if v is not None and (type(v) is not str or not _ident(v)):
        return "txn"
    v = get("trace_id")
    if v is not None and (type(v) is not str or not _trace_id(v) or v == _ZERO_TRACE):
        return "trace_id"
    v = get("span_id")
    if v is not None and (type(v) is not str or not _span_id(v) or v == _ZERO_SPAN):
        return "span_id"
    for name in ("initiator", "actor", "action", "resource"):
        v = get(name)
        if v is not None and (
            type(v) is not str
            or not 0 < len(v) <= _MAX_TEXT
            or (not v.isprintable() and _control(v))
        ):
            return name
    v = get("chain")
    if v is not None:
        if type(v) not in _LISTS or len(v) > _MAX_CHAIN:
            return "chain"
        for item in v:
            if (
                type(item) is not str
                or not 0 < len(item) <= _MAX_TEXT
                or (not item.isprintable() and _control(item))
            ):
                return "chain"
    for name in ("token", "parent_token"):
        v = get(name)
        if v is not None and (type(v) is not str or not _sha256_b64url(v)):
            return name
    v = get("scope")
    if v is not None:
        if type(v) not in _LISTS or len(v) > _MAX_SCOPE:
            return "scope"
        for item in v:
            if type(item) is not str or not _scope_token(item):
                return "scope"
        if len(v) > 1 and len(set(v)) != len(v):
            return "scope"
    v = get("decision")
    if v is not None:
        if type(v) is not dict or v.keys() != DECISION_FIELDS:
            return "decision"
        w = v["id"]
        if type(w) is not str or not _uuid(w):
            return "decision"
        w = v["effect"]
        if type(w) is not str or (w != "allow" and w != "deny"):
            return "decision"
        w = v["policy_set_hash"]
        if type(w) is not str or not _ident(w):
            return "decision"
        if not (
            _is_string_list(v["policies"])
            and _is_string_list(v["reasons"])
            and _is_string_list(v["errors"])
        ):
            return "decision"
    v = get("outcome")
    if v is not None and (type(v) is not str or v not in OUTCOMES):
        return "outcome"
    v = get("trust_domain")
    if v is not None and (type(v) is not str or not _trust_domain(v)):
        return "trust_domain"
    version = get("v")
    if version is not None and (type(version) is not int or version != EVENT_VERSION):
        return "v"
    v = get("attrs")
    if v is not None and (type(v) is not dict or version is not None):
        return "attrs"
    for name in ("detail", "reported"):
        v = get(name)
        if v is not None and (type(v) is not dict or version is None):
            return name
    return None


def _refusal(name: str, value: Any) -> MalformedError:
    """The error for a member that :func:`_first_invalid` refused, as precise as is useful."""
    if name == "kind":
        return _fail(name, f"unknown event kind {value!r}")
    if name == "outcome":
        return _fail(name, f"unknown outcome {value!r} (one of {', '.join(sorted(OUTCOMES))})")
    limits = {"chain": _MAX_CHAIN, "scope": _MAX_SCOPE}
    if name in limits and type(value) in _LISTS and len(value) > limits[name]:
        return SizeLimitError(f"event field {name!r}: more than {limits[name]} items")
    return _fail(name, _RULES[name])


def _plain(value: str) -> str:
    # A str subclass (an enum member, say) is kept as the plain string it spells.
    return value if type(value) is str else str.__str__(value)


def _json_copy(value: Any, depth: int = 0) -> Any:
    """A fresh copy of a JSON-like value with tuples as lists and str subclasses as str."""
    if depth > jcs.MAX_DEPTH:
        raise CanonicalizationError(f"JSON nesting deeper than {jcs.MAX_DEPTH}")
    if isinstance(value, str):
        return _plain(value)
    if isinstance(value, Mapping):
        return {
            (_plain(k) if isinstance(k, str) else k): _json_copy(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_copy(v, depth + 1) for v in value]
    return value


def _copy_object(value: Any) -> Any:
    """A fresh deep copy of a decision or attrs object, in plain JSON types.

    orjson does it in one C pass for the ordinary case. It writes NaN and infinities as null, so
    ``attrs`` is checked against the JCS profile *before* this copy (see :func:`_checked`); the
    decision's members must be strings, so a float there is refused whatever it became.
    """
    if not isinstance(value, Mapping):
        return value  # refused by the rules
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return _json_copy(value)  # a Mapping orjson does not know; the rules judge the result


def _normalised(values: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor input in the plain types the rules test: str, tuple, dict, list."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if type(value) is str:
            pass
        elif isinstance(value, str):
            value = _plain(value)
        elif name in ("chain", "scope"):
            if isinstance(value, Sequence) and not isinstance(value, str | bytes):
                value = tuple([_plain(v) if isinstance(v, str) else v for v in value])
        elif name in ("decision", "attrs", "detail", "reported"):
            value = _copy_object(value)
        out[name] = value
    return out


def _checked(values: Mapping[str, Any], *, copy: bool) -> tuple[dict[str, Any], bool]:
    """Check every member; return them (normalised if ``copy``) and the JCS member-order flag.

    ``copy`` is False only for a dict fresh from a JSON parser, which nobody else holds.
    """
    # The free-form objects are checked against the JCS profile as given, before any copy could
    # blur them.
    utf16_order = False
    for name in _OBJECTS:
        obj = values.get(name)
        if obj is not None and jcs.check(obj):
            utf16_order = True
    members: dict[str, Any] = _normalised(values) if copy else values  # type: ignore[assignment]
    keys = members.keys()
    if not keys <= _FIELD_SET:
        unknown = next(name for name in members if name not in _FIELD_SET)
        raise MalformedError(f"unknown event field {unknown!r}")
    if not keys >= _REQUIRED_SET:
        missing = next(name for name in _REQUIRED if name not in members)
        raise _fail(missing, "is required")
    if None in members.values():
        null = next(name for name, value in members.items() if value is None)
        raise _fail(null, "is null; an absent field is omitted, never null")
    bad = _first_invalid(members)
    if bad is not None:
        raise _refusal(bad, members[bad])
    return members, utf16_order


def _leaf(members: dict[str, Any], utf16_order: bool) -> bytes:
    """Canonical bytes of checked members, refusing raw tokens and oversized events."""
    # Every member but the free-form objects is a string, a number, a list of strings or the
    # decision object, whose names are ASCII: only those objects can need the UTF-16 member order of
    # RFC 8785 section 3.2.3.
    leaf = jcs.encode(members, utf16_order=utf16_order)
    if len(leaf) > ATTRS_MAX_BYTES:
        # Each object is part of the leaf, so it can only be over its limit when the leaf is; and
        # the length of canonical JSON does not depend on member order.
        for name in _OBJECTS:
            if name not in members:
                continue
            size = len(jcs.encode(members[name], utf16_order=False))
            if size > ATTRS_MAX_BYTES:
                raise SizeLimitError(
                    f"event field {name!r} is {size} bytes of canonical JSON, "
                    f"limit {ATTRS_MAX_BYTES}"
                )
    if len(leaf) > EVENT_MAX_BYTES:
        raise SizeLimitError(
            f"event is {len(leaf)} bytes of canonical JSON, limit {EVENT_MAX_BYTES}"
        )
    if b"eyJ" in leaf and _RAW_JWT.search(leaf):
        raise RawTokenError(
            "event contains what looks like a raw JWT; log its hash (sha256_b64url), never the token"
        )
    return leaf


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, as the log records it (docs/audit-log.md).

    Construction checks every field and computes the canonical leaf bytes once; an event that
    exists is one the log accepts. ``chain`` and ``scope`` accept any sequence and are kept as
    tuples; ``decision`` and ``attrs`` are copied, so later changes to the caller's dicts do not
    reach the event (treat them as read-only).
    """

    id: str
    time: str
    kind: str
    txn: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    initiator: str | None = None
    actor: str | None = None
    chain: Sequence[str] | None = None
    token: str | None = None
    parent_token: str | None = None
    action: str | None = None
    resource: str | None = None
    scope: Sequence[str] | None = None
    decision: dict[str, Any] | None = None
    outcome: str | None = None
    trust_domain: str | None = None
    attrs: dict[str, Any] | None = None
    v: int | None = None
    detail: dict[str, Any] | None = None
    reported: dict[str, Any] | None = None
    _leaf: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        present: dict[str, Any] = {}
        for name in EVENT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                present[name] = value
        members, utf16_order = _checked(present, copy=True)
        for name, value in members.items():
            if value is not present[name]:  # normalised: a tuple, a copy, a plain str
                object.__setattr__(self, name, value)
        object.__setattr__(self, "_leaf", _leaf(members, utf16_order))

    def __hash__(self) -> int:
        # The leaf bytes are a function of the fields, so equal events hash alike.
        return hash(self._leaf)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the event: present fields only, arrays as lists, fresh copies."""
        out: dict[str, Any] = orjson.loads(self._leaf)
        return out

    def leaf_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of :meth:`to_dict`: the bytes the Merkle leaf hash covers."""
        return self._leaf

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """Build an event from its JSON object, refusing unknown members and explicit nulls."""
        if not isinstance(data, Mapping):
            raise MalformedError("an audit event must be a JSON object")
        for name, value in data.items():
            if name not in _FIELD_SET:
                raise MalformedError(f"unknown event field {name!r}")
            if value is None:
                raise _fail(name, "is null; an absent field is omitted, never null")
        for name in _REQUIRED:
            if name not in data:
                raise _fail(name, "is required")
        return cls(**data)

    @classmethod
    def from_leaf(cls, data: bytes) -> AuditEvent:
        """Parse stored leaf bytes, which must be exactly the canonical form of a valid event."""
        members = check_leaf(data)
        # check_leaf has checked every member and that the bytes are their canonical form, so
        # the event is assembled without checking it a second time.
        event = object.__new__(cls)
        for name in EVENT_FIELDS:
            value = members.get(name)
            if name in ("chain", "scope") and value is not None:
                value = tuple(value)
            object.__setattr__(event, name, value)
        object.__setattr__(event, "_leaf", bytes(data))
        return event


def check_leaf(data: bytes) -> dict[str, Any]:
    """Check that ``data`` is exactly the canonical JSON of a valid event; return its members.

    This is what log verification runs on every stored entry: an edit that keeps valid JSON but is
    not the canonical form of a valid event (reordered members, a duplicate member, an escaped
    character, a float, a null) is refused here even before the hash is compared.
    """
    if len(data) > EVENT_MAX_BYTES:
        raise SizeLimitError(f"event is {len(data)} bytes, limit {EVENT_MAX_BYTES}")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise MalformedError("event is not valid JSON") from exc
    if type(parsed) is not dict:
        raise MalformedError("an audit event must be a JSON object")
    members, utf16_order = _checked(parsed, copy=False)
    if _leaf(members, utf16_order) != data:
        # orjson keeps the last of duplicate members and reads big integers as floats; either way
        # the re-canonicalised bytes differ, so this one comparison refuses both.
        raise CanonicalizationError("event bytes are not the RFC 8785 canonical form of the event")
    return members
