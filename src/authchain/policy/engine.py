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
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from os import PathLike, fspath
from pathlib import Path
from typing import Any, Literal, cast

import cedarpy
import orjson

from authchain._ids import uuid7
from authchain.errors import ConfigurationError, PolicyLoadError
from authchain.policy.decision import DENY_BY_DEFAULT_REASON, FAIL_CLOSED_REASON, Decision
from authchain.policy.request import PolicyRequest
from authchain.policy.settings import SETTINGS_FILE, PolicySettings

__all__ = [
    "PolicyEngine",
    "PolicyInfo",
    "SCHEMA_FILE",
    "POLICY_SET_HASH_FORMAT",
    "default_policy_directory",
    "schema_text",
]

#: The Cedar schema shipped with Authchain, next to this module.
SCHEMA_FILE = "authchain.cedarschema"
#: Domain separation of the policy-set hash: the first member of the hashed document.
POLICY_SET_HASH_FORMAT = "authchain.policy-set.v1"

# Policy ids travel in tokens, events and log lines: keep them to a plain, bounded alphabet.
_POLICY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_POLICY_FILE_BYTES = 4 << 20
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


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """One loaded policy: its ``@id``, effect, ``@reason`` and the file it came from."""

    id: str
    effect: Literal["permit", "forbid"]
    reason: str
    file: str


@dataclass(frozen=True, slots=True)
class _LoadedSet:
    """Everything a decision needs, built completely before it is published."""

    source: str
    policies: tuple[PolicyInfo, ...]
    reasons: Mapping[str, str]
    settings: PolicySettings
    policy_set_hash: str
    canonical: bytes
    cedar_policies: cedarpy.PolicySet
    cedar_schema: cedarpy.Schema
    base_entities: cedarpy.Entities
    # The base entities plus one request's parties, by the parties' JSON. Hops repeat the same
    # parties (the same workloads delegate to the same workloads), and parsing them into Cedar
    # entities is a quarter of a decision. Bounded; belongs to this set, so a reload starts empty.
    # Races between threads only cost a duplicate parse: dict reads and writes are atomic.
    entities_cache: dict[str, cedarpy.Entities] = field(default_factory=dict, compare=False)

    def entities_for(self, delta: str) -> cedarpy.Entities:
        cached = self.entities_cache.get(delta)
        if cached is None:
            cached = self.base_entities.with_added_json_str(delta)
            if len(self.entities_cache) >= _ENTITIES_CACHE_SIZE:
                self.entities_cache.clear()
            self.entities_cache[delta] = cached
        return cached


_ENTITIES_CACHE_SIZE = 1024


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


def default_policy_directory() -> Traversable:
    """The directory of the default policy pack inside the installed package."""
    return resources.files("authchain.policy").joinpath("default")


@cache
def _schema() -> tuple[str, cedarpy.Schema]:
    text = resources.files("authchain.policy").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    try:
        return text, cedarpy.Schema.from_str(text)
    except ValueError as exc:  # pragma: no cover - the shipped schema is tested
        raise ConfigurationError(
            f"{SCHEMA_FILE}: the Authchain schema does not parse: {exc}"
        ) from exc


def schema_text() -> str:
    """The Cedar schema (human-readable syntax) that every policy set is validated against."""
    return _schema()[0]


def _as_traversable(directory: str | PathLike[str] | Traversable) -> Traversable:
    if isinstance(directory, str | PathLike):
        return Path(fspath(directory))
    return directory


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _load(directory: Traversable, settings: PolicySettings | None) -> _LoadedSet:
    label = str(directory)
    try:
        if not directory.is_dir():
            raise ConfigurationError(f"{label}: not a policy directory")
        entries = sorted(
            (e for e in directory.iterdir() if e.name.endswith(".cedar") and e.is_file()),
            key=lambda e: e.name,
        )
    except OSError as exc:
        raise ConfigurationError(f"{label}: cannot read policy directory: {exc.strerror}") from exc
    if not entries:
        raise PolicyLoadError(f"{label}: no .cedar policy files")

    _, schema = _schema()
    infos: dict[str, PolicyInfo] = {}
    ests: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = str(entry)
        for est, info in _load_file(entry, name, schema):
            if info.id in infos:
                raise PolicyLoadError(
                    f"{name}: policy id `{info.id}` is already used in {infos[info.id].file}"
                )
            infos[info.id] = info
            ests[info.id] = est

    if settings is None:
        settings_entry = directory.joinpath(SETTINGS_FILE)
        if settings_entry.is_file():
            try:
                raw = settings_entry.read_bytes()
            except OSError as exc:
                raise PolicyLoadError(
                    f"{settings_entry}: cannot read settings: {exc.strerror}"
                ) from exc
            settings = PolicySettings.from_json(raw, source=str(settings_entry))
        else:
            settings = PolicySettings()

    return _assemble(label, infos, ests, settings)


