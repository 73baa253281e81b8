"""The tool service's middleware, against the real authority in process: offline verification with
htu from configuration, scope enforcement, the verified chain handed to the handler, and every
action (and every refused presentation) reported through the outbox, in order, even when the
authority is away for a while."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _http_world import ALICE, CRM_AGENT, ISSUER, PLANNER, RESEARCH, TOOL, World
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authchain.identity.keys import JWKS, PublicKey
from authchain.sdk import (
    AgentAuth,
    AuthchainMiddleware,
    AuthorityClient,
    VerifiedCall,
    describe_action,
    requires_scope,
)
from authchain.tokens.dpop import create_proof
from authchain.tokens.replay import ReplayCache

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOOL_BASE = "https://tool.example.org"
ACCOUNT = TOOL_BASE + "/accounts/acme"


@requires_scope("crm:write", action="crm.update")
async def update_account(request: Request) -> JSONResponse:
    describe_action(request, resource="crm://accounts/acme", attrs={"fields": 2})
    call: VerifiedCall = request.scope["state"]["authchain"]
    return JSONResponse(
        {"initiator": call.initiator, "actor": call.actor, "chain": list(call.chain)}
    )


@requires_scope("crm:admin")
def delete_account(request: Request) -> JSONResponse:
    return JSONResponse({"deleted": True})


def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


class CountingAuthority(AuthorityClient):
    """The tool's authority client, counting JWKS fetches and able to lose the network."""

    jwks_fetches = 0
    down = False

    def jwks(self) -> JWKS:
        self.jwks_fetches += 1
        return super().jwks()

    def report(self, report: object) -> int:  # type: ignore[override]
        if self.down:
            from authchain.errors import RemoteUnavailableError

            raise RemoteUnavailableError("connection refused")
        return super().report(report)  # type: ignore[arg-type]


@dataclass
class Tool:
    middleware: AuthchainMiddleware
    client: TestClient
    authority: CountingAuthority

    def deliver(self) -> None:
        for _ in range(100):
            if self.middleware.sender.step() is None:
                return
        raise AssertionError("outbox did not drain")


@pytest.fixture
def tool(world: World, tmp_path: Path) -> Iterator[Tool]:
    inner = Starlette(
        routes=[
            Route("/accounts/acme", update_account, methods=["PATCH"]),
            Route("/accounts/acme", delete_account, methods=["DELETE"]),
            Route("/healthz", health),
        ]
    )
    authority = CountingAuthority(ISSUER, world.keys[TOOL], http=world.client, clock=world.clock)
    middleware = AuthchainMiddleware(
        inner,
        authority=authority,
        identity=TOOL,
        base_url=TOOL_BASE,
        outbox=tmp_path / "outbox.db",
        clock=world.clock,
        start_sender=False,
    )
    client = TestClient(middleware, base_url=TOOL_BASE, raise_server_exceptions=False)
    yield Tool(middleware, client, authority)
    middleware.outbox.close()


def crm_token(world: World, scope: str = "crm:write") -> str:
    return world.hop(world.start(), PLANNER, to=CRM_AGENT, scope=scope)


def auth_for(world: World, who: str, token: str) -> AgentAuth:
    return AgentAuth(world.keys[who], token, clock=world.clock)


def last_event(world: World) -> dict[str, object]:
    return world.store.get(world.store.size() - 1).to_dict()


def test_verified_call_reaches_the_handler_and_the_action_is_reported(
    world: World, tool: Tool
) -> None:
    response = tool.client.patch(ACCOUNT, auth=auth_for(world, CRM_AGENT, crm_token(world)))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "initiator": ALICE,
        "actor": CRM_AGENT,
        "chain": [PLANNER, CRM_AGENT],
    }
    # The report is durable before the response left; delivering it records the action.
    assert tool.middleware.outbox.pending() == 1
    tool.deliver()
    event = last_event(world)
    assert event["kind"] == "action.invoked"
    assert event["action"] == "crm.update"
    assert event["resource"] == "crm://accounts/acme"
    assert event["actor"] == CRM_AGENT and event["initiator"] == ALICE
    # What the authority derived is its detail; what the tool said is kept apart, as reported.
    assert event["detail"]["executor"] == TOOL  # type: ignore[index]
    assert event["reported"]["attrs"]["fields"] == 2  # type: ignore[index]
    assert "unattributed" not in event["detail"]  # type: ignore[operator]


def test_replayed_request_is_refused_and_the_replay_is_evidence(world: World, tool: Tool) -> None:
    token = crm_token(world)
    proof = create_proof(
        world.keys[CRM_AGENT], htm="PATCH", htu=ACCOUNT, now=world.now, access_token=token
    )
    headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
    assert tool.client.patch(ACCOUNT, headers=headers).status_code == 200
    replay = tool.client.patch(ACCOUNT, headers=headers)
    assert replay.status_code == 401
    assert 'error="invalid_dpop_proof"' in replay.headers["www-authenticate"]
    tool.deliver()
    event = last_event(world)
    assert event["kind"] == "action.refused"
    assert event["detail"]["error"] == "replay"  # type: ignore[index]


