"""The public surface of the authority and the attribution engine: an accidental export (or a
removal) shows up here."""

from __future__ import annotations

import authchain.attribution as attribution
import authchain.authority as authority
import authchain.demo as demo


def test_attribution_exports_exactly_its_public_names() -> None:
    assert sorted(attribution.__all__) == [
        "ChainEntry",
        "FINDING_CATALOGUE",
        "Finding",
        "Frameworks",
        "Report",
        "Severity",
        "findings",
        "trace",
    ]
    for name in attribution.__all__:
        assert hasattr(attribution, name)


def test_authority_exports_exactly_its_public_names() -> None:
    assert sorted(authority.__all__) == [
        "Authority",
        "IssuedToken",
    ]
    assert sorted(demo.__all__) == ["DemoOutcome", "DemoWorkload", "run_demo"]


def test_the_catalogue_holds_every_finding_of_issue_5() -> None:
    required = {
        "UNATTRIBUTED_ACTION",
        "SHARED_IDENTITY",
        "TOKEN_REPLAY",
        "SCOPE_ESCALATION",
        "EXPIRED_OR_REVOKED_AUTHORITY",
        "CHAIN_GAP",
        "AUTONOMOUS_ACTION",
        "LOG_INTEGRITY",
    }
    assert required <= set(attribution.FINDING_CATALOGUE)
    for code, entry in attribution.FINDING_CATALOGUE.items():
        frameworks = entry.frameworks
        assert frameworks.owasp_asi and frameworks.owasp_threats and frameworks.maestro, code
        assert frameworks.nist_ai_rmf, code
