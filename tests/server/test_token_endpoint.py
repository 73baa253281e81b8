"""POST /token: the task start and the hop of DESIGN.md over RFC 8693 + RFC 9449, and every OAuth
error it documents, each produced by a request built for it and each refusal found in the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _http_world import (
    ALICE,
    CRM_AGENT,
    ISSUER,
    PLANNER,
    RESEARCH,
    TOOL,
    TXN_TOKEN,
    World,
    claims,
    make_world,
)

from authchain.identity.keys import SigningKey
from authchain.tokens.nonce import NonceSource


def refused(world: World, response: httpx.Response, error: str) -> dict[str, Any]:
    """Assert an OAuth error response and return the log event that recorded it."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == error, body
    index = body["log_index"]
    assert f"(recorded at log index {index})" in body["error_description"]
    event = world.store.get(index).to_dict()
    assert event["outcome"] == "denied"
    return event


# --------------------------------------------------------------------------------------------------
# Success.


def test_task_start_returns_an_rfc8693_response_bound_to_the_requesters_key(world: World) -> None:
    response = world.post_token(world.start_form(scope="crm:read"), world.proof(PLANNER))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["issued_token_type"] == TXN_TOKEN
    assert body["token_type"] == "DPoP"
    assert body["scope"] == "crm:read"
    assert 0 < body["expires_in"] <= 300
    c = claims(body["access_token"])
    assert c["sub"] == ALICE
    assert c["act"]["sub"] == PLANNER
    assert c["cnf"]["jkt"] == world.keys[PLANNER].public.thumbprint
    assert c["tctx"]["purpose"] == "update ACME"
    assert world.store.get(c["log"]).kind == "task.started"


def test_hop_narrows_scope_and_binds_the_token_to_the_next_actor(world: World) -> None:
    token = world.start()
    response = world.post_token(
        world.hop_form(token, to=CRM_AGENT, scope="crm:write"), world.proof(PLANNER)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    c = claims(body["access_token"])
    assert body["scope"] == "crm:write"
    assert c["act"]["sub"] == CRM_AGENT and c["act"]["act"]["sub"] == PLANNER
    assert c["cnf"]["jkt"] == world.keys[CRM_AGENT].public.thumbprint
    assert c["txn"] == claims(token)["txn"]
    assert world.store.get(c["log"]).kind == "hop.granted"


def test_resource_is_accepted_as_the_audience_of_a_hop(world: World) -> None:
    token = world.start()
    form = world.hop_form(token, to=CRM_AGENT)
    form["resource"] = form.pop("audience")
    assert world.post_token(form, world.proof(PLANNER)).status_code == 200


def test_traceparent_puts_the_decision_in_the_callers_trace(world: World) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = world.post_token(
        world.start_form(), world.proof(PLANNER), traceparent=f"00-{trace_id}-00f067aa0ba902b7-01"
    )
    assert world.store.get(claims(response.json()["access_token"])["log"]).trace_id == trace_id


def test_htu_is_the_configured_endpoint_not_the_host_header(world: World) -> None:
    # The client addresses another host; the proof must still name the configured URL, and a
    # proof for the URL the Host header suggests is refused.
    other = "https://evil.example.net/token"
    good = world.post_token(world.start_form(), world.proof(PLANNER), host="evil.example.net")
    assert good.status_code == 200
    bad = world.post_token(
        world.start_form(), world.proof(PLANNER, htu=other), host="evil.example.net"
    )
    refused(world, bad, "invalid_dpop_proof")


# --------------------------------------------------------------------------------------------------
# invalid_request and unsupported_grant_type: the request is not a token exchange request.


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (lambda f: f.pop("subject_token"), "subject_token"),
        (lambda f: f.pop("subject_token_type"), "subject_token_type"),
        (lambda f: f.pop("grant_type"), "grant_type"),
        (
            lambda f: f.update(requested_token_type="urn:ietf:params:oauth:token-type:jwt"),
            "requested",
        ),
        (lambda f: f.update(subject_token_type="urn:ietf:params:oauth:token-type:saml2"), "type"),
        (lambda f: f.update(actor_token="x", actor_token_type=TXN_TOKEN), "actor_token"),
    ],
)
def test_malformed_exchange_request_is_invalid_request_and_recorded(
    world: World, change: Any, what: str
) -> None:
    form = world.start_form()
    change(form)
    response = world.post_token(form, world.proof(PLANNER))
    event = refused(world, response, "invalid_request")
    assert event["detail"]["error"] == "malformed", what
    if "subject_token" in form:
        # The refused request's subject token is kept as its hash, never as the token.
        assert event["parent_token"] != form["subject_token"]
        assert form["subject_token"] not in str(event)


def test_repeated_parameter_is_invalid_request(world: World) -> None:
    # RFC 6749 section 3.2: parameters MUST NOT be included more than once.
    body = httpx.QueryParams(world.start_form()).add("scope", "crm:read")
    response = world.client.post(
        "/token",
        content=str(body),
        headers={"Content-Type": "application/x-www-form-urlencoded", "DPoP": world.proof(PLANNER)},
    )
    event = refused(world, response, "invalid_request")
    assert "repeated" in event["detail"]["reason"]


