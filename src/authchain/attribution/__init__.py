"""Attribution: from the log alone, who initiated an action, which identity executed it, and what
allowed each delegation."""

from __future__ import annotations

from authchain.attribution.findings import FINDING_CATALOGUE, Finding, Frameworks, Severity
from authchain.attribution.scan import findings
from authchain.attribution.trace import ChainEntry, Report, trace

__all__ = [
    "FINDING_CATALOGUE",
    "ChainEntry",
    "Finding",
    "Frameworks",
    "Report",
    "Severity",
    "findings",
    "trace",
]
