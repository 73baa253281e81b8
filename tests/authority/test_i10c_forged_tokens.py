"""Twin tokens: a thief holding the authority's signing key mints a token that names a real issuance
entry (its ``jti`` and ``log``) but claims more than that entry issued. Every signature verifies, so
only the log can tell: ``trace`` and ``findings`` compare each token they walk with its issuance and
flag the difference as ``FORGED_TOKEN`` (critical, and the trace is broken).

The thief here is a registered workload with its own valid key, playing through the real authority;
its only extra is the stolen token-signing key."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from _authority_world import (
    ALICE,
    BOB,
    CRM_AGENT,
    ISSUER,
    PLANNER,
    RESEARCH,
    TRUST_DOMAIN,
    UPDATER,
    WORKLOADS,
    Clock,
    World,
)

from authchain.attribution import FINDING_CATALOGUE, Severity, findings, trace
from authchain.audit.store import LogStore
from authchain.authority import Authority, IssuedToken
from authchain.identity.keys import SigningKey
from authchain.policy import PolicyEngine
from authchain.tokens.claims import act_from_chain
from authchain.tokens.task_token import mint_task_token

STOLEN = SigningKey.generate()


@pytest.fixture
def world(store: LogStore, policy: PolicyEngine, clock: Clock) -> Iterator[World]:
    """The usual world, but the authority signs with a key the test holds: the stolen one."""
    authority = Authority(
        store,
        issuer=ISSUER,
        trust_domain=TRUST_DOMAIN,
        policy=policy,
        clock=clock,
        signing_key=STOLEN,
    )
    world = World(store, policy=policy, clock=clock, authority=authority)
    a = world.authority
    a.trust_issuer(world.idp.issuer, world.idp.jwks)
    a.register_principal(
        ALICE, kind="user", scopes=["research:read", "crm:read", "crm:write", "crm:delete"]
    )
    a.register_principal(BOB, kind="user", scopes=["crm:read", "crm:write"])
    for spiffe_id, kind, scopes in WORKLOADS:
        world.add_workload(spiffe_id, kind, scopes)
    yield world


def _twin(world: World, of: IssuedToken, **claims: Any) -> str:
    """A token with ``of``'s jti and log, and ``claims`` changed, signed with the stolen key."""
    holder = claims.pop("holder", None)
    changed = dataclasses.replace(of.claims, **claims)
    if holder is not None:
        chain = (*of.claims.chain[:-1], holder)
        changed = dataclasses.replace(
            changed, act=act_from_chain(chain), cnf_jkt=world.key(holder).public.thumbprint
        )
    token = mint_task_token(changed, STOLEN)
    world.secrets.append(token)
    return token


def _codes(items: Any) -> list[str]:
    return [f.code for f in items]


def test_forged_token_is_a_critical_breaking_finding_in_the_catalogue() -> None:
    entry = FINDING_CATALOGUE["FORGED_TOKEN"]
    assert entry.severity is Severity.CRITICAL
    assert entry.frameworks.owasp_asi and entry.frameworks.nist_ai_rmf


def test_twin_token_with_a_wider_scope_is_a_forged_token_in_trace_and_findings(
    world: World,
) -> None:
    _, _, tool, _ = world.clean_task()
    # The tool's token said crm:write; its twin says crm:write crm:delete.
    twin = _twin(world, tool, scope=("crm:write", "crm:delete"))
    index = world.act(UPDATER, twin, action="crm.delete_account")
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    forged = [f for f in report.findings if f.code == "FORGED_TOKEN"]
    assert len(forged) == 1
    assert forged[0].evidence == (tool.log_index, index)
    assert "scope is `crm:write crm:delete` but the log issued `crm:write`" in forged[0].message
    assert f"(jti {tool.claims.jti})" in forged[0].message
    assert ("FORGED_TOKEN", [tool.log_index, index]) in [
        (f.code, list(f.evidence)) for f in findings(world.store)
    ]