def test_json_body_is_invalid_request(world: World) -> None:
    response = world.client.post(
        "/token", json=world.start_form(), headers={"DPoP": world.proof(PLANNER)}
    )
    refused(world, response, "invalid_request")


def test_other_grant_type_is_unsupported_grant_type(world: World) -> None:
    form = world.start_form()
    form["grant_type"] = "client_credentials"
    response = world.post_token(form, world.proof(PLANNER))
    refused(world, response, "unsupported_grant_type")


def test_malformed_request_details_is_invalid_request_and_recorded(world: World) -> None:
    form = world.start_form()
    form["request_details"] = "[1, 2]"
    response = world.post_token(form, world.proof(PLANNER))
    event = refused(world, response, "invalid_request")
    assert event["kind"] == "task.denied"


# --------------------------------------------------------------------------------------------------
# invalid_dpop_proof (RFC 9449 section 5).


def test_missing_proof_is_refused_and_recorded(world: World) -> None:
    event = refused(world, world.post_token(world.start_form(), None), "invalid_dpop_proof")
    assert event["detail"]["error"] == "invalid_dpop_proof"


def test_malformed_proof_is_refused(world: World) -> None:
    refused(world, world.post_token(world.start_form(), "not.a.proof"), "invalid_dpop_proof")


def test_two_dpop_headers_are_refused(world: World) -> None:
    form = world.start_form()
    response = world.client.post(
        "/token",
        data=form,
        headers=[("DPoP", world.proof(PLANNER)), ("DPoP", world.proof(PLANNER))],
    )
    refused(world, response, "invalid_dpop_proof")


def test_proof_for_another_url_is_refused(world: World) -> None:
    proof = world.proof(PLANNER, htu=ISSUER + "/events")
    event = refused(world, world.post_token(world.start_form(), proof), "invalid_dpop_proof")
    assert event["detail"]["error"] == "dpop_url_mismatch"


def test_proof_for_another_method_is_refused(world: World) -> None:
    proof = world.proof(PLANNER, htm="GET")
    event = refused(world, world.post_token(world.start_form(), proof), "invalid_dpop_proof")
    assert event["detail"]["error"] == "dpop_method_mismatch"


def test_replayed_proof_is_refused_and_recorded(world: World) -> None:
    proof = world.proof(PLANNER)
    assert world.post_token(world.start_form(), proof).status_code == 200
    event = refused(world, world.post_token(world.start_form(), proof), "invalid_dpop_proof")
    assert event["detail"]["error"] == "replay"


def test_proof_by_an_unregistered_key_is_refused(world: World) -> None:
    stranger = SigningKey.generate()
    refused(
        world, world.post_token(world.start_form(), world.proof(stranger)), "invalid_dpop_proof"
    )


def test_proof_signature_failure_is_a_proof_error_not_a_grant_error(world: World) -> None:
    # A proof whose signature does not verify raises the same error class as a bad subject token
    # signature; the endpoint must still blame the proof.
    h, p, s = world.proof(PLANNER).split(".")
    forged = f"{h}.{p}.{s[:-4]}AAAA"
    refused(world, world.post_token(world.start_form(), forged), "invalid_dpop_proof")


# --------------------------------------------------------------------------------------------------
# invalid_grant: the subject token.


def test_token_used_with_another_workloads_key_is_refused(world: World) -> None:
    # The research agent got hold of the planner's token and asks for a hop with its own key.
    token = world.start()
    response = world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(RESEARCH))
    event = refused(world, response, "invalid_grant")
    assert event["detail"]["error"] == "key_binding_mismatch"
    assert event["actor"] == RESEARCH


def test_forged_subject_token_is_invalid_grant(world: World) -> None:
    h, p, s = world.start().split(".")
    forged = f"{h}.{p}.{s[:-4]}AAAA"
    refused(
        world,
        world.post_token(world.hop_form(forged, to=CRM_AGENT), world.proof(PLANNER)),
        "invalid_grant",
    )


def test_id_token_from_an_untrusted_issuer_is_invalid_grant(world: World) -> None:
    from authchain.tokens.id_token import LocalIdentityProvider

    rogue = LocalIdentityProvider("https://rogue.example.net")
    form = world.start_form()
    form["subject_token"] = rogue.issue(ALICE, audience=ISSUER, now=world.now)
    refused(world, world.post_token(form, world.proof(PLANNER)), "invalid_grant")


def test_expired_subject_token_is_invalid_grant(world: World) -> None:
    token = world.start()
    world.clock.advance(3600)
    event = refused(
        world,
        world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER)),
        "invalid_grant",
    )
    assert event["detail"]["error"] == "expired"


def test_revoked_subject_token_is_invalid_grant(world: World) -> None:
    token = world.start()
    assert world.admin("/revoke", {"token": token, "reason": "test"}).status_code == 200
    event = refused(
        world,
        world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER)),
        "invalid_grant",
    )
    assert event["detail"]["error"] == "revoked"


# --------------------------------------------------------------------------------------------------
# invalid_scope and invalid_target.


