"""``GET /policy``: the policy set in force, as the exact bytes its hash covers, so a tool can decide
``invoke`` with the authority's current set and know which set that was."""

from __future__ import annotations

import hashlib
from pathlib import Path

from _http_world import make_world

from authchain.policy import PolicyEngine


def test_the_policy_in_force_is_served_as_its_canonical_document(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    response = world.client.get("/policy")
    assert response.status_code == 200
    digest = world.authority.policy.policy_set_hash
    assert hashlib.sha256(response.content).hexdigest() == digest
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["authchain-policy-set-hash"] == digest
    engine = PolicyEngine.from_canonical(response.content, expected_hash=digest)
    assert engine.policy_ids == world.authority.policy.policy_ids
    again = world.client.get("/policy", headers={"If-None-Match": f'"{digest}"'})
    assert again.status_code == 304 and again.content == b""
    metadata = world.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["authchain_policy_endpoint"] == world.authority.issuer + "/policy"
