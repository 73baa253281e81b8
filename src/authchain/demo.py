"""The built-in multi-agent scenario behind ``authchain demo``.

Alice asks a planner agent to update ACME's CRM record with this quarter's research. The planner
delegates to a research agent (read-only research) and to a CRM agent (CRM read and write). The CRM
agent hands the write to a CRM updater tool, which acts onward under its own service identity: it
receives its own task token through a hop and presents it to the CRM API. Along the way:

- the research agent asks for `crm:write`, which it does not hold: denied, and the denial recorded;
- a legacy sync job writes to the CRM through a shared service account with no token, for Alice and
  for Bob: recorded as unattributed, and flagged as a shared identity;
- the research agent replays the CRM agent's token with its own key: refused by the CRM API, and the
  refusal recorded.

Everything runs in process against a real store; every token is really signed and verified, every
proof really made, every decision really taken by the Cedar policy pack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authchain.attribution import Report, findings, trace
from authchain.attribution.findings import Finding
from authchain.audit.store import LogStore
from authchain.authority import Authority, IssuedToken
from authchain.errors import AuthchainError
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import create_proof
from authchain.tokens.id_token import LocalIdentityProvider
from authchain.tokens.presentation import verify_presentation
from authchain.tokens.replay import ReplayCache

__all__ = ["DemoOutcome", "DemoWorkload", "run_demo"]

TRUST_DOMAIN = "example.org"
AUTHORITY = "https://authority.example.org"
CRM_API = "https://crm.example.org/api/accounts/acme"


@dataclass(frozen=True, slots=True)
class DemoWorkload:
    id: str
    kind: str
    scopes: tuple[str, ...]
    key: SigningKey = field(default_factory=SigningKey.generate)


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What the scenario did: the final action's report, all findings, and the steps taken."""

    final_index: int
    report: Report
    findings: tuple[Finding, ...]
    steps: tuple[dict[str, Any], ...]
    log: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "log": self.log,
        }


class _CrmApi:
    """The CRM API as a resource server: verifies presentations offline, acts, reports."""

    def __init__(self, authority: Authority, identity: DemoWorkload) -> None:
        self.authority = authority
        self.identity = identity
        self.replay = ReplayCache()

    def call(
        self,
        token: str | None,
        proof: str | None,
        *,
        presenter: str,
        action: str,
        now: int,
        claimed_initiator: str | None = None,
    ) -> int:
        if token is None:
            # The legacy path: a shared service account, no task token. The API still acts (that
            # is the legacy behaviour being exposed) and the action is recorded as unattributed.
            return self.authority.record_action(
                executor=self.identity.id,
                action=action,
                resource="crm://accounts/acme",
                presenter=presenter,
                claimed_initiator=claimed_initiator,
                htm="PATCH",
                htu=CRM_API,
            )
        refusal: str | None = None
        try:
            verify_presentation(
                token,
                proof or "",
                htm="PATCH",
                htu=CRM_API,
                trust=self.authority.trust,
                audience=TRUST_DOMAIN,
                now=now,
                replay_cache=self.replay,
                required_scope=("crm:write",),
            )
        except AuthchainError as exc:
            refusal = exc.code  # refused here, and the refusal reported: denials are evidence
        return self.authority.record_action(
            executor=self.identity.id,
            action=action,
            resource="crm://accounts/acme",
            token=token,
            proof=proof,
            htm="PATCH",
            htu=CRM_API,
            presenter=presenter,
            refusal=refusal,
            outcome="refused" if refusal else "succeeded",
        )


