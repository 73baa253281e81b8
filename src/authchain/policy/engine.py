"""Request-time policy over Cedar (docs/policy.md).

The engine loads a directory of ``.cedar`` files once: each file is parsed and validated against
the Authchain schema, every policy must carry an ``@id`` and a ``@reason``, and the whole set is
kept as pre-parsed ``cedarpy`` handles together with its hash. :meth:`PolicyEngine.decide` then
maps one :class:`PolicyRequest` to Cedar entities and context and evaluates it against those
handles, never re-parsing policies or schema.

Fail closed. Cedar skips a policy whose evaluation errors: a ``forbid`` that errors does not apply
and a ``permit`` next to it can win. Here any evaluation error, and any failure to build or
evaluate the request at all, is a denial that carries the error.

Atomic reload. Everything one decision needs (policy set, schema, reasons, settings, hash) lives in
one immutable object that :meth:`PolicyEngine.decide` reads once; :meth:`PolicyEngine.reload`
builds a complete new one and swaps the reference. A decision sees the old set or the new one,
never a mix.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from os import PathLike
from typing import Any

import cedarpy
import orjson

from authchain._ids import uuid7
from authchain.errors import ConfigurationError, PolicyLoadError
from authchain.policy._loading import (
    POLICY_SET_HASH_FORMAT,
    SCHEMA_FILE,
    PolicyInfo,
    _as_traversable,
    _from_canonical,
    _load,
    default_policy_directory,
    schema_text,
)
from authchain.policy.decision import DENY_BY_DEFAULT_REASON, FAIL_CLOSED_REASON, Decision
from authchain.policy.request import PolicyRequest
from authchain.policy.settings import PolicySettings

__all__ = [
    "PolicyEngine",
    "PolicyInfo",
    "SCHEMA_FILE",
    "POLICY_SET_HASH_FORMAT",
    "default_policy_directory",
    "schema_text",
]

# Errors go into audit events; one runaway message must not bloat the log.
_MAX_ERROR_CHARS = 1000
_ENTITY_TYPE: Mapping[str, str] = {
    "user": "User",
    "agent": "Agent",
    "tool": "Tool",
    "service": "Service",
    "task": "Task",
}
_SPIFFE_PREFIX = "spiffe://"
# The one settings entity of a loaded set, and the context member that refers to it (Cedar JSON
# entity escape, https://docs.cedarpolicy.com/auth/entities-syntax.html).
_SETTINGS_UID = {"type": "Settings", "id": "pack"}
_SETTINGS_REF = orjson.Fragment(orjson.dumps({"__entity": _SETTINGS_UID}))
_ACTION_UIDS: Mapping[str, dict[str, str]] = {
    action: {"type": "Action", "id": action} for action in ("start_task", "delegate", "invoke")
}
# RFC 9562 section 5.7: the UUIDv7 timestamp is 48 bits of Unix milliseconds.
_MAX_UUID7_SECONDS = (1 << 48) // 1000


class PolicyEngine:
    """Keeps one validated policy set and decides requests against it. Thread-safe.

    Build one with :meth:`from_directory` or :meth:`default`. :meth:`decide` never raises for an
    evaluation problem; it returns a denial that carries the error.
    """

    __slots__ = ("_loaded", "_directory", "_explicit_settings", "_reload_lock")

    def __init__(
        self,
        directory: str | PathLike[str] | Traversable,
        *,
        settings: PolicySettings | None = None,
    ) -> None:
        self._reload_lock = threading.Lock()
        self._directory: Traversable | None = _as_traversable(directory)
        self._explicit_settings = settings
        self._loaded = _load(self._directory, settings)

    @classmethod
    def from_directory(
        cls, directory: str | PathLike[str] | Traversable, *, settings: PolicySettings | None = None
    ) -> PolicyEngine:
        """Load every ``.cedar`` file of ``directory``; raise :class:`PolicyLoadError` if any fails.

        ``settings`` default to the directory's ``settings.json``, or to :class:`PolicySettings`'s
        defaults when there is none.
        """
        return cls(directory, settings=settings)

    @classmethod
    def default(cls, *, settings: PolicySettings | None = None) -> PolicyEngine:
        """The policy pack shipped with Authchain (``authchain/policy/default``)."""
        return cls(default_policy_directory(), settings=settings)

    @classmethod
    def from_canonical(cls, document: bytes, *, expected_hash: str | None = None) -> PolicyEngine:
        """The engine of a published policy set: :meth:`canonical_policy_set`'s exact bytes.

        This is how a tool evaluates ``invoke`` with the authority's current set, and how an
        investigator re-evaluates a recorded decision: the bytes are the set, their SHA-256 is its
        ``policy_set_hash`` (checked against ``expected_hash`` when given), and every policy is
        validated against the schema again. The engine cannot :meth:`reload` (it has no directory).
        Raises :class:`PolicyLoadError` for anything else.
        """
        digest = hashlib.sha256(document).hexdigest()
        if expected_hash is not None and digest != expected_hash:
            raise PolicyLoadError(
                f"the policy set's SHA-256 is {digest}, not the expected {expected_hash}"
            )
        engine = cls.__new__(cls)
        engine._reload_lock = threading.Lock()
        engine._directory = None
        engine._explicit_settings = None
        engine._loaded = _from_canonical(document)
        if engine._loaded.policy_set_hash != digest:
            raise PolicyLoadError("the policy set document is not in its canonical form")
        return engine

    # ---------------------------------------------------------------------------------------------

    @property
    def policy_set_hash(self) -> str:
        """Lowercase hex SHA-256 of the canonical policy set (docs/policy.md, "Policy-set hash")."""
        return self._loaded.policy_set_hash

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The ``@id`` of every policy in the set, sorted."""
        return tuple(p.id for p in self._loaded.policies)

    @property
    def policies(self) -> tuple[PolicyInfo, ...]:
        """Every policy of the set, sorted by ``@id``."""
        return self._loaded.policies

    @property
    def settings(self) -> PolicySettings:
        return self._loaded.settings

    @property
    def source(self) -> str:
        """Where the current set was loaded from."""
        return self._loaded.source

    def canonical_policy_set(self) -> bytes:
        """The exact bytes whose SHA-256 is :attr:`policy_set_hash`, for an investigator to check."""
        return self._loaded.canonical

    def reload(
        self,
        directory: str | PathLike[str] | Traversable | None = None,
        *,
        settings: PolicySettings | None = None,
    ) -> str:
        """Load a new set and swap it in whole; return its policy-set hash.

        With no arguments, the same directory is read again with the same explicit settings (or,
        if none were given, its ``settings.json``). With a ``directory`` and no ``settings``, that
        directory's ``settings.json`` or the defaults apply. On any load error the current set
        stays in force and :class:`PolicyLoadError` (or :class:`ConfigurationError`) is raised.
        """
        with self._reload_lock:
            if directory is None:
                if self._directory is None:
                    raise ConfigurationError(
                        "this policy set was loaded from its canonical document; reload it from "
                        "a directory"
                    )
                target = self._directory
                if settings is None:
                    settings = self._explicit_settings
            else:
                target = _as_traversable(directory)
            loaded = _load(target, settings)
            # One reference assignment: atomic for every thread that reads ``_loaded`` once.
            self._loaded = loaded
            self._directory = target
            self._explicit_settings = settings
            return loaded.policy_set_hash

    # ---------------------------------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> Decision:
        """Evaluate one request. Never raises for evaluation problems: they deny (fail closed)."""
        # Read the published set exactly once: the whole decision uses this one snapshot.
        loaded = self._loaded
        try:
            cedar_request, delta = _cedar_inputs(request)
            # The settings entity is parsed once per set; only this request's parties are parsed
            # here. The request itself (types of principal and resource for the action, and the
            # context) is checked against the schema by Cedar before evaluation.
            entities = loaded.entities_for(delta)
            result = cedarpy.is_authorized(
                cedar_request, loaded.cedar_policies, entities, loaded.cedar_schema
            )
            diagnostics = result.diagnostics
            raw_errors = diagnostics.errors
            errors = tuple([_clip(str(e)) for e in raw_errors]) if raw_errors else ()
            determining = tuple(sorted(diagnostics.reasons))
            cedar_decision = result.decision
        except Exception as exc:  # noqa: BLE001 - fail closed: whatever went wrong is a denial
            return Decision(
                id=_decision_id(request),
                effect="deny",
                policies=(),
                reasons=(FAIL_CLOSED_REASON,),
                errors=(_clip(f"request could not be evaluated: {type(exc).__name__}: {exc}"),),
                policy_set_hash=loaded.policy_set_hash,
            )
        reasons_by_id = loaded.reasons
        if cedar_decision is cedarpy.Decision.Allow and not errors:
            return Decision(
                id=_decision_id(request),
                effect="allow",
                policies=determining,
                reasons=tuple([reasons_by_id.get(p, "") for p in determining]),
                errors=(),
                policy_set_hash=loaded.policy_set_hash,
            )
        # A denial. The permits Cedar reports next to an error did not determine it; forbids that
        # matched did. With neither, say why nothing did.
        if cedar_decision is cedarpy.Decision.Deny and determining:
            policies = determining
            reasons = tuple([reasons_by_id.get(p, "") for p in determining])
        else:
            policies = ()
            reasons = (FAIL_CLOSED_REASON if errors else DENY_BY_DEFAULT_REASON,)
        return Decision(
            id=_decision_id(request),
            effect="deny",
            policies=policies,
            reasons=reasons,
            errors=errors,
            policy_set_hash=loaded.policy_set_hash,
        )

    def __repr__(self) -> str:
        loaded = self._loaded
        return (
            f"PolicyEngine(source={loaded.source!r}, policies={len(loaded.policies)}, "
            f"policy_set_hash={loaded.policy_set_hash[:16]}...)"
        )


