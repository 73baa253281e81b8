"""The record of one policy evaluation (docs/policy.md).

A decision says not just "allowed" but which policies decided, why (their ``@reason``), what went
wrong while evaluating, and in which exact policy set (``policy_set_hash``). Its :meth:`to_dict`
form is the ``decision`` member of an audit event; :meth:`authz_claim` is the ``authz`` claim of the
task token it allowed (docs/tokens.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from authchain.errors import MalformedError

__all__ = ["Decision", "Effect", "DENY_BY_DEFAULT_REASON", "FAIL_CLOSED_REASON"]

Effect = Literal["allow", "deny"]

#: The reason of a denial that no policy determined: nothing permitted the request.
DENY_BY_DEFAULT_REASON = "no policy permits this request (deny by default)"
#: The reason of a denial forced by an evaluation error that no ``forbid`` explains.
FAIL_CLOSED_REASON = "the request could not be evaluated without error (fail closed)"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Decision:
    """One evaluation: its id, effect, determining policies and reasons, errors and policy set.

    ``policies`` are the ``@id``s of the determining policies: the permits that allowed, or the
    forbids that denied. A denial that no policy determined has no policies and one reason that
    says why (:data:`DENY_BY_DEFAULT_REASON` or :data:`FAIL_CLOSED_REASON`). An allow never
    carries errors: any evaluation error makes the decision a denial.
    """

    id: str
    effect: Effect
    policies: tuple[str, ...]
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    policy_set_hash: str

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the ``decision`` member of audit events."""
        return {
            "id": self.id,
            "effect": self.effect,
            "policies": list(self.policies),
            "reasons": list(self.reasons),
            "errors": list(self.errors),
            "policy_set_hash": self.policy_set_hash,
        }

    def authz_claim(self) -> dict[str, Any]:
        """The ``authz`` claim of a task token issued on this decision (docs/tokens.md)."""
        return {
            "id": self.id,
            "policies": list(self.policies),
            "policy_set_hash": self.policy_set_hash,
        }

    @classmethod
    def from_dict(cls, data: object) -> Decision:
        """Read the :meth:`to_dict` form back (from a log), or raise :class:`MalformedError`."""
        if not isinstance(data, Mapping):
            raise MalformedError("decision must be a JSON object")
        obj = cast(Mapping[str, Any], data)
        expected = {"id", "effect", "policies", "reasons", "errors", "policy_set_hash"}
        if set(obj) != expected:
            raise MalformedError(f"decision must have exactly the members {sorted(expected)}")
        ident, effect, digest = obj["id"], obj["effect"], obj["policy_set_hash"]
        if not isinstance(ident, str) or not _UUID.fullmatch(ident):
            raise MalformedError("decision.id must be a UUID")
        if effect not in ("allow", "deny"):
            raise MalformedError("decision.effect must be 'allow' or 'deny'")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise MalformedError("decision.policy_set_hash must be 64 lowercase hex digits")
        lists: dict[str, tuple[str, ...]] = {}
        for name in ("policies", "reasons", "errors"):
            value = obj[name]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MalformedError(f"decision.{name} must be a list of strings")
            lists[name] = tuple(value)
        if effect == "allow" and lists["errors"]:
            raise MalformedError("an allow decision cannot carry evaluation errors")
        return cls(
            id=ident,
            effect=cast(Effect, effect),
            policies=lists["policies"],
            reasons=lists["reasons"],
            errors=lists["errors"],
            policy_set_hash=digest,
        )
