"""Request-time policy with Cedar (docs/policy.md).

Every task start, hop and invocation is decided by a :class:`PolicyEngine` when it is requested.
Each :class:`Decision` names its determining policies, their reasons, any evaluation errors, and
the hash of the exact policy set that made it.
"""

from __future__ import annotations

from authchain.policy.decision import (
    DENY_BY_DEFAULT_REASON,
    FAIL_CLOSED_REASON,
    Decision,
    Effect,
)
from authchain.policy.engine import (
    POLICY_SET_HASH_FORMAT,
    SCHEMA_FILE,
    PolicyEngine,
    PolicyInfo,
    default_policy_directory,
    schema_text,
)
from authchain.policy.request import Action, Kind, Party, PolicyRequest
from authchain.policy.settings import SETTINGS_FILE, PolicySettings

__all__ = [
    "Action",
    "DENY_BY_DEFAULT_REASON",
    "Decision",
    "Effect",
    "FAIL_CLOSED_REASON",
    "Kind",
    "POLICY_SET_HASH_FORMAT",
    "Party",
    "PolicyEngine",
    "PolicyInfo",
    "PolicyRequest",
    "PolicySettings",
    "SCHEMA_FILE",
    "SETTINGS_FILE",
    "default_policy_directory",
    "schema_text",
]