def _assemble(
    label: str,
    infos: Mapping[str, PolicyInfo],
    ests: Mapping[str, dict[str, Any]],
    settings: PolicySettings,
) -> _LoadedSet:
    """A published set from parsed, validated policies and their settings."""
    _, schema = _schema()
    order = sorted(infos)
    # Cedar's own ids are positional ("policy0"); giving it the @ids instead makes its diagnostics
    # name the policies the way every record does.
    combined = {
        "staticPolicies": {pid: ests[pid] for pid in order},
        "templates": {},
        "templateLinks": [],
    }
    try:
        cedar_policies = cedarpy.PolicySet.from_json_str(json.dumps(combined))
    except ValueError as exc:  # pragma: no cover - every part parsed and validated above
        raise PolicyLoadError(
            f"{label}: the policy set does not assemble: {_one_line(str(exc))}"
        ) from exc

    settings_dict = settings.to_dict()
    try:
        base_entities = cedarpy.Entities.from_json_str(
            json.dumps([{"uid": _SETTINGS_UID, "attrs": settings_dict, "parents": []}]), schema
        )
    except ValueError as exc:  # pragma: no cover - PolicySettings checks every value's type
        raise PolicyLoadError(
            f"{label}: settings do not fit the schema: {_one_line(str(exc))}"
        ) from exc
    canonical = _canonical(tuple(ests[pid] for pid in order), settings_dict)
    return _LoadedSet(
        source=label,
        policies=tuple(infos[pid] for pid in order),
        reasons={pid: infos[pid].reason for pid in order},
        settings=settings,
        policy_set_hash=hashlib.sha256(canonical).hexdigest(),
        canonical=canonical,
        cedar_policies=cedar_policies,
        cedar_schema=schema,
        base_entities=base_entities,
    )


def _canonical(ests: tuple[dict[str, Any], ...], settings: dict[str, Any]) -> bytes:
    """The canonical form of a policy set (docs/policy.md, "Policy-set hash").

    Each policy as Cedar's JSON form (its EST: effect, scope, conditions, annotations), so file
    names, file order, whitespace and comments do not count and every change to a policy does; the
    policies ordered by ``@id``; the settings the policies read. Serialised as compact JSON with
    sorted keys; the values are only strings, integers, booleans, lists and objects.
    """
    document = {"format": POLICY_SET_HASH_FORMAT, "policies": list(ests), "settings": settings}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _from_canonical(document: bytes) -> _LoadedSet:
    """Parse and validate a canonical policy-set document (see :func:`_canonical`)."""
    label = "policy set document"
    if len(document) > _MAX_POLICY_FILE_BYTES * 16:
        raise PolicyLoadError(f"{label}: {len(document)} bytes is too large")
    try:
        data = orjson.loads(document)
    except orjson.JSONDecodeError as exc:
        raise PolicyLoadError(f"{label}: not JSON") from exc
    if (
        not isinstance(data, dict)
        or data.get("format") != POLICY_SET_HASH_FORMAT
        or not isinstance(data.get("policies"), list)
        or not isinstance(data.get("settings"), dict)
    ):
        raise PolicyLoadError(f"{label}: not a {POLICY_SET_HASH_FORMAT} document")
    infos: dict[str, PolicyInfo] = {}
    ests: dict[str, dict[str, Any]] = {}
    for position, est in enumerate(data["policies"], start=1):
        annotations = est.get("annotations") if isinstance(est, dict) else None
        pid = annotations.get("id") if isinstance(annotations, dict) else None
        reason = annotations.get("reason") if isinstance(annotations, dict) else None
        effect = est.get("effect") if isinstance(est, dict) else None
        if (
            not isinstance(pid, str)
            or not _POLICY_ID.fullmatch(pid)
            or pid in infos
            or not isinstance(reason, str)
            or not reason.strip()
            or effect not in ("permit", "forbid")
        ):
            raise PolicyLoadError(
                f"{label}: policy number {position} lacks a unique @id, a @reason or an effect"
            )
        infos[pid] = PolicyInfo(id=pid, effect=effect, reason=reason, file=label)
        ests[pid] = est
    settings = PolicySettings.from_dict(data["settings"])
    # The same schema validation as files get: Cedar's own text of the set, validated.
    combined = {"staticPolicies": ests, "templates": {}, "templateLinks": []}
    _, schema = _schema()
    try:
        text = cedarpy.policies_from_json_str(json.dumps(combined))
    except ValueError as exc:
        raise PolicyLoadError(f"{label}: does not parse: {_one_line(str(exc))}") from exc
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        messages = [_one_line(str(error.error)) for error in result.errors]
        raise PolicyLoadError(
            f"{label}: does not validate against the schema: {'; '.join(messages)}"
        )
    return _assemble(label, infos, ests, settings)


