"""Issue 10 at the tool: floods of junk presentations become a few reports with counts (point 9), a
refused call reports the scope the route required (point 13), an action is reported as of the time
it was presented (point 7), and every report's proof covers its body (point 5)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _http_world import CRM_AGENT, ISSUER, PLANNER, RESEARCH, TOOL, World, claims
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from test_middleware import (
    ACCOUNT,
    TOOL_BASE,
    CountingAuthority,
    Tool,
    auth_for,
    crm_token,
    delete_account,
    update_account,
)

from authchain.audit.records import ActionRefused, read
from authchain.identity.keys import SigningKey
from authchain.sdk import (
    AgentAuth,
    AuthchainMiddleware,
    AuthorityClient,
    RefusalSummaries,
    requires_scope,
)
from authchain.tokens.dpop import content_digest, create_proof

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def tool(world: World, tmp_path: Path) -> Iterator[Tool]:
    """The CRM tool of test_middleware: PATCH needs crm:write, DELETE crm:admin."""
    app = Starlette(
        routes=[
            Route("/accounts/acme", update_account, methods=["PATCH"]),
            Route("/accounts/acme", delete_account, methods=["DELETE"]),
        ]
    )
    authority = CountingAuthority(ISSUER, world.keys[TOOL], http=world.client, clock=world.clock)
    middleware = AuthchainMiddleware(
        app,
        authority=authority,
        identity=TOOL,
        base_url=TOOL_BASE,
        outbox=tmp_path / "outbox.db",
        clock=world.clock,
        start_sender=False,
    )
    yield Tool(middleware, TestClient(middleware, base_url=TOOL_BASE), authority)
    middleware.outbox.close()


def _reported_counts(world: World, start: int) -> int:
    """How many refusals the recorded reports stand for: one each, or their summary's count."""
    total = 0
    for index in range(start, world.store.size()):
        record = read(world.store.get(index), index)
        total += (record.reported or {}).get("count", 1)
    return total


def test_twenty_seconds_of_garbage_tokens_become_a_few_reports_with_their_count(
    world: World, tool: Tool
) -> None:
    before = world.store.size()
    junk = 1000
    for i in range(junk):
        world.clock.advance(0.02)  # 1,000 requests over 20 s
        proof = create_proof(SigningKey.generate(), htm="PATCH", htu=ACCOUNT, now=world.now)
        response = tool.client.patch(
            ACCOUNT, headers={"Authorization": f"DPoP garbage.{i}.token", "DPoP": proof}
        )
        assert response.status_code == 401
    tool.middleware.close(flush_timeout=0)  # the last window's summary is queued at shutdown
    assert tool.middleware.outbox.pending() <= 6
    tool.deliver()
    assert world.store.size() - before <= 6
    assert _reported_counts(world, before) == junk


def test_a_stolen_token_presented_again_and_again_is_summarised_per_presenting_key(
    world: World, tool: Tool
) -> None:
    stolen = crm_token(world)
    before = world.store.size()
    for _ in range(50):
        assert tool.client.patch(ACCOUNT, auth=auth_for(world, RESEARCH, stolen)).status_code == 401
    world.clock.advance(11)
    tool.client.patch(ACCOUNT, auth=auth_for(world, RESEARCH, stolen))  # the next window opens
    tool.deliver()
    first = read(world.store.get(before), before)
    # The first presentation is reported in full, so it is verified evidence of who presented.
    assert isinstance(first, ActionRefused) and (first.actor, first.holder) == (RESEARCH, CRM_AGENT)
    summary = read(world.store.get(before + 1), before + 1)
    assert summary.reported["count"] == 49 and summary.reported["refusal"] == "key_binding_mismatch"


def test_refusal_summaries_hold_bounded_memory_and_full_reports() -> None:
    summaries = RefusalSummaries(window=10, full_per_window=3, max_groups=8)
    full = sum(
        summaries.admit(f"source:{n}", "malformed", 0.0, {"action": "x"}) for n in range(10_000)
    )
    assert full == 3
    assert len(summaries._groups) <= 9  # the groups and one overflow group
    reports = summaries.due(10.0)
    # However many sources a distributed flood uses, a window costs a bounded number of reports.
    assert full + len(reports) <= 3 + summaries.max_summaries + 1
    assert sum(r["count"] for r in reports) == 10_000 - 3


def test_a_refused_call_reports_the_scope_the_route_required(world: World, tool: Tool) -> None:
    token = crm_token(world)  # holds crm:write; the DELETE route requires crm:admin
    assert tool.client.delete(ACCOUNT, auth=auth_for(world, CRM_AGENT, token)).status_code == 403
    tool.deliver()
    index = world.store.size() - 1
    record = read(world.store.get(index), index)
    assert isinstance(record, ActionRefused)
    assert record.reported["required_scope"] == "crm:admin"  # the tool's word
    assert record.scope == ("crm:write",)  # what the verified token held


def test_an_action_is_reported_as_of_its_presentation_not_its_response(
    world: World, tmp_path: Path
) -> None:
    @requires_scope("crm:write")
    async def slow(request: Request) -> JSONResponse:
        world.clock.advance(120)  # the work outlasts the proof's 60 s window
        return JSONResponse({})

    authority = AuthorityClient(ISSUER, world.keys[TOOL], http=world.client, clock=world.clock)
    middleware = AuthchainMiddleware(
        Starlette(routes=[Route("/accounts/acme", slow, methods=["PATCH"])]),
        authority=authority,
        identity=TOOL,
        base_url=TOOL_BASE,
        outbox=tmp_path / "outbox.db",
        clock=world.clock,
        start_sender=False,
    )
    client = TestClient(middleware, base_url=TOOL_BASE)
    token = crm_token(world)
    assert client.patch(ACCOUNT, auth=AgentAuth(world.keys[CRM_AGENT], token, clock=world.clock))
    assert middleware.sender.step() == 0
    index = world.store.size() - 1
    record = read(world.store.get(index), index)
    assert (record.unattributed, record.error, record.actor) == (None, None, CRM_AGENT)
    middleware.outbox.close()


def test_the_reports_proof_covers_its_body(world: World) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("oauth-authorization-server"):
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "token_endpoint": ISSUER + "/token",
                    "jwks_uri": ISSUER + "/.well-known/jwks.json",
                },
            )
        seen.append(request)
        return httpx.Response(201, json={"log_index": 7})

    http = httpx.Client(transport=httpx.MockTransport(handler))
    client = AuthorityClient(ISSUER, world.keys[TOOL], http=http, clock=world.clock)
    assert client.report({"action": "a", "resource": "r"}) == 7
    [request] = seen
    digest = request.headers["content-digest"]
    assert digest == content_digest(request.content)
    proof_claims = claims(request.headers["dpop"])
    assert proof_claims["content_digest"] == digest
    assert json.loads(request.content) == {"action": "a", "resource": "r"}


def test_an_honest_tool_is_not_rate_limited_by_junk_sent_to_it(world: World, tool: Tool) -> None:
    for _ in range(500):
        proof = create_proof(SigningKey.generate(), htm="PATCH", htu=ACCOUNT, now=world.now)
        tool.client.patch(ACCOUNT, headers={"Authorization": "DPoP x.y.z", "DPoP": proof})
    token = world.hop(world.start(), PLANNER, to=CRM_AGENT, scope="crm:write")
    assert tool.client.patch(ACCOUNT, auth=auth_for(world, CRM_AGENT, token)).status_code == 200
    tool.deliver()
    assert tool.middleware.outbox.pending() == 0 and not tool.middleware.outbox.dead()
