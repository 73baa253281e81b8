"""Loading a policy set: from a directory of ``.cedar`` files, or from its canonical document.

Each file is parsed and validated against the Authchain schema, every policy must carry an ``@id``
and a ``@reason``, and the whole set is assembled into one immutable :class:`_LoadedSet` with its
hash, which :class:`authchain.policy.engine.PolicyEngine` publishes and decides against.
"""

from __future__ import annotations

import hashlib
import json
import re
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

from authchain.errors import ConfigurationError, PolicyLoadError
from authchain.policy.settings import SETTINGS_FILE, PolicySettings

#: The Cedar schema shipped with Authchain, next to this module.
SCHEMA_FILE = "authchain.cedarschema"
#: Domain separation of the policy-set hash: the first member of the hashed document.
POLICY_SET_HASH_FORMAT = "authchain.policy-set.v1"

# Policy ids travel in tokens, events and log lines: keep them to a plain, bounded alphabet.
_POLICY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MAX_POLICY_FILE_BYTES = 4 << 20
# The one settings entity of a loaded set (Cedar JSON entity syntax).
_SETTINGS_UID = {"type": "Settings", "id": "pack"}


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
