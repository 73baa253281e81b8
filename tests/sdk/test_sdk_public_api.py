"""The public surface of the SDK is pinned, so an accidental export is noticed; and the SDK never
imports the server (DESIGN.md, "Layers")."""

from __future__ import annotations

import subprocess
import sys

import authchain.sdk as sdk


def test_sdk_package_exports() -> None:
    assert sorted(sdk.__all__) == [
        "AgentAuth",
        "AsyncAuthorityClient",
        "AuthchainMiddleware",
        "AuthorityClient",
        "AuthorityMetadata",
        "DeadReport",
        "Outbox",
        "OutboxSender",
        "TaskToken",
        "TraceContext",
        "VerifiedCall",
        "current_trace",
        "describe_action",
        "execute_tool",
        "invoke_agent",
        "requires_scope",
        "use_trace",
    ]


def test_sdk_does_not_import_the_server() -> None:
    code = "import sys, authchain.sdk; print(any(m.startswith('authchain.server') for m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
