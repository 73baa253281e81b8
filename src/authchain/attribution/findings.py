"""Findings: what the attribution engine flags, with stable codes and framework references.

Each code is part of the public contract (investigators write runbooks against them). The framework
references say where each finding sits in the taxonomies security teams already report against:

- OWASP Top 10 for Agentic Applications (2026): ASI01 Agent Goal Hijack, ASI02 Tool Misuse and
  Exploitation, ASI03 Identity and Privilege Abuse, ASI04 Agentic Supply Chain Vulnerabilities,
  ASI05 Unexpected Code Execution, ASI06 Memory and Context Poisoning, ASI07 Insecure Inter-Agent
  Communication, ASI08 Cascading Failures, ASI09 Human-Agent Trust Exploitation, ASI10 Rogue Agents.
- OWASP Agentic AI Threats and Mitigations (T1..T17): T2 Tool Misuse, T3 Privilege Compromise,
  T8 Repudiation and Untraceability, T9 Identity Spoofing and Impersonation, T13 Rogue Agents in
  Multi-Agent Systems, among others.
- CSA MAESTRO layers: L3 Agent Frameworks, L4 Deployment and Infrastructure, L5 Evaluation and
  Observability, L6 Security and Compliance, L7 Agent Ecosystem.
- MITRE ATLAS techniques where one fits: AML.T0012 Valid Accounts, AML.T0053 AI Agent Tool Invocation.
- NIST AI RMF 1.0 functions: GOVERN, MAP, MEASURE, MANAGE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

__all__ = ["Severity", "Frameworks", "Finding", "FINDING_CATALOGUE", "make_finding"]


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Frameworks:
    owasp_asi: tuple[str, ...]
    owasp_threats: tuple[str, ...]
    maestro: tuple[str, ...]
    atlas: tuple[str, ...]
    nist_ai_rmf: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "owasp_asi": list(self.owasp_asi),
            "owasp_agentic_threats": list(self.owasp_threats),
            "csa_maestro": list(self.maestro),
            "mitre_atlas": list(self.atlas),
            "nist_ai_rmf": list(self.nist_ai_rmf),
        }


@dataclass(frozen=True, slots=True)
class _Entry:
    severity: Severity
    title: str
    frameworks: Frameworks


@dataclass(frozen=True, slots=True)
class Finding:
    """One flagged fact, with the log indexes that prove it."""

    code: str
    severity: Severity
    message: str
    evidence: tuple[int, ...]
    frameworks: Frameworks
    txn: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "evidence": list(self.evidence),
            "frameworks": self.frameworks.to_dict(),
        }
        if self.txn is not None:
            out["task"] = self.txn
        return out


FINDING_CATALOGUE: Final[dict[str, _Entry]] = {
    "UNATTRIBUTED_ACTION": _Entry(
        Severity.HIGH,
        "action with no verifiable task token",
        Frameworks(
            ("ASI03", "ASI02"), ("T8", "T2"), ("L6", "L4"), ("AML.T0053",), ("MANAGE", "MEASURE")
        ),
    ),
    "SHARED_IDENTITY": _Entry(
        Severity.HIGH,
        "one identity acting for several initiators without per-task chains",
        Frameworks(("ASI03",), ("T3", "T8", "T9"), ("L6", "L7"), ("AML.T0012",), ("GOVERN", "MAP")),
    ),
    "TOKEN_REPLAY": _Entry(
        Severity.CRITICAL,
        "token presented by a key it is not bound to, or a proof reused",
        Frameworks(("ASI03", "ASI07"), ("T9", "T3"), ("L7", "L6"), ("AML.T0012",), ("MANAGE",)),
    ),
    "SCOPE_ESCALATION": _Entry(
        Severity.HIGH,
        "a hop asked for more authority than its holder had",
        Frameworks(("ASI03", "ASI10"), ("T3", "T13"), ("L3", "L7"), ("AML.T0053",), ("MANAGE",)),
    ),
    "EXPIRED_OR_REVOKED_AUTHORITY": _Entry(
        Severity.MEDIUM,
        "authority used after expiry, task end or revocation",
        Frameworks(("ASI03", "ASI10"), ("T3", "T9"), ("L6",), ("AML.T0012",), ("MANAGE",)),
    ),
    "CHAIN_GAP": _Entry(
        Severity.HIGH,
        "a token whose issuance (or whose parent's issuance) is not in the log",
        Frameworks(("ASI03", "ASI07"), ("T8", "T9"), ("L5", "L6"), (), ("MEASURE", "GOVERN")),
    ),
    "AUTONOMOUS_ACTION": _Entry(
        Severity.INFO,
        "a task with no human initiator",
        Frameworks(("ASI10", "ASI09"), ("T7", "T13"), ("L3", "L7"), (), ("GOVERN", "MAP")),
    ),
    "FORGED_TOKEN": _Entry(
        Severity.CRITICAL,
        "a token signed with the authority's key that its issuance entry did not issue",
        Frameworks(
            ("ASI03", "ASI07"), ("T9", "T3", "T8"), ("L6", "L7"), ("AML.T0012",), ("MANAGE",)
        ),
    ),
    "LOG_INTEGRITY": _Entry(
        Severity.CRITICAL,
        "the audit log does not verify",
        Frameworks(("ASI08",), ("T8",), ("L5", "L6"), (), ("MEASURE", "MANAGE")),
    ),
    "POLICY_DENIED": _Entry(
        Severity.LOW,
        "a request refused by policy",
        Frameworks(("ASI03",), ("T3",), ("L6",), (), ("MANAGE",)),
    ),
}


def make_finding(
    code: str,
    message: str,
    evidence: tuple[int, ...] | list[int],
    *,
    txn: str | None = None,
    attrs: dict[str, Any] | None = None,
) -> Finding:
    entry = FINDING_CATALOGUE[code]
    return Finding(
        code=code,
        severity=entry.severity,
        message=message,
        evidence=tuple(sorted(set(evidence))),
        frameworks=entry.frameworks,
        txn=txn,
        attrs=attrs or {},
    )