# --------------------------------------------------------------------------------------------------
# Requests to Cedar.


def _cedar_inputs(request: PolicyRequest) -> tuple[dict[str, Any], str]:
    """The Cedar request (principal, action, resource, context) and the entities of its parties.

    Entities are given as ``{"type", "id"}`` records rather than Cedar surface strings, so an id
    holding quotes or backslashes (a user's ``sub`` is any string) cannot change the request. The
    entities' shapes follow from the typed :class:`Party` (scopes are a tuple of strings), which is
    why they are not validated against the schema again on every request.
    """
    principal = request.principal
    resource = request.resource
    principal_uid = {"type": _ENTITY_TYPE[principal.kind], "id": principal.id}
    resource_uid = {"type": _ENTITY_TYPE[resource.kind], "id": resource.id}
    entities = orjson.dumps(
        [
            {
                "uid": principal_uid,
                "attrs": _attrs(principal.kind, principal.scopes),
                "parents": [],
            },
            {"uid": resource_uid, "attrs": _attrs(resource.kind, resource.scopes), "parents": []},
        ]
    ).decode()
    context = orjson.dumps(
        {
            "task": request.task,
            "initiator": request.initiator,
            "requested_scopes": request.requested_scopes,
            "held_scopes": request.held_scopes,
            "chain": request.chain,
            "chain_trust_domains": _chain_trust_domains(request.chain),
            "depth": request.depth,
            "purpose": request.purpose,
            "time": request.time,
            "human_approval": request.human_approval,
            "principal_trust_domain": principal.trust_domain,
            "resource_trust_domain": resource.trust_domain,
            "settings": _SETTINGS_REF,
        }
    ).decode()
    cedar_request = {
        "principal": principal_uid,
        "action": _ACTION_UIDS.get(request.action) or {"type": "Action", "id": request.action},
        "resource": resource_uid,
        # Passed as JSON text: cedarpy hands a string through instead of serialising a dict again.
        "context": context,
    }
    return cedar_request, entities


def _attrs(kind: str, scopes: tuple[str, ...]) -> dict[str, Any]:
    # The schema gives a task no attributes; every other party carries its scopes.
    return {} if kind == "task" else {"scopes": scopes}


def _chain_trust_domains(chain: tuple[str, ...]) -> list[str]:
    # SPIFFE-ID standard section 2.1: the trust domain is the authority part of the ID. The ids
    # were verified upstream; entries that are not SPIFFE IDs (a user's sub) have none.
    return list(
        {
            entry[len(_SPIFFE_PREFIX) :].partition("/")[0]
            for entry in chain
            if entry.startswith(_SPIFFE_PREFIX)
        }
    )


def _decision_id(request: PolicyRequest) -> str:
    # The id's timestamp is the request's time, so the decision sorts with the events it explains
    # and the engine still never reads the clock for anything that decides.
    now = request.time
    if isinstance(now, int) and 0 <= now < _MAX_UUID7_SECONDS:
        return uuid7(now * 1000)
    return uuid7()


def _clip(message: str) -> str:
    return message if len(message) <= _MAX_ERROR_CHARS else message[: _MAX_ERROR_CHARS - 3] + "..."


# --------------------------------------------------------------------------------------------------
# Loading.