def test_scope_escalation_is_invalid_scope_and_recorded(world: World) -> None:
    token = world.start(scope="crm:read")
    response = world.post_token(
        world.hop_form(token, to=CRM_AGENT, scope="crm:write"), world.proof(PLANNER)
    )
    event = refused(world, response, "invalid_scope")
    assert event["detail"]["error"] == "scope_escalation"
    assert "crm:write" in response.json()["error_description"]


def test_task_start_denied_by_policy_is_invalid_scope(world: World) -> None:
    # The planner may hold crm:delete, so its registration is no ceiling here (a scope beyond it is
    # refused before policy); Alice was never granted it, and policy denies.
    world.authority.register_workload(
        PLANNER,
        kind="agent",
        jwk=world.keys[PLANNER].public.to_jwk(),
        scopes=["research:read", "crm:read", "crm:write", "crm:delete"],
    )
    response = world.post_token(world.start_form(scope="crm:delete"), world.proof(PLANNER))
    event = refused(world, response, "invalid_scope")
    assert event["kind"] == "task.denied"
    assert event["decision"]["effect"] == "deny"


def test_unknown_audience_is_invalid_target(world: World) -> None:
    token = world.start()
    response = world.post_token(
        world.hop_form(token, to="spiffe://example.org/agent/nobody"), world.proof(PLANNER)
    )
    assert refused(world, response, "invalid_target")["detail"]["error"] == "invalid_target"


def test_delegating_back_into_the_chain_is_invalid_target(world: World) -> None:
    token = world.start()
    crm_token = world.hop(token, PLANNER, to=CRM_AGENT, scope="crm:write")
    response = world.post_token(world.hop_form(crm_token, to=PLANNER), world.proof(CRM_AGENT))
    assert refused(world, response, "invalid_target")["detail"]["error"] == "chain_cycle"


def test_task_start_for_another_audience_is_invalid_target(world: World) -> None:
    form = world.start_form()
    form["audience"] = TOOL
    response = world.post_token(form, world.proof(PLANNER))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


# --------------------------------------------------------------------------------------------------
# use_dpop_nonce (RFC 9449 section 8).


def test_server_nonce_is_required_when_configured_and_then_accepted(tmp_path: Path) -> None:
    world = make_world(tmp_path, nonce_source=NonceSource.generate())
    size = world.store.size()
    first = world.post_token(world.start_form(), world.proof(PLANNER))
    assert first.status_code == 400
    assert first.json()["error"] == "use_dpop_nonce"
    # A protocol round trip, not a decision about authority: not an audit event.
    assert "log_index" not in first.json()
    assert world.store.size() == size
    nonce = first.headers["DPoP-Nonce"]
    second = world.post_token(world.start_form(), world.proof(PLANNER, nonce=nonce))
    assert second.status_code == 200, second.text
    assert second.headers["DPoP-Nonce"]


def test_forged_nonce_is_challenged_again(tmp_path: Path) -> None:
    world = make_world(tmp_path, nonce_source=NonceSource.generate())
    response = world.post_token(world.start_form(), world.proof(PLANNER, nonce="A" * 32))
    assert response.json()["error"] == "use_dpop_nonce"


def test_nonce_challenge_of_a_hop_is_not_recorded_and_the_hop_then_succeeds(tmp_path: Path) -> None:
    world = make_world(tmp_path, nonce_source=NonceSource.generate())
    nonce = world.client.post("/token", data=world.start_form()).headers["DPoP-Nonce"]
    started = world.post_token(world.start_form(), world.proof(PLANNER, nonce=nonce))
    token = started.json()["access_token"]
    size = world.store.size()
    challenged = world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER))
    assert challenged.json()["error"] == "use_dpop_nonce"
    assert world.store.size() == size
    fresh = challenged.headers["DPoP-Nonce"]
    hop = world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER, nonce=fresh))
    assert hop.status_code == 200, hop.text


def test_metadata_says_whether_nonces_are_required(world: World, tmp_path: Path) -> None:
    metadata = "/.well-known/oauth-authorization-server"
    assert world.client.get(metadata).json()["authchain_dpop_nonce_required"] is False
    (tmp_path / "nonces").mkdir()
    with_nonces = make_world(tmp_path / "nonces", nonce_source=NonceSource.generate())
    assert with_nonces.client.get(metadata).json()["authchain_dpop_nonce_required"] is True


# --------------------------------------------------------------------------------------------------
# The OAuth error blames the input that failed, whichever check came first.


def test_bad_proof_and_bad_subject_token_together_blame_the_proof(world: World) -> None:
    # The authority authenticates the requester first: a forged proof is the answer, even though
    # the subject token is forged too.
    h, p, s = world.start().split(".")
    forged_token = f"{h}.{p}.{s[:-4]}AAAA"
    h, p, s = world.proof(PLANNER).split(".")
    forged_proof = f"{h}.{p}.{s[:-4]}AAAA"
    response = world.post_token(world.hop_form(forged_token, to=CRM_AGENT), forged_proof)
    event = refused(world, response, "invalid_dpop_proof")
    assert event["detail"]["error"] == "signature_invalid"
