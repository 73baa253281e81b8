"""Request-time policy with Cedar (docs/policy.md).

Every task start, hop and invocation is decided by a :class:`PolicyEngine` when it is requested.
Each :class:`Decision` names its determining policies, their reasons, any evaluation errors, and
the hash of the exact policy set that made it.
"""

from __future__ import annotations

from authchain.policy.decision import Decision, Effect
from authchain.policy.engine import PolicyEngine, PolicyInfo, default_policy_directory, schema_text
from authchain.policy.request import Action, Party, PolicyRequest
from authchain.policy.settings import PolicySettings

__all__ = [
    "Action",
    "Decision",
    "Effect",
    "Party",
    "PolicyEngine",
    "PolicyInfo",
    "PolicyRequest",
    "PolicySettings",
    "default_policy_directory",
    "schema_text",
]
