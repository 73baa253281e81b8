"""The public surface of the SDK is pinned, so an accidental export is noticed; and the SDK never
imports the server, nor the authority and what only it needs (DESIGN.md, "Layers"): a tool service
that verifies tokens loads the token code and nothing heavier."""

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
        "RefusalSummaries",
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


def test_sdk_loads_no_authority_policy_engine_cedarpy_or_store() -> None:
    code = (
        "import authchain.sdk, sys; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'cedarpy' "
        "or m.startswith(('authchain.authority', 'authchain.policy', 'authchain.audit.store'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    # The check above would pass vacuously if the probe could not see imports at all.
    probe = "import authchain.sdk, sys; print('authchain.tokens.presentation' in sys.modules)"
    seen = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert seen.stdout.strip() == "True"
