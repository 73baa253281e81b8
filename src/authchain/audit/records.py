"""Typed audit records: one type per event kind, one constructor, one reader.

An :class:`~authchain.audit.events.AuditEvent` is the envelope the log stores; a record is what one
kind of event *means*. Every kind of the closed set :class:`Kind` has a frozen dataclass here. Writing
goes through :meth:`Record.to_event`; reading goes through :func:`read`, which returns the record of
the event's kind, so a misspelt member is an ``AttributeError`` (and a mypy error), not a silent miss.

Each record's members are of three sorts:

* **envelope members** (``txn``, ``initiator``, ``actor``, ``chain``, ``token``, ``parent_token``,
  ``action``, ``resource``, ``scope``, ``decision``, ``outcome``) are the common fields every layer
  reads (DESIGN: "Audit log");
* **detail members** are what the authority derived from verified input for this kind (a ``jti``,
  the ``parent_log`` link, the refusal's ``error``), stored in the event's ``detail`` object and
  type-checked on read: a value of the wrong type is refused as a forged entry;
* ``reported`` is whatever a caller supplied (a reporter's own attributes, an untrusted string of a
  refused request). It is kept, escaped nowhere and trusted nowhere: attribution never reads it as
  evidence, and reports label it as a claim.

Version 1 events (release 0.1, one ``attrs`` object for both) are read too: known detail names are
taken from ``attrs`` with the same type checks, everything else lands in ``reported``. That keeps old
logs verifying and tracing exactly as they did, without trusting their extra members any further.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final

from authchain.audit.events import EVENT_FIELDS, EVENT_VERSION, AuditEvent
from authchain.errors import LogIntegrityError, MalformedError

__all__ = [
    "Kind",
    "Record",
    "TaskStarted",
    "TaskDenied",
    "TaskEnded",
    "TaskRevoked",
    "HopGranted",
    "HopDenied",
    "ActionInvoked",
    "ActionRefused",
    "TokenRevoked",
    "WorkloadRegistered",
    "PrincipalRegistered",
    "IssuerTrusted",
    "KeyRotated",
    "Issuance",
    "Refusal",
    "read",
]


class Kind(StrEnum):
    """The closed set of event kinds (:data:`authchain.audit.events.KINDS` is its value set)."""

    TASK_STARTED = "task.started"
    TASK_DENIED = "task.denied"
    TASK_ENDED = "task.ended"
    TASK_REVOKED = "task.revoked"
    HOP_GRANTED = "hop.granted"
    HOP_DENIED = "hop.denied"
    ACTION_INVOKED = "action.invoked"
    ACTION_REFUSED = "action.refused"
    TOKEN_REVOKED = "token.revoked"
    WORKLOAD_REGISTERED = "workload.registered"
    PRINCIPAL_REGISTERED = "principal.registered"
    ISSUER_TRUSTED = "issuer.trusted"
    KEY_ROTATED = "key.rotated"


#: The members every event has at the top level that a record reads as its own: the event's fields
#: less the stamp the recorder adds (id, time, trace context, trust domain) and the free-form
#: objects (``attrs`` of version 1, ``detail`` and ``reported`` of version 2).
_ENVELOPE: Final = tuple(
    name
    for name in EVENT_FIELDS
    if name
    not in {
        "id",
        "time",
        "kind",
        "trace_id",
        "span_id",
        "trust_domain",
        "attrs",
        "v",
        "detail",
        "reported",
    }
)
_ENVELOPE_SET: Final = frozenset(_ENVELOPE)
_PROVENANCE: Final = frozenset(
    {"id", "time", "trace_id", "span_id", "trust_domain", "index", "version", "reported"}
)

# The JSON type a detail member must have, from its annotation. Checked on read, so an entry whose
# detail was edited to another type is refused rather than misread.
_STR: Final = "str"
_INT: Final = "int"
_BOOL: Final = "bool"
_STRS: Final = "strs"
_OBJ: Final = "obj"
_TYPES: Final[dict[str, str]] = {
    "str | None": _STR,
    "str": _STR,
    "int | None": _INT,
    "int": _INT,
    "bool | None": _BOOL,
    "bool": _BOOL,
    "tuple[str, ...] | None": _STRS,
    "tuple[str, ...]": _STRS,
    "dict[str, Any] | None": _OBJ,
    "dict[str, Any]": _OBJ,
}


def _typed(value: Any, expected: str) -> Any:
    """``value`` as the member's type, or raise MalformedError (the caller names the member)."""
    if expected == _STR and type(value) is str:
        return value
    if expected == _INT and type(value) is int:
        return value
    if expected == _BOOL and type(value) is bool:
        return value
    if expected == _STRS and type(value) in (list, tuple) and all(type(v) is str for v in value):
        return tuple(value)
    if expected == _OBJ and type(value) is dict:
        return value
    raise MalformedError(f"must be of type {expected}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """What every record has: where it sits in the log, and what a caller reported with it.

    ``id``, ``time``, ``trace_id``, ``span_id``, ``trust_domain``, ``index`` and ``version`` are
    provenance, filled by :func:`read` (and by the recorder when it writes); a record being built for
    writing leaves them unset.
    """

    KIND: ClassVar[Kind]
    #: The detail members of this kind and their JSON types (computed once per class).
    _DETAIL: ClassVar[dict[str, str]]
    #: The envelope members this kind has (computed once per class; to_event runs on every append).
    _OWN_ENVELOPE: ClassVar[tuple[str, ...]]

    id: str | None = None
    time: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    trust_domain: str | None = None
    index: int | None = None
    version: int = EVENT_VERSION
    #: What a caller supplied. Never evidence: kept for the investigator, labelled as a claim.
    reported: dict[str, Any] | None = None

    @property
    def kind(self) -> Kind:
        return self.KIND

    def to_event(
        self,
        *,
        id: str,
        time: str,
        trust_domain: str,
        trace_id: str | None = None,
        span_id: str | None = None,
    ) -> AuditEvent:
        """The version 2 envelope of this record, ready to append. Absent members are omitted."""
        fields: dict[str, Any] = {}
        detail: dict[str, Any] = {}
        for name in self._OWN_ENVELOPE:
            value = getattr(self, name)
            if value is not None:
                fields[name] = value
        for name in self._DETAIL:
            value = getattr(self, name)
            if value is not None:
                detail[name] = list(value) if isinstance(value, tuple) else value
        return AuditEvent(
            id=id,
            time=time,
            kind=self.KIND.value,
            trace_id=trace_id,
            span_id=span_id,
            trust_domain=trust_domain,
            v=EVENT_VERSION,
            detail=detail or None,
            reported=dict(self.reported) if self.reported else None,
            **fields,
        )


def _detail_types(cls: type[Record]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if f.name in _PROVENANCE or f.name in _ENVELOPE_SET:
            continue
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        out[f.name] = _TYPES[annotation]
    return out


# ------------------------------------------------------------------------------------------------
# Issuance: a task token came into existence. The walk up a token's parents reads only these.


@dataclass(frozen=True, slots=True, kw_only=True)
class Issuance(Record):
    """What every issuance record says about the token it issued (``task.started``, ``hop.granted``).

    ``actor`` is the workload that asked; ``chain`` the chain of the issued token, whose last entry
    is its holder; ``jti``/``exp``/``depth`` are the issued token's.
    """

    txn: str
    initiator: str
    actor: str
    chain: tuple[str, ...]
    scope: tuple[str, ...]
    decision: dict[str, Any]
    action: str
    outcome: str = "allowed"
    parent_token: str | None = None
    resource: str | None = None
    jti: str
    exp: int
    depth: int
    human_approval: bool | None = None

    @property
    def holder(self) -> str:
        return self.chain[-1] if self.chain else self.actor


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(Issuance):
    """The first token of a task: the initiator's assertion exchanged by the first actor.

    ``parent_token`` is the hash of the initiator's ID token (never the token).
    """

    KIND = Kind.TASK_STARTED
    action: str = "start_task"
    deadline: int
    initiator_kind: str = "user"
    assertion_issuer: str | None = None
    purpose: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HopGranted(Issuance):
    """A delegation: ``parent_token`` (by hash, ``parent_jti`` and its issuance ``parent_log``) was
    exchanged for a token held by ``resource``, the next actor."""

    KIND = Kind.HOP_GRANTED
    action: str = "delegate"
    parent_jti: str
    parent_log: int


# ------------------------------------------------------------------------------------------------
# Refusals: denials are evidence too.


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal(Record):
    """A request the authority refused: its machine ``error``, a short ``reason``, and the request
    ``input`` that failed (an :class:`authchain.errors.Input` value) when the cause was known."""

    txn: str | None = None
    initiator: str | None = None
    actor: str | None = None
    chain: tuple[str, ...] | None = None
    scope: tuple[str, ...] | None = None
    decision: dict[str, Any] | None = None
    parent_token: str | None = None
    resource: str | None = None
    action: str | None = None
    outcome: str = "denied"
    error: str
    reason: str
    input: str | None = None
    human_approval: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskDenied(Refusal):
    """A task start refused (``parent_token`` is the hash of the presented ID token)."""

    KIND = Kind.TASK_DENIED
    action: str | None = "start_task"
    initiator_kind: str | None = None
    assertion_issuer: str | None = None
    purpose: str | None = None
    #: The scopes the first actor is registered to hold, when the refusal was about scope.
    allowed_scope: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HopDenied(Refusal):
    """A delegation refused. ``parent_token``/``parent_jti``/``parent_log`` name the presented token
    when it verified; when the refusal was about scope, ``held_scope`` is its scope and
    ``allowed_scope`` the scopes the next actor is registered to hold."""

    KIND = Kind.HOP_DENIED
    action: str | None = "delegate"
    parent_jti: str | None = None
    parent_log: int | None = None
    held_scope: tuple[str, ...] | None = None
    allowed_scope: tuple[str, ...] | None = None


# ------------------------------------------------------------------------------------------------
# Actions reported by the services that performed (or refused) them.


@dataclass(frozen=True, slots=True, kw_only=True)
class _Action(Record):
    """An action a service reported. ``executor`` is the reporting service (authenticated by its own
    key); the envelope's ``actor`` is the presenter only when the presentation verified (its proof
    of possession made the call), and ``jti``/``log`` name the presented token's issuance.

    ``unattributed`` means the authority could not verify a task token for the action; ``error`` and
    ``reason`` are then the authority's own verification result. What the service said about the
    action (its refusal code, the presenter it names, the scope it says the call required, the
    number of refusals a summary stands for, its own attributes) is in ``reported``.

    ``replay_of`` is the entry that first recorded a presentation reported again (``error`` is then
    ``replay``); ``rate_limited`` is how many of the reporter's unverified reports the authority
    refused for exceeding its budget (HTTP 429) since the previous one it recorded.
    """

    action: str
    resource: str
    outcome: str
    txn: str | None = None
    initiator: str | None = None
    actor: str | None = None
    chain: tuple[str, ...] | None = None
    scope: tuple[str, ...] | None = None
    token: str | None = None
    parent_token: str | None = None
    executor: str
    executor_kind: str = "unknown"
    htu: str | None = None
    jti: str | None = None
    log: int | None = None
    proof_jti: str | None = None
    decision_id: str | None = None
    holder: str | None = None
    unattributed: bool | None = None
    error: str | None = None
    reason: str | None = None
    replay_of: int | None = None
    rate_limited: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionInvoked(_Action):
    KIND = Kind.ACTION_INVOKED


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionRefused(_Action):
    KIND = Kind.ACTION_REFUSED
    outcome: str = "refused"


# ------------------------------------------------------------------------------------------------
# Revocation and the end of tasks.


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRevoked(Record):
    """One token, and so every descendant, revoked by ``actor`` (who asked)."""

    KIND = Kind.TOKEN_REVOKED
    token: str
    txn: str | None = None
    actor: str
    outcome: str = "succeeded"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRevoked(Record):
    KIND = Kind.TASK_REVOKED
    txn: str
    actor: str
    outcome: str = "succeeded"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskEnded(Record):
    KIND = Kind.TASK_ENDED
    txn: str
    actor: str
    outcome: str = "succeeded"


# ------------------------------------------------------------------------------------------------
# The registry and the authority's keys: recorded before they are applied.


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadRegistered(Record):
    """A workload's identity bound to a key (``jkt`` its RFC 7638 thumbprint, ``jwk`` the public
    key). ``previous_jkt`` is set when the identity changed keys; ``endpoints`` are the URL
    prefixes the workload serves (normalised), when it registered any."""

    KIND = Kind.WORKLOAD_REGISTERED
    actor: str
    outcome: str = "succeeded"
    workload_kind: str
    jkt: str
    jwk: dict[str, Any]
    scopes: tuple[str, ...]
    previous_jkt: str | None = None
    endpoints: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalRegistered(Record):
    KIND = Kind.PRINCIPAL_REGISTERED
    initiator: str
    outcome: str = "succeeded"
    principal_kind: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerTrusted(Record):
    """An OpenID issuer whose ID tokens may start tasks, with the ``kids`` of its keys."""

    KIND = Kind.ISSUER_TRUSTED
    resource: str
    outcome: str = "succeeded"
    issuer: str
    kids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRotated(Record):
    """The authority's token-signing key changed: ``kid`` signs from now on, ``previous_kid``
    verifies until ``retire_at`` (every token it signed has expired by then)."""

    KIND = Kind.KEY_ROTATED
    actor: str
    outcome: str = "succeeded"
    kid: str
    previous_kid: str
    retire_at: int


# ------------------------------------------------------------------------------------------------
# Reading.

_CLASSES: Final[dict[str, type[Record]]] = {
    cls.KIND.value: cls
    for cls in (
        TaskStarted,
        TaskDenied,
        TaskEnded,
        TaskRevoked,
        HopGranted,
        HopDenied,
        ActionInvoked,
        ActionRefused,
        TokenRevoked,
        WorkloadRegistered,
        PrincipalRegistered,
        IssuerTrusted,
        KeyRotated,
    )
}
assert set(_CLASSES) == {k.value for k in Kind}, "every kind has exactly one record type"
for _cls in _CLASSES.values():
    _cls._DETAIL = _detail_types(_cls)
    _cls._OWN_ENVELOPE = tuple(f.name for f in dataclasses.fields(_cls) if f.name in _ENVELOPE_SET)

# Version 1 spelt a few detail members differently (``attrs.kind`` of a registration).
_V1_NAMES: Final[dict[str, dict[str, str]]] = {
    "workload.registered": {"kind": "workload_kind"},
    "principal.registered": {"kind": "principal_kind"},
}


def read(event: AuditEvent, index: int | None = None) -> Record:
    """The typed record of ``event`` (at log ``index``, if known).

    Raises :class:`LogIntegrityError` when the event is not a valid record of its kind (a required
    member missing, a detail member of the wrong type): an entry the authority cannot have written.
    """
    cls = _CLASSES[event.kind]
    values: dict[str, Any] = {
        "id": event.id,
        "time": event.time,
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "trust_domain": event.trust_domain,
        "index": index,
    }
    own = {f.name for f in dataclasses.fields(cls)}
    for name in _ENVELOPE:
        value = getattr(event, name)
        if value is not None and name in own:
            values[name] = tuple(value) if name in ("chain", "scope") else value
    if event.v is None:
        values["version"] = 1
        detail, reported = _split_v1(event.kind, event.attrs or {}, cls._DETAIL)
    else:
        detail, reported = dict(event.detail or {}), dict(event.reported or {})
        unknown = sorted(set(detail) - set(cls._DETAIL))
        if unknown:
            raise _forged(event, index, f"detail member {unknown[0]!r} is not one of this kind")
    for name, value in detail.items():
        try:
            values[name] = _typed(value, cls._DETAIL[name])
        except MalformedError as exc:
            raise _forged(event, index, f"detail member {name!r} {exc.message}") from None
    if reported:
        values["reported"] = reported
    try:
        return cls(**values)
    except TypeError as exc:
        # A required member of the kind is absent: not an entry the authority writes.
        missing = str(exc).rsplit(":", 1)[-1].strip()
        raise _forged(event, index, f"lacks a required member ({missing})") from None


def _split_v1(
    kind: str, attrs: Mapping[str, Any], types: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    renames = _V1_NAMES.get(kind, {})
    detail: dict[str, Any] = {}
    reported: dict[str, Any] = {}
    for key, value in attrs.items():
        name = renames.get(key, key)
        if name in types:
            try:
                detail[name] = _typed(value, types[name])
                continue
            except MalformedError:
                pass
        reported[key] = value
    return detail, reported


def _forged(event: AuditEvent, index: int | None, why: str) -> LogIntegrityError:
    where = f"entry {index}" if index is not None else f"event {event.id}"
    return LogIntegrityError(f"{where} is not a valid {event.kind} record: {why}", index)