def test_token_presented_with_another_workloads_key_is_refused(world: World, tool: Tool) -> None:
    stolen = crm_token(world)
    response = tool.client.patch(ACCOUNT, auth=auth_for(world, RESEARCH, stolen))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_dpop_proof"
    tool.deliver()
    event = last_event(world)
    assert event["kind"] == "action.refused"
    assert event["detail"]["holder"] == CRM_AGENT  # type: ignore[index]


def test_proof_for_another_url_or_method_is_refused(world: World, tool: Tool) -> None:
    token = crm_token(world)
    key = world.keys[CRM_AGENT]
    for htm, htu in (("PATCH", TOOL_BASE + "/accounts/other"), ("GET", ACCOUNT)):
        proof = create_proof(key, htm=htm, htu=htu, now=world.now, access_token=token)
        response = tool.client.patch(
            ACCOUNT, headers={"Authorization": f"DPoP {token}", "DPoP": proof}
        )
        assert response.status_code == 401, (htm, htu)


def test_htu_comes_from_configuration_not_the_host_header(world: World, tool: Tool) -> None:
    token = crm_token(world)
    key = world.keys[CRM_AGENT]
    evil = "https://evil.example.net/accounts/acme"
    forged = create_proof(key, htm="PATCH", htu=evil, now=world.now, access_token=token)
    refused = tool.client.patch(
        ACCOUNT,
        headers={"Authorization": f"DPoP {token}", "DPoP": forged, "Host": "evil.example.net"},
    )
    assert refused.status_code == 401
    honest = create_proof(key, htm="PATCH", htu=ACCOUNT, now=world.now, access_token=token)
    accepted = tool.client.patch(
        ACCOUNT,
        headers={"Authorization": f"DPoP {token}", "DPoP": honest, "Host": "evil.example.net"},
    )
    assert accepted.status_code == 200


def test_route_scope_is_enforced_and_the_refusal_reported(world: World, tool: Tool) -> None:
    response = tool.client.delete(ACCOUNT, auth=auth_for(world, CRM_AGENT, crm_token(world)))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "crm:admin" in response.json()["detail"]
    tool.deliver()
    event = last_event(world)
    assert event["kind"] == "action.refused"
    assert event["outcome"] == "refused"
    # The route's scope check is the tool's own decision: the authority keeps it as reported.
    assert event["reported"]["refusal"] == "scope_escalation"  # type: ignore[index]


