"""The data of a policy pack: what an operator sets without editing Cedar.

The default pack's policies read these values from ``context.settings`` (docs/policy.md,
"Settings"). They are part of what decides, so they are part of the policy-set hash: changing the
depth limit changes the hash exactly as editing a policy would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from authchain._encoding import json_loads_strict
from authchain.errors import ConfigurationError, MalformedError, PolicyLoadError

__all__ = ["PolicySettings", "SETTINGS_FILE"]

#: The optional file, next to the ``.cedar`` files of a policy directory, that holds its settings.
SETTINGS_FILE = "settings.json"

# Cedar's Long is a signed 64-bit integer; a larger limit could not be passed to the policies.
_CEDAR_LONG_MAX = 2**63 - 1
_MAX_SETTINGS_BYTES = 1 << 20


def _frozen(value: Iterable[str], name: str) -> frozenset[str]:
    if isinstance(value, str):
        raise TypeError(f"{name} must be a collection of strings, not a string")
    out = frozenset(value)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, found {type(item).__name__}")
    return out


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Trust domains, sensitive scopes and the depth limit that the pack's policies consult.

    - ``allowed_trust_domains``: authority may pass to principals of these domains.
    - ``federated_trust_domains``: authority may also pass to these (identity chaining).
    - ``sensitive_scopes``: requesting any of these needs a recorded human approval.
    - ``max_depth``: the most actors a task token's chain may have.
    """

    allowed_trust_domains: frozenset[str] = field(default=frozenset({"example.org"}))
    federated_trust_domains: frozenset[str] = field(default=frozenset())
    sensitive_scopes: frozenset[str] = field(default=frozenset({"crm:delete", "payments:write"}))
    max_depth: int = 8

    def __post_init__(self) -> None:
        for name in ("allowed_trust_domains", "federated_trust_domains", "sensitive_scopes"):
            object.__setattr__(self, name, _frozen(getattr(self, name), name))
        if (
            not isinstance(self.max_depth, int)
            or isinstance(self.max_depth, bool)
            or not 0 <= self.max_depth <= _CEDAR_LONG_MAX
        ):
            raise ConfigurationError("max_depth must be a non-negative 64-bit integer")

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON form: sets as sorted lists (also what the policies see as context)."""
        return {
            "allowed_trust_domains": sorted(self.allowed_trust_domains),
            "federated_trust_domains": sorted(self.federated_trust_domains),
            "sensitive_scopes": sorted(self.sensitive_scopes),
            "max_depth": self.max_depth,
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicySettings:
        """Read the JSON form; a member left out keeps its default. Raises :class:`MalformedError`."""
        if not isinstance(data, Mapping):
            raise MalformedError("policy settings must be a JSON object")
        obj = cast(Mapping[str, Any], data)
        known = {
            "allowed_trust_domains",
            "federated_trust_domains",
            "sensitive_scopes",
            "max_depth",
        }
        unknown = sorted(set(obj) - known)
        if unknown:
            raise MalformedError(f"policy settings have unknown member(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name in ("allowed_trust_domains", "federated_trust_domains", "sensitive_scopes"):
            if name in obj:
                value = obj[name]
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise MalformedError(f"policy settings: {name} must be a list of strings")
                values[name] = frozenset(value)
        if "max_depth" in obj:
            depth = obj["max_depth"]
            if (
                not isinstance(depth, int)
                or isinstance(depth, bool)
                or not 0 <= depth <= _CEDAR_LONG_MAX
            ):
                raise MalformedError("policy settings: max_depth must be a non-negative integer")
            values["max_depth"] = depth
        return cls(**values)

    @classmethod
    def from_json(cls, raw: bytes | str, *, source: str = "settings") -> PolicySettings:
        """Read the JSON text of a settings file, or raise :class:`PolicyLoadError` naming it."""
        try:
            return cls.from_dict(json_loads_strict(raw, max_len=_MAX_SETTINGS_BYTES))
        except MalformedError as exc:
            raise PolicyLoadError(f"{source}: {exc.message}") from exc

    @classmethod
    def from_file(cls, path: str | Path) -> PolicySettings:
        """Read a settings file, or raise :class:`PolicyLoadError` naming the file."""
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise PolicyLoadError(f"{path}: cannot read settings: {exc.strerror}") from exc
        return cls.from_json(raw, source=str(path))
