"""Untrusted text in refusal records: what a refused request said, kept in a form the log accepts.

A refusal is evidence only if it is recorded, and the request that earned it may carry anything: an
audience with a control character, three thousand characters of audience, a scope that reorders
text. The log's rules for each member (:mod:`authchain.audit.events`) are not relaxed for refusals.
Instead, a member the log would refuse leaves the envelope and is kept in the record's ``reported``
member (which nothing reads as evidence) as ``{"text", "sha256", "length"}``: the text escaped and
cut for a human to read, the hash of the exact value for an investigator to match it, its length.

Whether the log accepts a value is asked of the log's own rules, by building the event it would
make; nothing here restates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeVar

import orjson

from authchain._encoding import sha256_b64url
from authchain.audit.records import HopDenied, Refusal
from authchain.authority.recorder import MAX_REASON
from authchain.errors import AuthchainError

__all__ = ["TEXT_LIMIT", "escaped", "kept", "loggable", "recordable"]

#: How much of an untrusted string a refusal keeps as text (its hash covers all of it).
TEXT_LIMIT: Final = 256

# The stamp of an event built only to ask the log's rules whether they accept a record.
_PROBE: Final = {
    "id": "00000000-0000-7000-8000-000000000000",
    "time": "1970-01-01T00:00:00.000000Z",
    "trust_domain": "probe.invalid",
}
# What a refusal member is called in ``reported``: the request's own name for it.
_REPORTED_AS: Final = {"resource": "audience", "initiator": "subject"}
_NOT_RECORDABLE: Final = "the refusal's message holds text the log cannot keep; see reported"

_R = TypeVar("_R", bound=Refusal)


def escaped(text: str, limit: int = TEXT_LIMIT) -> str:
    """``text`` with every character that is not printable written as an escape, cut to ``limit``.

    Control characters, bidirectional and other format characters, separators other than the space,
    and lone surrogates become ``\\uXXXX`` (``\\UXXXXXXXX`` beyond the BMP), and a backslash becomes
    two, so the escaped text reads unambiguously and can never reorder or hide what surrounds it.
    """
    out: list[str] = []
    size = 0
    for char in text:
        if char == "\\":
            piece = "\\\\"
        elif char.isprintable():
            piece = char
        elif ord(char) <= 0xFFFF:
            piece = f"\\u{ord(char):04x}"
        else:
            piece = f"\\U{ord(char):08x}"
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def kept(value: Any) -> dict[str, Any]:
    """An untrusted value as a refusal keeps it in ``reported``: escaped text, hash and length.

    The text is left out when it would look like a raw token to the log (which refuses those), so
    a token sent where an audience belongs is kept by its hash only, as every token is.
    """
    text = value if isinstance(value, str) else _as_text(value)
    entry: dict[str, Any] = {"sha256": sha256_b64url(text), "length": len(text)}
    shown = escaped(text)
    if _fits_reported(shown):
        entry["text"] = shown
    return entry


def recordable(cls: type[_R], fields: Mapping[str, Any]) -> _R:
    """The refusal record of ``cls`` with ``fields``, in a form the log is certain to accept.

    The reason is escaped; every member the log refuses (its envelope rules, a raw token, the size
    limits) is moved to ``reported`` as :func:`kept` text. Should the record still not fit, the
    refusal is recorded with its error, input and token hash alone.
    """
    values = dict(fields)
    reported: dict[str, Any] = dict(values.pop("reported", None) or {})
    values["reason"] = escaped(str(values.get("reason", "")), MAX_REASON)
    record = cls(**values, reported=reported or None)
    if _fits(record):
        return record
    required = {"error": values["error"], "reason": "-"}
    for name, value in list(values.items()):
        if name == "error" or value is None or _fits(cls(**{**required, name: value})):
            continue
        reported[_REPORTED_AS.get(name, name)] = kept(value)
        values[name] = _NOT_RECORDABLE if name == "reason" else None
    record = cls(**values, reported=reported or None)
    if _fits(record):
        return record
    # Only a sum over the event's size limit can remain (each member fits on its own).
    return cls(
        error=values["error"],
        reason=values["reason"],
        input=values.get("input"),
        parent_token=values.get("parent_token"),
    )


def loggable(cls: type[Refusal], **members: Any) -> bool:
    """Whether the log accepts ``members`` in a refusal of ``cls`` (and so in its other records)."""
    return _fits(cls(error="-", reason="-", **members))


def _fits(record: Refusal) -> bool:
    try:
        record.to_event(**_PROBE)
    except AuthchainError:
        return False
    return True


def _fits_reported(text: str) -> bool:
    return _fits(HopDenied(error="-", reason="-", reported={"text": text}))


def _as_text(value: Any) -> str:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    try:
        return orjson.dumps(value, default=repr).decode()
    except (TypeError, orjson.JSONEncodeError):
        # A string that is not valid Unicode (a lone surrogate) somewhere inside: its repr is.
        return repr(value)