def test_request_without_a_task_token_is_refused_and_not_reported(world: World, tool: Tool) -> None:
    for headers in ({}, {"Authorization": "Bearer abc"}):
        response = tool.client.patch(ACCOUNT, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("DPoP")
    assert tool.middleware.outbox.pending() == 0


def test_public_path_needs_no_token(tool: Tool) -> None:
    assert tool.client.get(TOOL_BASE + "/healthz").status_code == 200


def test_expired_token_is_invalid_token(world: World, tool: Tool) -> None:
    token = crm_token(world)
    world.clock.advance(3600)
    response = tool.client.patch(ACCOUNT, auth=auth_for(world, CRM_AGENT, token))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_refusal_is_classified_by_the_input_it_names_without_verifying_again(
    world: World, tool: Tool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every signature check is counted: the token's, then the proof's. Deciding whether the token or
    # the proof was at fault must read the refusal, not verify the token a second time.
    token = crm_token(world)
    assert tool.client.patch(ACCOUNT, auth=auth_for(world, CRM_AGENT, token)).status_code == 200
    checks: list[str] = []
    real_verify = PublicKey.verify

    def counting(key: PublicKey, signature: bytes, message: bytes) -> None:
        checks.append(key.kid)
        real_verify(key, signature, message)

    monkeypatch.setattr(PublicKey, "verify", counting)
    key = world.keys[CRM_AGENT]
    elsewhere = create_proof(
        key, htm="PATCH", htu=TOOL_BASE + "/accounts/other", now=world.now, access_token=token
    )
    response = tool.client.patch(
        ACCOUNT, headers={"Authorization": f"DPoP {token}", "DPoP": elsewhere}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_dpop_proof"
    assert len(checks) == 2  # the token once, the proof once

    checks.clear()
    world.clock.advance(3600)
    response = tool.client.patch(ACCOUNT, auth=auth_for(world, CRM_AGENT, token))
    assert response.json()["code"] == "invalid_token"
    assert len(checks) == 1  # the token once; its proof is never reached


def test_full_replay_cache_is_a_retryable_503_not_a_refused_presentation(
    world: World, tool: Tool
) -> None:
    tool.middleware.replay_cache = ReplayCache(max_entries=1)
    auth = auth_for(world, CRM_AGENT, crm_token(world))
    assert tool.client.patch(ACCOUNT, auth=auth).status_code == 200
    busy = tool.client.patch(ACCOUNT, auth=auth)
    assert busy.status_code == 503
    assert busy.json()["code"] == "replay_cache_full"
    assert busy.headers["retry-after"] == "1"
    # Nothing is wrong with the presentation, so nothing is reported as refused.
    assert tool.middleware.outbox.pending() == 1


def test_reports_wait_out_an_authority_outage_and_arrive_in_order(world: World, tool: Tool) -> None:
    token = crm_token(world)
    auth = auth_for(world, CRM_AGENT, token)
    first = tool.client.patch(ACCOUNT, auth=auth)  # keys fetched while the authority is up
    assert first.status_code == 200
    tool.deliver()
    before = world.store.size()

    tool.authority.down = True
    traces = []
    for _ in range(3):
        trace_id = format(len(traces) + 1, "032x")
        traces.append(trace_id)
        response = tool.client.patch(
            ACCOUNT, auth=auth, headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        )
        assert response.status_code == 200  # verification is offline: the tool keeps working
    delay = tool.middleware.sender.step()
    assert delay is not None and delay > 0
    assert tool.middleware.outbox.pending() == 3
    assert world.store.size() == before

    tool.authority.down = False
    tool.deliver()
    recorded = [world.store.get(i).trace_id for i in range(before, world.store.size())]
    assert recorded == traces


def test_unknown_key_id_refreshes_the_keys_at_most_once_per_interval(
    world: World, tool: Tool
) -> None:
    auth = auth_for(world, CRM_AGENT, crm_token(world))
    assert tool.client.patch(ACCOUNT, auth=auth).status_code == 200
    assert tool.authority.jwks_fetches == 1

    world.authority.rotate_signing_key()
    rotated = auth_for(world, CRM_AGENT, crm_token(world))
    # Within the refresh interval an unknown kid does not make the tool fetch again.
    assert tool.client.patch(ACCOUNT, auth=rotated).status_code == 401
    assert tool.authority.jwks_fetches == 1
    world.clock.advance(31)
    assert tool.client.patch(ACCOUNT, auth=rotated).status_code == 200
    assert tool.authority.jwks_fetches == 2


def test_execute_tool_span_carries_the_attribution(
    world: World, tool: Tool, span_exporter: InMemorySpanExporter
) -> None:
    span_exporter.clear()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    response = tool.client.patch(
        ACCOUNT, auth=auth_for(world, CRM_AGENT, crm_token(world)), headers={"traceparent": parent}
    )
    assert response.status_code == 200
    [span] = [s for s in span_exporter.get_finished_spans() if s.name.startswith("execute_tool")]
    assert span.name == "execute_tool crm-updater"
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["authchain.initiator"] == ALICE
    assert attrs["authchain.actor"] == CRM_AGENT
    assert attrs["authchain.executor"] == TOOL
    assert attrs["authchain.decision_id"]
    assert attrs["http.response.status_code"] == 200
    # The recorded action joins the caller's trace, under the tool's span.
    tool.deliver()
    event = last_event(world)
    assert event["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["span_id"] != format(span.context.span_id, "016x")  # the authority's own span


def test_middleware_refuses_a_relative_base_url(world: World, tmp_path: Path) -> None:
    from authchain.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        AuthchainMiddleware(
            Starlette(),
            authority=AuthorityClient(ISSUER, world.keys[TOOL], http=world.client),
            identity=TOOL,
            base_url="/relative",
            outbox=tmp_path / "o.db",
            start_sender=False,
        )


def test_handler_without_middleware_fails_closed() -> None:
    app = Starlette(routes=[Route("/x", update_account, methods=["PATCH"])])
    with TestClient(app) as client:
        assert client.patch("/x").status_code == 401


def test_requires_scope_refuses_an_empty_declaration() -> None:
    from authchain.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        requires_scope()
    with pytest.raises(ConfigurationError):
        requires_scope("crm:read crm:write")


def test_full_outbox_refuses_new_work_rather_than_act_unrecorded(world: World, tool: Tool) -> None:
    tool.middleware.outbox.max_pending = 1
    auth = auth_for(world, CRM_AGENT, crm_token(world))
    assert tool.client.patch(ACCOUNT, auth=auth).status_code == 200
    refused = tool.client.patch(ACCOUNT, auth=auth)
    assert refused.status_code == 503
    assert refused.json()["code"] == "outbox_full"
    assert tool.middleware.outbox.pending() == 1
    tool.deliver()
    assert tool.client.patch(ACCOUNT, auth=auth).status_code == 200
