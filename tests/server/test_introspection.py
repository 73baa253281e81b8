"""``POST /introspect`` (RFC 7662): a resource server learns that a token it verified offline was
revoked (itself, an ancestor or its task) or that its holder's key was replaced, so it can refuse
it. Only registered workloads may ask."""

from __future__ import annotations

from pathlib import Path

import pytest
from _http_world import CRM_AGENT, ISSUER, PLANNER, TOOL, World, make_world

from authchain.identity.keys import SigningKey

URL = ISSUER + "/introspect"


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _ask(world: World, token: str, who: str | SigningKey = TOOL) -> dict[str, object]:
    response = world.client.post(
        "/introspect", data={"token": token}, headers={"DPoP": world.proof(who, htu=URL)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, object] = response.json()
    return body


def test_a_usable_token_is_active_with_its_claims(world: World) -> None:
    root = world.start()
    answer = _ask(world, root)
    assert answer["active"] is True
    assert answer["sub"] == "alice@example.org" and answer["scope"] == "crm:read crm:write"


def test_a_token_whose_ancestor_was_revoked_is_inactive(world: World) -> None:
    root = world.start()
    child = world.hop(root, PLANNER, to=CRM_AGENT, scope="crm:write")
    assert _ask(world, child)["active"] is True
    world.authority.revoke(token_hash=_hash(root))
    assert _ask(world, child) == {"active": False, "authchain_reason": "revoked"}


def test_a_token_of_an_ended_task_or_a_replaced_key_is_inactive(world: World) -> None:
    root = world.start()
    child = world.hop(root, PLANNER, to=CRM_AGENT, scope="crm:write")
    world.authority.register_workload(
        CRM_AGENT, kind="agent", jwk=SigningKey.generate().public.to_jwk(), scopes=["crm:write"]
    )
    assert _ask(world, child)["active"] is False
    other = world.start()
    world.authority.end_task(_txn(world, other))
    assert _ask(world, other)["active"] is False


def test_junk_and_expired_tokens_are_inactive(world: World) -> None:
    assert _ask(world, "not-a-token")["active"] is False
    root = world.start()
    world.clock.advance(3600)
    assert _ask(world, root)["active"] is False


def test_only_a_registered_workload_may_ask(world: World) -> None:
    root = world.start()
    stranger = world.client.post(
        "/introspect",
        data={"token": root},
        headers={"DPoP": world.proof(SigningKey.generate(), htu=URL)},
    )
    assert stranger.status_code == 401
    missing = world.client.post("/introspect", data={"token": root})
    assert missing.status_code == 401


def _hash(token: str) -> str:
    from authchain._encoding import sha256_b64url

    return sha256_b64url(token)


def _txn(world: World, token: str) -> str:
    from _http_world import claims

    txn: str = claims(token)["txn"]
    return txn
