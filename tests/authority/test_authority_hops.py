"""The authority's exchange and task start (issue 5, "Deliver" 1): what it signs, what it records,
what it refuses (and records), and that it fails closed when the log cannot record."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
from _authority_world import (
    ALICE,
    CRM_AGENT,
    ISSUER,
    PLANNER,
    RAW_JWT,
    RESEARCH,
    TRUST_DOMAIN,
    UPDATER,
    Clock,
    World,
)

import authchain.authority.keys as signing_module
from authchain._encoding import sha256_b64url
from authchain.audit.events import AuditEvent
from authchain.audit.store import Claim, LogStore
from authchain.authority import Authority
from authchain.errors import (
    DPoPError,
    InvalidTargetError,
    KeyBindingError,
    PolicyDenied,
    ScopeEscalationError,
    StorageError,
    UntrustedIssuerError,
)
from authchain.identity.keys import SigningKey
from authchain.policy import PolicyEngine
from authchain.tokens.dpop import create_proof
from authchain.tokens.id_token import LocalIdentityProvider
from authchain.tokens.task_token import verify_task_token
from authchain.tracecontext import TraceContext

# --------------------------------------------------------------------------------------------------
# What a hop signs and records.


def test_task_start_records_the_initiator_then_signs_a_token_bound_to_the_first_actor(
    world: World, policy: PolicyEngine
) -> None:
    root = world.start(scope="crm:read crm:write", purpose="update ACME")
    c = verify_task_token(
        root.access_token, trust=world.authority.trust, audience=TRUST_DOMAIN, now=world.now
    ).claims
    assert (c.iss, c.aud, c.sub, c.chain, c.scope) == (
        ISSUER,
        TRUST_DOMAIN,
        ALICE,
        (PLANNER,),
        ("crm:read", "crm:write"),
    )
    assert c.cnf_jkt == world.key(PLANNER).public.kid
    assert c.prev is None
    assert c.log == root.log_index
    assert c.tctx["purpose"] == "update ACME"
    assert c.authz == {
        "id": root.decision.id,
        "policies": ["start-task-granted-scopes"],
        "policy_set_hash": policy.policy_set_hash,
    }

    event = world.store.get(root.log_index)
    assert (event.kind, event.txn, event.initiator, event.actor) == (
        "task.started",
        c.txn,
        ALICE,
        PLANNER,
    )
    assert event.chain == (PLANNER,)
    assert event.outcome == "allowed"
    assert event.decision == root.decision.to_dict()
    started = world.record(root.log_index)
    assert (started.jti, started.exp, started.depth) == (c.jti, c.exp, 1)
    assert started.initiator_kind == "user"
    assert started.assertion_issuer == world.idp.issuer
    assert started.reported is None
    # The ID token is evidence by its hash only.
    assert event.parent_token is not None and len(event.parent_token) == 43


def test_hop_narrows_scope_binds_the_next_actor_and_records_its_lineage(world: World) -> None:
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:write")
    c = verify_task_token(
        crm.access_token, trust=world.authority.trust, audience=TRUST_DOMAIN, now=world.now
    ).claims
    assert c.chain == (PLANNER, CRM_AGENT)
    assert c.scope == ("crm:write",)
    assert c.cnf_jkt == world.key(CRM_AGENT).public.kid
    assert c.prev == root.token_hash == sha256_b64url(root.access_token)
    assert (c.txn, c.sub) == (root.txn, ALICE)
    assert c.exp <= root.claims.exp
    assert c.log == crm.log_index and c.authz is not None and c.authz["id"] == crm.decision.id

    event = world.store.get(crm.log_index)
    assert (event.kind, event.actor, event.resource) == ("hop.granted", PLANNER, CRM_AGENT)
    assert (event.txn, event.initiator, event.chain) == (root.txn, ALICE, (PLANNER, CRM_AGENT))
    assert event.parent_token == root.token_hash
    assert event.scope == ("crm:write",)
    assert event.decision == crm.decision.to_dict()
    assert event.decision["policies"] == ["delegate-held-scopes"]
    assert event.detail == {
        "parent_jti": root.claims.jti,
        "parent_log": root.log_index,
        "jti": c.jti,
        "exp": c.exp,
        "depth": 2,
    }
    assert event.reported is None


def test_events_carry_the_callers_trace_context(world: World) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    root = world.start(traceparent=traceparent)
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read", traceparent=traceparent)
    for index in (root.log_index, crm.log_index):
        event = world.store.get(index)
        assert event.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert event.span_id is not None and event.span_id != "00f067aa0ba902b7"
    # A malformed header starts a new trace rather than being copied into the log.
    other = world.hop(PLANNER, root, RESEARCH, "research:read", traceparent="00-zz-yy-01")
    event = world.store.get(other.log_index)
    assert event.trace_id is not None and event.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"
    assert TraceContext.from_traceparent("ff-" + traceparent[3:]).trace_id != traceparent[3:35]


def test_every_event_carries_trace_ids_and_no_raw_token_reaches_the_log(world: World) -> None:
    # A busy task: hops, a denial, an action, a replay, an unattributed action and a revocation.
    root, crm, tool, _ = world.clean_task()
    research = world.hop(PLANNER, root, RESEARCH, "research:read")
    with pytest.raises(ScopeEscalationError):
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    world.act(RESEARCH, tool, proof=world.api_proof(RESEARCH, tool.access_token))
    world.act(UPDATER, None, claimed_initiator=ALICE)
    world.authority.revoke(token_hash=crm.token_hash, reason="done")
    world.act(UPDATER, tool)

    secrets = world.secrets
    assert len(secrets) >= 10
    for entry in world.store.raw_entries(0, world.store.size()):
        assert RAW_JWT.search(entry.leaf) is None, entry.index
        for secret in secrets:
            for segment in secret.split("."):
                assert segment.encode() not in entry.leaf, entry.index
        event = entry.event()
        assert event.trace_id and event.span_id, entry.index


# --------------------------------------------------------------------------------------------------
# Refusals: each raised with the index of the entry that records it.


def test_scope_escalation_is_denied_and_recorded(world: World) -> None:
    root = world.start()
    research = world.hop(PLANNER, root, RESEARCH, "research:read")
    size = world.store.size()
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    index = caught.value.log_index
    assert index == size  # recorded, and nothing else was
    assert world.store.size() == size + 1

    denied = world.store.get(index)
    assert denied.kind == "hop.denied"
    assert denied.outcome == "denied"
    assert (denied.actor, denied.resource, denied.scope) == (RESEARCH, UPDATER, ("crm:write",))
    assert (denied.txn, denied.initiator) == (root.txn, ALICE)
    assert denied.parent_token == research.token_hash
    assert denied.decision is None  # the hop rules refused it before policy was asked
    record = world.record(index)
    assert (record.error, record.input) == ("scope_escalation", "scope")
    assert record.held_scope == ("research:read",)
    assert (record.parent_jti, record.parent_log) == (research.claims.jti, research.log_index)
    assert "crm:write" in record.reason
    assert "hop.granted" not in [e.kind for i, e in world.events() if i >= size]


def test_delegating_with_another_actors_key_is_refused_and_recorded(world: World) -> None:
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    with pytest.raises(KeyBindingError) as caught:
        world.hop(RESEARCH, crm, UPDATER, "crm:read")
    denied = world.store.get(caught.value.log_index)
    assert (denied.kind, denied.actor) == ("hop.denied", RESEARCH)
    assert world.record(caught.value.log_index).error == "key_binding_mismatch"


def test_sensitive_scope_without_human_approval_is_denied_by_policy_and_recorded(
    world: World, policy: PolicyEngine
) -> None:
    with pytest.raises(PolicyDenied) as caught:
        world.start(scope="crm:delete")
    denied = world.store.get(caught.value.log_index)
    assert (denied.kind, denied.outcome, denied.initiator) == ("task.denied", "denied", ALICE)
    assert denied.decision is not None
    assert denied.decision["effect"] == "deny"
    assert denied.decision["policies"] == ["sensitive-scope-needs-approval"]
    assert denied.decision["reasons"] == [
        "a scope marked sensitive needs a recorded human approval"
    ]
    assert denied.decision["policy_set_hash"] == policy.policy_set_hash
    assert world.record(caught.value.log_index).error == "policy_denied"

    approved = world.start(scope="crm:delete", human_approval=True)
    assert approved.decision.allowed
    # The approval the decision relied on is recorded with it; the denial recorded none.
    assert world.record(approved.log_index).human_approval is True
    assert world.record(caught.value.log_index).human_approval is None
    with pytest.raises(PolicyDenied) as at_hop:
        world.hop(PLANNER, approved, CRM_AGENT, "crm:delete")  # the hop needs its own approval
    hop_denied = world.store.get(at_hop.value.log_index)
    assert hop_denied.kind == "hop.denied"
    assert hop_denied.decision is not None
    assert hop_denied.decision["policies"] == ["sensitive-scope-needs-approval"]
    granted = world.hop(PLANNER, approved, CRM_AGENT, "crm:delete", human_approval=True)
    assert world.record(granted.log_index).human_approval is True


def test_scope_not_granted_to_the_initiator_is_denied_by_policy(world: World) -> None:
    with pytest.raises(PolicyDenied) as caught:
        world.start(initiator="bob@example.org", scope="research:read")
    denied = world.store.get(caught.value.log_index)
    assert denied.decision is not None
    assert denied.decision["policies"] == ["start-task-ungranted-scopes"]


def test_delegation_to_an_unregistered_audience_is_refused_and_recorded(world: World) -> None:
    root = world.start()
    ghost = "spiffe://example.org/agent/ghost"
    with pytest.raises(InvalidTargetError) as caught:
        world.hop(PLANNER, root, ghost, "crm:read")
    denied = world.store.get(caught.value.log_index)
    assert (denied.kind, denied.actor, denied.resource) == ("hop.denied", PLANNER, ghost)
    assert world.record(caught.value.log_index).error == "invalid_target"


def test_proof_by_an_unregistered_key_is_refused_and_recorded(world: World) -> None:
    stranger = SigningKey.generate()
    proof = create_proof(stranger, htm="POST", htu=world.authority.token_endpoint, now=world.now)
    with pytest.raises(DPoPError) as caught:
        world.authority.start_task(
            subject_token=world.id_token(), dpop_proof=proof, scope="crm:read"
        )
    denied = world.store.get(caught.value.log_index)
    assert denied.kind == "task.denied"
    assert denied.actor is None  # nobody registered made the request


def test_id_token_from_an_untrusted_issuer_is_refused_and_recorded(world: World) -> None:
    rogue = LocalIdentityProvider("https://rogue.example.net")
    id_token = rogue.issue(ALICE, audience=ISSUER, now=world.now)
    with pytest.raises(UntrustedIssuerError) as caught:
        world.authority.start_task(
            subject_token=id_token, dpop_proof=world.token_proof(PLANNER), scope="crm:read"
        )
    denied = world.store.get(caught.value.log_index)
    assert (denied.kind, denied.actor) == ("task.denied", PLANNER)
    assert denied.initiator is None  # an unverified subject is never recorded as the initiator
    assert world.record(caught.value.log_index).error == "untrusted_issuer"


# --------------------------------------------------------------------------------------------------
# Fail closed.


class FailingStore:
    """A real store whose appends can be made to fail, as a full disk or a lost database would."""

    def __init__(self, inner: LogStore) -> None:
        self.inner = inner
        self.failing = False

    def append(self, event: AuditEvent, *, once: Sequence[Claim] = ()) -> int:
        if self.failing:
            raise StorageError("audit log write failed: disk I/O error")
        return self.inner.append(event, once=once)

    def append_many(self, events: Sequence[AuditEvent]) -> list[int]:
        if self.failing:
            raise StorageError("audit log write failed: disk I/O error")
        return self.inner.append_many(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def failing(store: LogStore, policy: PolicyEngine, monkeypatch: pytest.MonkeyPatch) -> Any:
    wrapper = FailingStore(store)
    clock = Clock()
    authority = Authority(
        wrapper,  # type: ignore[arg-type]
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        policy=policy,
        clock=clock,
    )
    world = World(store, clock=clock, authority=authority)
    world.authority.trust_issuer(world.idp.issuer, world.idp.jwks)
    world.authority.register_principal(ALICE, scopes=["crm:read", "crm:write"])
    for actor, kind in ((PLANNER, "agent"), (CRM_AGENT, "agent")):
        world.add_workload(actor, kind, ("crm:read", "crm:write"))
    minted: list[str] = []
    real_mint = signing_module.mint_task_token

    def counting_mint(*args: Any, **kwargs: Any) -> str:
        token = real_mint(*args, **kwargs)
        minted.append(token)
        return token

    monkeypatch.setattr(signing_module, "mint_task_token", counting_mint)
    return world, wrapper, minted


def test_task_start_issues_nothing_when_the_log_cannot_record(failing: Any) -> None:
    world, wrapper, minted = failing
    size = world.store.size()
    wrapper.failing = True
    with pytest.raises(StorageError):
        world.start(scope="crm:read")
    assert minted == []  # nothing was signed
    assert world.store.size() == size  # and nothing was half-recorded

    wrapper.failing = False
    world.start(scope="crm:read")
    assert len(minted) == 1


def test_hop_issues_nothing_when_the_log_cannot_record(failing: Any) -> None:
    world, wrapper, minted = failing
    root = world.start(scope="crm:read crm:write")
    size = world.store.size()
    wrapper.failing = True
    with pytest.raises(StorageError):
        world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    assert len(minted) == 1 and world.store.size() == size
    # A refusal that cannot be recorded is not silently dropped either: the caller learns that
    # the log failed rather than getting the refusal as if it were evidence.
    with pytest.raises(StorageError):
        world.hop(PLANNER, root, CRM_AGENT, "crm:admin")
    assert world.store.size() == size

    wrapper.failing = False
    world.hop(PLANNER, root, CRM_AGENT, "crm:read")
    assert len(minted) == 2


# --------------------------------------------------------------------------------------------------
# Concurrency.


def test_concurrent_hops_each_get_their_own_durable_entry(world: World) -> None:
    roots = [world.start() for _ in range(4)]
    results: list[list[int]] = [[] for _ in roots]
    errors: list[BaseException] = []

    def delegate(n: int) -> None:
        try:
            for _ in range(10):
                issued = world.hop(PLANNER, roots[n], CRM_AGENT, "crm:read")
                results[n].append(issued.log_index)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=delegate, args=(n,)) for n in range(len(roots))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    indexes = [i for r in results for i in r]
    assert len(indexes) == len(set(indexes)) == 40
    for n, root in enumerate(roots):
        for index in results[n]:
            event = world.store.get(index)
            assert (event.kind, event.txn) == ("hop.granted", root.txn)
    assert world.store.verify().size == world.store.size()