def _load_file(
    entry: Traversable, name: str, schema: cedarpy.Schema
) -> list[tuple[dict[str, Any], PolicyInfo]]:
    try:
        raw = entry.read_bytes()
    except OSError as exc:
        raise PolicyLoadError(f"{name}: cannot read: {exc.strerror}") from exc
    if len(raw) > _MAX_POLICY_FILE_BYTES:
        raise PolicyLoadError(f"{name}: {len(raw)} bytes, limit {_MAX_POLICY_FILE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyLoadError(f"{name}: not UTF-8") from exc

    # 1. Parse. cedarpy raises ValueError on malformed text; evaluating such text later would give
    #    no decision at all, so it is refused here, once.
    try:
        document = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as exc:
        raise PolicyLoadError(f"{name}: does not parse: {_one_line(str(exc))}") from exc
    if document.get("templates") or document.get("templateLinks"):
        raise PolicyLoadError(
            f"{name}: templates (policies with ?principal or ?resource) are not supported"
        )

    # 2. Every policy names itself and says why it exists: decisions report both.
    static: dict[str, dict[str, Any]] = document.get("staticPolicies", {})
    loaded: list[tuple[dict[str, Any], PolicyInfo]] = []
    for position, est in enumerate(static.values(), start=1):
        annotations = est.get("annotations") or {}
        pid = annotations.get("id")
        where = f"{name}: policy `{pid}`" if pid else f"{name}: policy number {position}"
        if not isinstance(pid, str) or not _POLICY_ID.fullmatch(pid):
            raise PolicyLoadError(
                f"{where} needs an @id of letters, digits and . _ : - (at most 128 characters)"
            )
        reason = annotations.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise PolicyLoadError(f"{where} needs a non-empty @reason")
        effect = est.get("effect")
        if effect not in ("permit", "forbid"):  # pragma: no cover - Cedar has only these two
            raise PolicyLoadError(f"{where}: unknown effect {effect!r}")
        loaded.append((est, PolicyInfo(id=pid, effect=effect, reason=reason, file=name)))

    # 3. Validate against the schema: a policy that reads an attribute no request carries, or
    #    compares a string with a number, is refused now rather than erroring on every request.
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        ids = cast(dict[str, str], result.id_annotations_by_policy_id)
        messages = []
        for error in result.errors:
            # Cedar names policies by position ("policy0"); the file's readers know their @id.
            cedar_id = str(error.policy_id)
            message = str(error.error).replace(f"for policy `{cedar_id}`, ", "")
            if cedar_id:
                message = f"policy `{ids.get(cedar_id, cedar_id)}`: {message}"
            messages.append(_one_line(message))
        raise PolicyLoadError(
            f"{name}: does not validate against the schema: {'; '.join(messages)}"
        )
    return loaded
