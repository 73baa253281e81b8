"""The agent's httpx auth: each request presents the held task token with a fresh DPoP proof for
exactly that method and URL, follows one use_dpop_nonce challenge, and starts tasks and delegates
through the authority."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from _http_world import ALICE, CRM_AGENT, ISSUER, PLANNER, RESEARCH, World

from authchain.errors import ConfigurationError, RemoteError, RemoteUnavailableError
from authchain.sdk import AgentAuth, AsyncAuthorityClient, AuthorityClient, TaskToken, use_trace
from authchain.sdk.tracing import TraceContext
from authchain.tokens.dpop import verify_proof

TOOL_URL = "https://tool.example.org/accounts/acme"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recorder:
    """A fake tool (httpx MockTransport handler) that records request headers and challenges for a
    nonce when told to."""

    def __init__(self, *, nonce: str | None = None) -> None:
        self.nonce = nonce
        self.requests: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(dict(request.headers))
        if self.nonce is not None and len(self.requests) == 1:
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'DPoP error="use_dpop_nonce"',
                    "DPoP-Nonce": self.nonce,
                },
            )
        return httpx.Response(200, json={})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))


def test_request_carries_the_token_and_a_proof_for_this_method_and_url(world: World) -> None:
    token = world.start()
    app = Recorder()
    auth = AgentAuth(world.keys[PLANNER], token)
    with app.client() as client:
        client.patch(TOOL_URL + "?verbose=1#x", auth=auth)
    [sent] = app.requests
    assert sent["authorization"] == f"DPoP {token}"
    # RFC 9449 4.3: the proof verifies for this request, is bound to the token by ath, and is made
    # by the key the token is bound to. The query is not part of htu.
    proof = verify_proof(
        sent["dpop"],
        htm="PATCH",
        htu=TOOL_URL,
        now=world.now,
        replay_cache=None,
        access_token=token,
        expected_jkt=world.keys[PLANNER].public.thumbprint,
    )
    assert proof.htu == TOOL_URL
    assert TraceContext.parse(sent["traceparent"]) is not None


def test_every_request_gets_a_fresh_proof(world: World) -> None:
    app = Recorder()
    auth = AgentAuth(world.keys[PLANNER], world.start())
    with app.client() as client:
        client.get(TOOL_URL, auth=auth)
        client.get(TOOL_URL, auth=auth)
    assert app.requests[0]["dpop"] != app.requests[1]["dpop"]


def test_outgoing_request_continues_the_current_trace(world: World) -> None:
    app = Recorder()
    auth = AgentAuth(world.keys[PLANNER], world.start())
    parent = TraceContext.new()
    with use_trace(parent), app.client() as client:
        client.get(TOOL_URL, auth=auth)
    sent = TraceContext.parse(app.requests[0]["traceparent"])
    assert sent is not None and sent.trace_id == parent.trace_id


def test_nonce_challenge_is_answered_once_with_the_servers_nonce(world: World) -> None:
    app = Recorder(nonce="server-nonce-1")
    auth = AgentAuth(world.keys[PLANNER], world.start())
    with app.client() as client:
        response = client.get(TOOL_URL, auth=auth)
    assert response.status_code == 200
    assert len(app.requests) == 2
    retried = verify_proof(
        app.requests[1]["dpop"], htm="GET", htu=TOOL_URL, now=world.now, replay_cache=None
    )
    assert retried.nonce == "server-nonce-1"


@pytest.mark.anyio
async def test_async_client_uses_the_same_auth(world: World) -> None:
    app = Recorder(nonce="n2")
    auth = AgentAuth(world.keys[PLANNER], world.start())
    async with httpx.AsyncClient(transport=httpx.MockTransport(app)) as client:
        response = await client.post(TOOL_URL, auth=auth)
    assert response.status_code == 200 and len(app.requests) == 2


def test_without_a_token_nothing_is_sent(world: World) -> None:
    app = Recorder()
    with (
        app.client() as client,
        pytest.raises(ConfigurationError),
    ):
        client.get(TOOL_URL, auth=AgentAuth(world.keys[PLANNER]))
    assert app.requests == []


def test_start_task_and_delegate_through_the_authority(world: World) -> None:
    authority = AuthorityClient(ISSUER, world.keys[PLANNER], http=world.client)
    auth = AgentAuth(world.keys[PLANNER], authority=authority)
    started = auth.start_task(
        world.id_token(), scope=["crm:read", "crm:write"], purpose="sync ACME"
    )
    assert auth.token == started
    assert started.actor == PLANNER and started.scope == ("crm:read", "crm:write")
    assert world.store.get(started.log_index or 0).kind == "task.started"

    handed = auth.delegate(to=CRM_AGENT, scope="crm:write")
    assert handed.actor == CRM_AGENT and handed.txn == started.txn
    assert auth.token == started  # delegating does not change what the delegator holds
    assert "eyJ" not in repr(handed)  # the raw token never shows in logs

    # The next actor receives the token as a string and uses it with its own key.
    crm = AgentAuth(world.keys[CRM_AGENT], handed.access_token)
    assert crm.token is not None and crm.token.txn == started.txn


def test_refusal_carries_the_oauth_error_and_the_log_entry(world: World) -> None:
    authority = AuthorityClient(ISSUER, world.keys[PLANNER], http=world.client)
    auth = AgentAuth(world.keys[PLANNER], world.start(scope="crm:read"), authority=authority)
    with pytest.raises(RemoteError) as refused:
        auth.delegate(to=CRM_AGENT, scope="crm:write")
    assert refused.value.error == "invalid_scope"
    assert refused.value.status == 400
    assert refused.value.log_index is not None
    assert world.store.get(refused.value.log_index).kind == "hop.denied"


def test_a_stolen_token_is_useless_with_another_key(world: World) -> None:
    stolen = world.start()
    thief = AgentAuth(
        world.keys[RESEARCH],
        stolen,
        authority=AuthorityClient(ISSUER, world.keys[RESEARCH], http=world.client),
    )
    with pytest.raises(RemoteError) as refused:
        thief.delegate(to=CRM_AGENT)
    assert refused.value.error == "invalid_grant"


def test_nonce_required_by_the_authority_is_handled(tmp_path: Any) -> None:
    from _http_world import make_world

    from authchain.tokens.nonce import NonceSource

    world = make_world(tmp_path, nonce_source=NonceSource.generate())
    authority = AuthorityClient(ISSUER, world.keys[PLANNER], http=world.client)
    issued = authority.start_task(world.id_token(), scope="crm:read")
    assert issued.scope == ("crm:read",)


@pytest.mark.anyio
async def test_async_authority_client_starts_and_delegates(world: World) -> None:
    transport = httpx.ASGITransport(world.client.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        authority = AsyncAuthorityClient(ISSUER, world.keys[PLANNER], http=http)
        auth = AgentAuth(world.keys[PLANNER], authority=authority)
        started = await auth.astart_task(world.id_token(), scope="crm:write", purpose="p")
        handed = await auth.adelegate(to=CRM_AGENT)
    assert started.txn == handed.txn
    assert handed.unverified_claims["sub"] == ALICE


def test_unreachable_authority_is_remote_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    from authchain.identity.keys import SigningKey

    http = httpx.Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(RemoteUnavailableError):
        AuthorityClient(ISSUER, SigningKey.generate(), http=http).metadata()


def test_task_token_from_a_string_reads_its_claims(world: World) -> None:
    token = TaskToken.from_string(world.start())
    assert token.actor == PLANNER and token.scope == ("crm:read", "crm:write")
