"""The admin routes: the registry the policies read, and revocation. The bearer credential comes
from AUTHCHAIN_ADMIN_TOKEN; without one, every admin request is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from _http_world import ADMIN_TOKEN, CRM_AGENT, PLANNER, World, claims, make_world

from authchain.identity.keys import SigningKey


def test_admin_routes_refuse_everything_when_no_credential_is_configured(tmp_path: Path) -> None:
    world = make_world(tmp_path, admin_token=None)
    for path in ("/admin/principals", "/admin/workloads", "/admin/issuers", "/revoke"):
        response = world.client.post(path, json={}, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert response.json()["code"] == "admin_disabled"
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong", "Basic " + ADMIN_TOKEN, "Bearer", f"Bearer {ADMIN_TOKEN}x"]
)
def test_admin_route_refuses_a_missing_or_wrong_credential(
    world: World, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = world.client.post(
        "/admin/principals", json={"id": "bob@example.org"}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert world.authority.registry.find_principal("bob@example.org") is None


def test_register_principal_is_recorded(world: World) -> None:
    response = world.admin(
        "/admin/principals", {"id": "bob@example.org", "kind": "user", "scopes": ["crm:read"]}
    )
    assert response.status_code == 201
    index = response.json()["log_index"]
    event = world.store.get(index)
    assert event.kind == "principal.registered" and event.initiator == "bob@example.org"


def test_register_workload_then_it_can_start_a_task(world: World) -> None:
    key = SigningKey.generate()
    sid = "spiffe://example.org/agent/newcomer"
    response = world.admin(
        "/admin/workloads",
        {"id": sid, "kind": "agent", "jwk": key.public.to_jwk(), "scopes": ["crm:read"]},
    )
    assert response.status_code == 201, response.text
    world.keys[sid] = key
    world.start(sid, scope="crm:read")


@pytest.mark.parametrize(
    "body",
    [
        {"id": "spiffe://example.org/agent/x", "kind": "agent"},  # no jwk
        {"id": "not a spiffe id", "kind": "agent", "jwk": {"kty": "OKP"}},
        {"id": "spiffe://example.org/agent/x", "kind": "user", "jwk": {"kty": "OKP"}},
        {"id": "spiffe://example.org/agent/x", "kind": "agent", "jwk": {"kty": "oct", "k": "AA"}},
        {"id": "spiffe://example.org/agent/x", "kind": "agent", "jwk": {}, "scopes": "crm:read"},
    ],
)
def test_malformed_workload_is_a_400_problem(world: World, body: dict[str, object]) -> None:
    response = world.admin("/admin/workloads", body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400 and problem["type"].endswith("/problems/" + problem["code"])


def test_private_key_is_refused_as_a_workload_key(world: World) -> None:
    key = SigningKey.generate()
    response = world.admin(
        "/admin/workloads",
        {"id": "spiffe://example.org/agent/leaky", "kind": "agent", "jwk": key.private_jwk()},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_key"


def test_trust_issuer_with_a_non_url_is_refused(world: World) -> None:
    response = world.admin("/admin/issuers", {"issuer": "idp", "jwks": {"keys": []}})
    assert response.status_code == 400


def test_revoke_a_whole_task(world: World) -> None:
    token = world.start()
    txn = claims(token)["txn"]
    response = world.admin("/revoke", {"txn": txn, "reason": "user withdrew consent"})
    assert response.status_code == 200
    assert world.store.get(response.json()["log_index"]).kind == "task.revoked"
    refused = world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER))
    assert refused.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("body", [{}, {"txn": "t", "token_hash": "h" * 43}, {"reason": "x"}])
def test_revoke_needs_exactly_one_target(world: World, body: dict[str, str]) -> None:
    assert world.admin("/revoke", body).status_code == 400


def test_revocation_never_logs_the_raw_token(world: World) -> None:
    token = world.start()
    index = world.admin("/revoke", {"token": token}).json()["log_index"]
    assert token not in world.store.get_leaf(index).decode()