def test_twin_token_bound_to_the_thiefs_own_key_is_a_forged_token(world: World) -> None:
    # The research agent mints itself a copy of the tool's token, bound to its own key and naming
    # itself as the holder, and presents it with its own valid proof.
    _, _, tool, _ = world.clean_task()
    twin = _twin(world, tool, holder=RESEARCH)
    index = world.act(RESEARCH, twin)
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    assert "FORGED_TOKEN" in _codes(report.findings)
    message = next(f.message for f in report.findings if f.code == "FORGED_TOKEN")
    assert f"its chain is `{PLANNER} {CRM_AGENT} {RESEARCH}`" in message
    assert "FORGED_TOKEN" in _codes(findings(world.store))


def test_twin_token_of_another_task_is_a_forged_token(world: World) -> None:
    _, _, tool, _ = world.clean_task()
    other = world.start(initiator=BOB, scope="crm:read")
    twin = _twin(world, tool, txn=other.claims.txn, sub=BOB)
    index = world.act(UPDATER, twin)
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    forged = next(f for f in report.findings if f.code == "FORGED_TOKEN")
    assert f"its initiator is `{BOB}` but the log issued `{ALICE}`" in forged.message
    assert f"its task is `{other.claims.txn}`" in forged.message


def test_twin_parent_token_exchanged_for_a_wider_child_is_a_forged_token(world: World) -> None:
    # The CRM agent's token said crm:read crm:write; its twin adds crm:delete, and the authority
    # (which verifies only the signature) grants the tool crm:delete from it.
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read crm:write")
    twin = _twin(world, crm, scope=("crm:read", "crm:write", "crm:delete"))
    # The tool may hold crm:delete (its registration is the ceiling of what it receives).
    world.authority.register_workload(
        UPDATER,
        kind="tool",
        jwk=world.key(UPDATER).public.to_jwk(),
        scopes=["crm:write", "crm:delete"],
    )
    tool = world.hop(CRM_AGENT, twin, UPDATER, "crm:delete", human_approval=True)
    index = world.act(UPDATER, tool, action="crm.delete_account")
    report = trace(world.store, index=index)
    assert report.verdict == "broken"
    forged = [f for f in report.findings if f.code == "FORGED_TOKEN"]
    assert [f.evidence for f in forged] == [(crm.log_index, tool.log_index)]
    assert forged[0].message.startswith(
        f"the parent token of entry {tool.log_index} (jti {crm.claims.jti}) is not the token "
        f"entry {crm.log_index} issued: its scope is `crm:delete`"
    )
    scanned = [(f.code, list(f.evidence)) for f in findings(world.store)]
    assert ("FORGED_TOKEN", [crm.log_index, tool.log_index]) in scanned


def test_twin_parent_token_that_outlives_its_issuance_is_a_forged_token(world: World) -> None:
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read crm:write")
    twin = _twin(world, crm, exp=crm.claims.exp + 600)
    world.clock.advance(crm.claims.exp - world.now + 60)  # the real token has expired
    tool = world.hop(CRM_AGENT, twin, UPDATER, "crm:write")
    report = trace(world.store, index=world.act(UPDATER, tool))
    forged = next(f for f in report.findings if f.code == "FORGED_TOKEN")
    assert f"it outlives its parent (exp {tool.claims.exp} after {crm.claims.exp})" in (
        forged.message
    )


def test_twin_parent_token_refused_a_hop_is_still_named_forged(world: World) -> None:
    # The twin claims crm:delete; the hop asks for more than even the twin holds, and is refused.
    # The refusal recorded the twin's scope as held: more than its issuance issued.
    root = world.start()
    crm = world.hop(PLANNER, root, CRM_AGENT, "crm:read crm:write")
    twin = _twin(world, crm, scope=("crm:read", "crm:write", "crm:delete"))
    with pytest.raises(Exception):  # noqa: B017, PT011 - the refusal itself is tested elsewhere
        world.hop(CRM_AGENT, twin, UPDATER, "crm:write research:read")
    denied = world.store.size() - 1
    report = trace(world.store, index=denied)
    forged = next(f for f in report.findings if f.code == "FORGED_TOKEN")
    assert forged.evidence == (crm.log_index, denied)
    assert "scope is `crm:read crm:write crm:delete`" in forged.message


def test_an_honest_task_has_no_forged_token(world: World) -> None:
    _, _, _, action = world.clean_task()
    assert trace(world.store, index=action).verdict == "complete"
    assert findings(world.store) == []