def run_demo(store: LogStore, *, clock: Callable[[], float] = time.time) -> DemoOutcome:
    """Run the scenario on ``store`` and return the final action's report and all findings."""
    authority = Authority(store, issuer=AUTHORITY, trust_domain=TRUST_DOMAIN, clock=clock)
    idp = LocalIdentityProvider("https://idp.example.org")
    authority.trust_issuer(idp.issuer, idp.jwks)
    authority.register_principal(
        "alice@example.org", kind="user", scopes=["research:read", "crm:read", "crm:write"]
    )
    authority.register_principal("bob@example.org", kind="user", scopes=["crm:read", "crm:write"])

    planner = DemoWorkload(
        "spiffe://example.org/agent/planner", "agent", ("research:read", "crm:read", "crm:write")
    )
    research = DemoWorkload("spiffe://example.org/agent/research", "agent", ("research:read",))
    crm_agent = DemoWorkload("spiffe://example.org/agent/crm", "agent", ("crm:read", "crm:write"))
    updater = DemoWorkload("spiffe://example.org/tool/crm-updater", "tool", ("crm:write",))
    crm_api = DemoWorkload("spiffe://example.org/service/crm-api", "service", ("crm:write",))
    legacy = DemoWorkload("spiffe://example.org/service/legacy-sync", "service", ("crm:write",))
    for w in (planner, research, crm_agent, updater, crm_api, legacy):
        authority.register_workload(
            w.id,
            kind=w.kind,
            jwk=w.key.public.to_jwk(),
            scopes=w.scopes,
            endpoints=["https://crm.example.org"] if w is crm_api else (),
        )

    api = _CrmApi(authority, crm_api)
    steps: list[dict[str, Any]] = []

    def token_proof(w: DemoWorkload) -> str:
        return create_proof(w.key, htm="POST", htu=authority.token_endpoint, now=authority.now())

    def hop(holder: DemoWorkload, token: IssuedToken, to: DemoWorkload, scope: str) -> IssuedToken:
        issued = authority.exchange(
            subject_token=token.access_token,
            dpop_proof=token_proof(holder),
            audience=to.id,
            scope=scope,
        )
        steps.append(
            {"step": f"{holder.id} delegates `{scope}` to {to.id}", "index": issued.log_index}
        )
        return issued

    # 1. Alice asks the planner; the planner starts the task with her ID token.
    id_token = idp.issue("alice@example.org", audience=authority.issuer, now=authority.now())
    root = authority.start_task(
        subject_token=id_token,
        dpop_proof=token_proof(planner),
        scope="research:read crm:read crm:write",
        request_details={"purpose": "update ACME's CRM record with this quarter's research"},
    )
    steps.append(
        {"step": "alice@example.org starts a task with the planner", "index": root.log_index}
    )

    # 2. The planner delegates narrower authority to the research and CRM agents.
    t_research = hop(planner, root, research, "research:read")
    t_crm = hop(planner, root, crm_agent, "crm:read crm:write")

    # 3. The research agent tries to escalate to crm:write: denied, and the denial recorded.
    try:
        hop(research, t_research, updater, "crm:write")
    except AuthchainError as exc:
        steps.append(
            {
                "step": f"research agent asks for crm:write: refused ({exc.code})",
                "index": exc.log_index,
            }
        )

    # 4. A legacy sync job writes through a shared service account with no token, for two users.
    for user in ("alice@example.org", "bob@example.org"):
        index = api.call(
            None,
            None,
            presenter=legacy.id,
            action="crm.bulk_sync",
            now=authority.now(),
            claimed_initiator=user,
        )
        steps.append({"step": f"legacy-sync writes for {user} with no token", "index": index})

    # 5. The research agent replays the CRM agent's token with its own key: refused by the API.
    replay_proof = create_proof(
        research.key, htm="PATCH", htu=CRM_API, now=authority.now(), access_token=t_crm.access_token
    )
    index = api.call(
        t_crm.access_token,
        replay_proof,
        presenter=research.id,
        action="crm.update_account",
        now=authority.now(),
    )
    steps.append({"step": "research agent replays the CRM agent's token", "index": index})

    # 6. The CRM agent hands the write to the updater tool, which acts under its own identity.
    t_tool = hop(crm_agent, t_crm, updater, "crm:write")
    proof = create_proof(
        updater.key, htm="PATCH", htu=CRM_API, now=authority.now(), access_token=t_tool.access_token
    )
    final = api.call(
        t_tool.access_token,
        proof,
        presenter=updater.id,
        action="crm.update_account",
        now=authority.now(),
    )
    steps.append({"step": "crm-updater updates ACME's record through the CRM API", "index": final})

    report = trace(store, index=final)
    all_findings = findings(store)
    checkpoint = store.latest_checkpoint()
    log = {
        "size": checkpoint.size if checkpoint else 0,
        "root": checkpoint.root_hash.hex() if checkpoint else None,
        "checkpoint": checkpoint.text if checkpoint else None,
        "verifier_key": store.verifier_key(),
    }
    return DemoOutcome(final, report, tuple(all_findings), tuple(steps), log)
