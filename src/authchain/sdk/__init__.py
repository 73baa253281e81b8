"""What agents and tools import (docs/architecture.md): they talk to the authority over HTTP.

- Agents: :class:`AgentAuth` (an ``httpx`` auth that presents the held task token with a fresh DPoP
  proof, starts tasks and delegates) over :class:`AuthorityClient` / :class:`AsyncAuthorityClient`.
- Tools: :class:`AuthchainMiddleware` (ASGI: offline verification, scope enforcement with
  :func:`requires_scope`, action reports through a durable :class:`Outbox`, refusals summarised by
  :class:`RefusalSummaries`).
- Tracing: W3C ``traceparent`` propagation and, with OpenTelemetry installed, ``invoke_agent`` /
  ``execute_tool`` spans.
"""

from __future__ import annotations

from authchain.sdk.auth import AgentAuth
from authchain.sdk.client import (
    AsyncAuthorityClient,
    AuthorityClient,
    AuthorityMetadata,
    TaskToken,
)
from authchain.sdk.middleware import (
    AuthchainMiddleware,
    VerifiedCall,
    describe_action,
    requires_scope,
)
from authchain.sdk.outbox import DeadReport, Outbox, OutboxSender
from authchain.sdk.refusals import RefusalSummaries
from authchain.sdk.tracing import TraceContext, current_trace, execute_tool, invoke_agent, use_trace

__all__ = [
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
