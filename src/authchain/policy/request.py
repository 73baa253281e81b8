"""What the authority asks the policy engine: one request, as plain Python values.

The authority builds a :class:`PolicyRequest` from facts it has already verified (the token, the
DPoP proof, the registry of workloads) and the engine maps it to Cedar entities and context
(docs/policy.md, "Requests"). The values are plain strings, tuples, ints and bools so that a request
can be written to and read from JSON unchanged (``authchain policy explain --request FILE.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from authchain.errors import MalformedError

__all__ = ["Action", "Kind", "Party", "PolicyRequest"]

Action = Literal["start_task", "delegate", "invoke"]
Kind = Literal["user", "agent", "tool", "service", "task"]

_ACTIONS: frozenset[str] = frozenset({"start_task", "delegate", "invoke"})
_KINDS: frozenset[str] = frozenset({"user", "agent", "tool", "service", "task"})


def _string_tuple(value: Iterable[str], name: str) -> tuple[str, ...]:
    # A bare string is iterable too; taking "crm:read crm:write" as its characters would silently
    # evaluate the wrong scopes, so it is refused instead.
    if isinstance(value, str):
        raise TypeError(f"{name} must be a collection of strings, not a string")
    out = tuple(value)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, found {type(item).__name__}")
    return out


@dataclass(frozen=True, slots=True)
class Party:
    """A party to a request: who asks (the principal) or what it is about (the resource).

    ``id`` is a user's ``sub`` (any string, e.g. ``alice@example.org``), a workload's SPIFFE ID, or
    a task's ``txn``. ``scopes`` are the scopes granted to a user or registered for a workload
    (empty for a task). ``trust_domain`` is the trust domain the party belongs to.
    """

    id: str
    kind: Kind
    trust_domain: str
    scopes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", _string_tuple(self.scopes, "scopes"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "trust_domain": self.trust_domain,
            "scopes": list(self.scopes),
        }

    @classmethod
    def from_dict(cls, data: object, *, where: str = "party") -> Party:
        """Parse the form :meth:`to_dict` writes, or raise :class:`MalformedError`."""
        obj = _object(data, where)
        _no_unknown(obj, {"id", "kind", "trust_domain", "scopes"}, where)
        kind = _str(obj, "kind", where)
        if kind not in _KINDS:
            raise MalformedError(f"{where}.kind must be one of {sorted(_KINDS)}, not {kind!r}")
        return cls(
            id=_str(obj, "id", where),
            kind=cast(Kind, kind),
            trust_domain=_str(obj, "trust_domain", where),
            scopes=_strs(obj, "scopes", where, default=()),
        )


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One request for a decision: a task start, a hop, or an invocation.

    - ``action``: ``start_task`` (principal: the initiator; resource: the task), ``delegate``
      (principal: the current holder; resource: the next actor) or ``invoke`` (principal: the
      presenter of the token; resource: the tool or service it calls).
    - ``task`` and ``initiator``: the task's ``txn`` and ``sub``.
    - ``requested_scopes``: the scopes asked for; ``held_scopes``: the scopes of the token the
      principal holds (for ``start_task``, the scopes granted to the initiator).
    - ``chain``: the actors of the token this decision is about (the one to issue, or the one
      presented), first to last; ``depth``: its number of actors, ``len(chain)`` by convention.
    - ``purpose``: the task's purpose (``tctx``); ``time``: Unix seconds, supplied by the caller
      because the engine never reads the clock; ``human_approval``: a human approval is on record.
    """

    action: Action
    principal: Party
    resource: Party
    task: str
    initiator: str
    requested_scopes: tuple[str, ...]
    held_scopes: tuple[str, ...]
    chain: tuple[str, ...]
    depth: int
    purpose: str
    time: int
    human_approval: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "requested_scopes", _string_tuple(self.requested_scopes, "requested_scopes")
        )
        object.__setattr__(self, "held_scopes", _string_tuple(self.held_scopes, "held_scopes"))
        object.__setattr__(self, "chain", _string_tuple(self.chain, "chain"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form that :meth:`from_dict` reads (and ``policy explain`` takes)."""
        return {
            "action": self.action,
            "principal": self.principal.to_dict(),
            "resource": self.resource.to_dict(),
            "task": self.task,
            "initiator": self.initiator,
            "requested_scopes": list(self.requested_scopes),
            "held_scopes": list(self.held_scopes),
            "chain": list(self.chain),
            "depth": self.depth,
            "purpose": self.purpose,
            "time": self.time,
            "human_approval": self.human_approval,
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicyRequest:
        """Parse the form :meth:`to_dict` writes, or raise :class:`MalformedError`."""
        where = "request"
        obj = _object(data, where)
        _no_unknown(
            obj,
            {
                "action",
                "principal",
                "resource",
                "task",
                "initiator",
                "requested_scopes",
                "held_scopes",
                "chain",
                "depth",
                "purpose",
                "time",
                "human_approval",
            },
            where,
        )
        action = _str(obj, "action", where)
        if action not in _ACTIONS:
            raise MalformedError(
                f"request.action must be one of {sorted(_ACTIONS)}, not {action!r}"
            )
        if "principal" not in obj or "resource" not in obj:
            raise MalformedError("request needs a principal and a resource")
        chain = _strs(obj, "chain", where, default=())
        depth = _int(obj, "depth", where, default=len(chain))
        approval = obj.get("human_approval", False)
        if not isinstance(approval, bool):
            raise MalformedError("request.human_approval must be a boolean")
        return cls(
            action=cast(Action, action),
            principal=Party.from_dict(obj["principal"], where="request.principal"),
            resource=Party.from_dict(obj["resource"], where="request.resource"),
            task=_str(obj, "task", where),
            initiator=_str(obj, "initiator", where),
            requested_scopes=_strs(obj, "requested_scopes", where, default=()),
            held_scopes=_strs(obj, "held_scopes", where, default=()),
            chain=chain,
            depth=depth,
            purpose=_str(obj, "purpose", where, default=""),
            time=_int(obj, "time", where),
            human_approval=approval,
        )


# --------------------------------------------------------------------------------------------------
# Small strict readers: the JSON comes from a file an operator wrote, so each mistake is named.


def _object(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise MalformedError(f"{where} must be a JSON object")
    return cast(Mapping[str, Any], data)


def _no_unknown(obj: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise MalformedError(f"{where} has unknown member(s): {', '.join(unknown)}")


_MISSING: Any = object()


def _str(obj: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> str:
    if key not in obj and default is not _MISSING:
        return cast(str, default)
    value = obj.get(key)
    if not isinstance(value, str):
        raise MalformedError(f"{where}.{key} must be a string")
    return value


def _strs(obj: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> tuple[str, ...]:
    if key not in obj and default is not _MISSING:
        return cast(tuple[str, ...], default)
    value = obj.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MalformedError(f"{where}.{key} must be a list of strings")
    return tuple(value)


def _int(obj: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> int:
    if key not in obj and default is not _MISSING:
        return cast(int, default)
    value = obj.get(key)
    # bool is an int in Python; `true` is not a depth or a time.
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedError(f"{where}.{key} must be an integer")
    return value
