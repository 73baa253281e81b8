"""POST /events (a service reports what it did, authenticated by its own key) and the read-only log
routes: checkpoint, proofs, entries and the trace of an event."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from _http_world import (
    ALICE,
    CRM_AGENT,
    EVENTS_URL,
    ISSUER,
    PLANNER,
    RESEARCH,
    TOKEN_URL,
    TOOL,
    TOOL_URL,
    World,
    asgi_post_scope,
    make_world,
)

from authchain.audit import open_checkpoint, verify_consistency, verify_inclusion
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import content_digest, create_proof
from authchain.tokens.nonce import NonceSource

ACCOUNT_URL = TOOL_URL + "/accounts/acme"


def presentation(world: World, who: str = CRM_AGENT) -> tuple[str, str]:
    """A token held by ``who`` (planner -> who) and a proof of it for PATCH on the tool."""
    token = world.hop(world.start(), PLANNER, to=who, scope=None)
    proof = create_proof(
        world.keys[who], htm="PATCH", htu=ACCOUNT_URL, now=world.now, access_token=token
    )
    return token, proof


def report(
    world: World, body: dict[str, Any], *, by: str | SigningKey = TOOL, **kw: Any
) -> httpx.Response:
    return world.report(body, by=by, htu=kw.get("htu", EVENTS_URL))


def action(token: str, proof: str, **extra: Any) -> dict[str, Any]:
    body = {
        "token": token,
        "proof": proof,
        "htm": "PATCH",
        "htu": ACCOUNT_URL,
        "action": "crm.update",
        "resource": "crm://accounts/acme",
        "outcome": "succeeded",
    }
    body.update(extra)
    return body


def test_reported_action_names_initiator_chain_presenter_and_executor(world: World) -> None:
    token, proof = presentation(world)
    response = report(world, action(token, proof, performed_at=world.now, report_id="r-1"))
    assert response.status_code == 201, response.text
    event = world.store.get(response.json()["log_index"])
    assert event.kind == "action.invoked"
    assert event.initiator == ALICE
    assert event.actor == CRM_AGENT
    assert list(event.chain or ()) == [PLANNER, CRM_AGENT]
    assert event.detail is not None and event.detail["executor"] == TOOL
    # The report id is the service's own word, kept apart from the evidence.
    assert event.reported == {"report_id": "r-1"}
    assert token not in world.store.get_leaf(response.json()["log_index"]).decode()


def test_a_retried_report_is_recorded_once(world: World) -> None:
    token, proof = presentation(world)
    first = report(world, action(token, proof, report_id="same"))
    second = report(world, action(token, proof, report_id="same"))
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["log_index"] == first.json()["log_index"]
    assert world.store.size() == first.json()["log_index"] + 1


def test_the_same_presentation_reported_twice_is_recorded_as_a_replay(world: World) -> None:
    token, proof = presentation(world)
    report(world, action(token, proof, report_id="a"))
    second = report(world, action(token, proof, report_id="b"))
    event = world.store.get(second.json()["log_index"])
    assert event.detail is not None and event.detail["error"] == "replay"


def test_refused_presentation_of_a_token_with_another_key_is_evidence(world: World) -> None:
    token, _ = presentation(world)
    stolen = create_proof(
        world.keys[RESEARCH], htm="PATCH", htu=ACCOUNT_URL, now=world.now, access_token=token
    )
    body = action(
        token, stolen, outcome="refused", refusal="key_binding_mismatch", presenter=RESEARCH
    )
    event = world.store.get(report(world, body).json()["log_index"])
    assert event.kind == "action.refused"
    # The presenter is named because its own proof's key is registered, not because the report
    # says so; the report's words are kept apart.
    assert event.actor == RESEARCH
    assert event.detail is not None and event.detail["holder"] == CRM_AGENT
    assert event.detail["error"] == "key_binding_mismatch"
    assert event.reported == {"presenter": RESEARCH, "refusal": "key_binding_mismatch"}


def test_report_without_the_services_proof_is_refused(world: World) -> None:
    token, proof = presentation(world)
    raw = json.dumps(action(token, proof)).encode()
    response = world.client.post(
        "/events",
        content=raw,
        headers={"Content-Type": "application/json", "Content-Digest": content_digest(raw)},
    )
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in response.headers["www-authenticate"]


def test_report_signed_by_an_unregistered_key_is_refused(world: World) -> None:
    token, proof = presentation(world)
    assert report(world, action(token, proof), by=SigningKey.generate()).status_code == 401


def test_reporters_proof_for_another_url_is_refused(world: World) -> None:
    token, proof = presentation(world)
    assert report(world, action(token, proof), htu=TOKEN_URL).status_code == 401


def test_reporters_proof_replayed_is_refused(world: World) -> None:
    token, proof = presentation(world)
    first = world.report(action(token, proof), jti="same-jti")
    again = world.report(action(token, proof), jti="same-jti")
    assert first.status_code == 201
    assert again.status_code == 401 and again.json()["code"] == "replay"


def test_reporter_authentication_failures_are_not_recorded(world: World) -> None:
    token, proof = presentation(world)
    size = world.store.size()
    assert report(world, action(token, proof), by=SigningKey.generate()).status_code == 401
    assert report(world, action(token, proof), htu=TOKEN_URL).status_code == 401
    assert world.store.size() == size


def test_reporters_proof_must_carry_the_servers_nonce_when_nonces_are_required(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path, nonce_source=NonceSource.generate())
    body = {"action": "crm.update", "resource": "crm://accounts/acme"}
    challenged = world.report(body)
    assert challenged.status_code == 401
    assert challenged.json()["code"] == "use_dpop_nonce"
    assert 'error="use_dpop_nonce"' in challenged.headers["www-authenticate"]
    nonce = challenged.headers["DPoP-Nonce"]
    accepted = world.report(body, nonce=nonce)
    assert accepted.status_code == 201, accepted.text


def test_client_that_disconnects_mid_body_is_not_logged_as_a_server_error(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = asgi_post_scope("/events")
    with caplog.at_level(logging.DEBUG, logger="authchain"):
        anyio.run(world.client.app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    "change",
    [
        {"action": None},
        {"resource": ""},
        {"outcome": "maybe"},
        {"performed_at": "yesterday"},
        {"performed_at": True},
        {"proof": None},
        {"attrs": [1]},
        {"action": "x" * 300},
    ],
)
def test_malformed_report_is_a_400_problem(world: World, change: dict[str, Any]) -> None:
    token, proof = presentation(world)
    body = {k: v for k, v in {**action(token, proof), **change}.items() if v is not None}
    response = report(world, body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_report_that_is_not_json_is_415(world: World) -> None:
    response = world.client.post(
        "/events",
        content=b"action=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


# --------------------------------------------------------------------------------------------------
# The log.


def test_checkpoint_is_a_signed_note_that_verifies_with_the_logs_key(world: World) -> None:
    world.start()
    response = world.client.get("/log/checkpoint")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    checkpoint = open_checkpoint(response.text, world.store.verifier())
    assert checkpoint.size == world.store.size()


def test_inclusion_proof_verifies_against_the_checkpoint(world: World) -> None:
    world.start()
    size = world.store.size()
    proof = world.client.get(f"/log/proof/inclusion?index=2&size={size}").json()
    checkpoint = open_checkpoint(world.client.get("/log/checkpoint").text, world.store.verifier())
    assert bytes.fromhex(proof["root"]) == checkpoint.root_hash
    verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]),
        2,
        size,
        [bytes.fromhex(h) for h in proof["proof"]],
        checkpoint.root_hash,
    )


def test_consistency_proof_verifies(world: World) -> None:
    old = world.store.size()
    world.start()
    new = world.store.size()
    proof = world.client.get(f"/log/proof/consistency?old={old}&size={new}").json()
    verify_consistency(
        old,
        new,
        bytes.fromhex(proof["old_root"]),
        bytes.fromhex(proof["root"]),
        [bytes.fromhex(h) for h in proof["proof"]],
    )


@pytest.mark.parametrize(
    "query",
    [
        "index=0",
        "index=-1&size=2",
        "index=abc&size=2",
        "index=0&size=99999",
        "index=5&size=3",
        "index=0&index=1&size=2",
        "index=１&size=2",
    ],
)
def test_bad_inclusion_query_is_a_4xx_problem(world: World, query: str) -> None:
    response = world.client.get(f"/log/proof/inclusion?{query}")
    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_entries_page(world: World) -> None:
    world.start()
    body = world.client.get("/log/entries?start=1&end=3").json()
    assert [row["index"] for row in body["entries"]] == [1, 2]
    assert body["entries"][0]["event"]["kind"] == "principal.registered"
    assert world.client.get("/log/entries?start=0&end=5000").status_code == 400
    assert world.client.get("/log/entries?start=99999").status_code == 404


def test_trace_of_a_reported_action_shows_the_whole_chain(world: World) -> None:
    token, proof = presentation(world)
    index = report(world, action(token, proof)).json()["log_index"]
    event_id = world.store.get(index).id
    body = world.client.get(f"/trace/{event_id}").json()
    assert body["initiator"]["id"] == ALICE
    assert body["executor"]["id"] == TOOL
    assert [hop["actor"] for hop in body["chain"]] == [PLANNER, CRM_AGENT]
    assert body["verdict"] == "complete"
    assert world.client.get("/trace/no-such-event").status_code == 404


def test_entries_and_traces_need_the_admin_credential_when_the_log_is_private(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path, public_log=False)
    assert world.client.get("/log/entries?start=0").status_code == 401
    assert world.client.get("/trace/x").status_code == 401
    assert world.client.get("/log/checkpoint").status_code == 200
    ok = world.client.get(
        "/log/entries?start=0",
        headers={"Authorization": "Bearer " + "test-admin-credential-0123456789"},
    )
    assert ok.status_code == 200


def test_discovery_documents(world: World) -> None:
    metadata = world.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == ISSUER
    assert metadata["token_endpoint"] == TOKEN_URL
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]
    assert metadata["dpop_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    jwks = world.client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwks["keys"]] == [world.authority.keys.active.kid]


def test_unknown_route_and_method_are_problems(world: World) -> None:
    assert world.client.get("/nowhere").json()["code"] == "not_found"
    response = world.client.get("/token")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"


def test_problem_type_urls_resolve(world: World) -> None:
    problem = world.client.get("/nowhere").json()
    described = world.client.get(problem["type"].removeprefix(ISSUER))
    assert described.status_code == 200 and described.json()["code"] == "not_found"
