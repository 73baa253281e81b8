"""Issue 10, points 13 (registry side) and the endpoints of a workload.

A workload of another trust domain (``spiffe://evil.org/...``) could be registered locally and then
start tasks here; an issuer could be trusted with an empty JWK Set. Both are refused. A workload's
registration now names the URL prefixes it serves (``endpoints``): normalised as a DPoP ``htu`` is,
recorded in ``workload.registered``, kept beside the log and checked against it at start-up, and
matched by :meth:`WorkloadRecord.serves` at a path-segment boundary.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from _authority_world import CRM_API, ISSUER, TRUST_DOMAIN, World

from authchain.audit.records import WorkloadRegistered
from authchain.audit.store import open_store
from authchain.authority import Authority
from authchain.errors import InvalidKeyError, InvalidPrincipalError, LogIntegrityError
from authchain.identity.keys import SigningKey
from authchain.identity.registry import WorkloadRecord
from authchain.policy import PolicyEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

import _http_world as http  # noqa: E402

EVIL = "spiffe://evil.org/agent/planner"


def _jwk() -> dict[str, Any]:
    return SigningKey.generate().public.to_jwk()


# --------------------------------------------------------------------------------------------------
# Only this trust domain's workloads; only issuers with keys.


def test_a_workload_of_another_trust_domain_cannot_be_registered_locally(world: World) -> None:
    size = world.store.size()
    with pytest.raises(InvalidPrincipalError, match="evil.org") as caught:
        world.authority.register_workload(EVIL, kind="agent", jwk=_jwk(), scopes=["crm:write"])
    assert "example.org" in caught.value.message
    assert world.authority.registry.find_workload(EVIL) is None
    assert world.store.size() == size


def test_a_workload_of_a_sub_domain_is_another_trust_domain(world: World) -> None:
    with pytest.raises(InvalidPrincipalError):
        world.authority.register_workload(
            "spiffe://eu.example.org/agent/planner", kind="agent", jwk=_jwk()
        )


def test_an_issuer_with_an_empty_jwks_is_refused(world: World) -> None:
    size = world.store.size()
    with pytest.raises(InvalidKeyError, match="no key"):
        world.authority.trust_issuer("https://idp.evil.org", {"keys": []})
    assert "https://idp.evil.org" not in world.authority.registry.issuers
    assert world.store.size() == size


# --------------------------------------------------------------------------------------------------
# Endpoints.


def test_endpoints_are_normalised_recorded_and_kept(world: World) -> None:
    index = world.authority.register_workload(
        CRM_API,
        kind="service",
        jwk=world.key(CRM_API).public.to_jwk(),
        scopes=["crm:write"],
        endpoints=["HTTPS://CRM-API.example.org:443", "https://crm-api.example.org/v2/./x/../"],
    )
    expected = ("https://crm-api.example.org/", "https://crm-api.example.org/v2/")
    record = world.record(index)
    assert isinstance(record, WorkloadRegistered)
    assert record.endpoints == expected
    assert world.authority.registry.workload(CRM_API).endpoints == expected


def test_a_registration_without_endpoints_records_none(world: World) -> None:
    index = world.authority.register_workload(
        "spiffe://example.org/agent/quiet", kind="agent", jwk=_jwk()
    )
    assert world.record(index).endpoints is None
    assert "endpoints" not in world.store.get(index).to_dict()["detail"]


def test_endpoints_survive_a_restart_and_an_edit_beside_the_log_is_refused(
    world: World, db_path: Path, policy: PolicyEngine
) -> None:
    world.authority.register_workload(
        CRM_API,
        kind="service",
        jwk=world.key(CRM_API).public.to_jwk(),
        endpoints=["https://crm-api.example.org"],
    )
    world.store.close()

    def restart() -> Authority:
        return Authority(
            open_store(str(db_path), create=False),
            issuer=ISSUER,
            trust_domain=TRUST_DOMAIN,
            policy=policy,
        )

    again = restart()
    assert again.registry.workload(CRM_API).serves("https://crm-api.example.org/accounts")
    again.store.close()
    # An attacker with the database widens what the CRM API may report on: refused at start-up.
    conn = sqlite3.connect(db_path)
    (value,) = conn.execute("SELECT value FROM meta WHERE key = 'authority.registry'").fetchone()
    registry = json.loads(value)
    for workload in registry["workloads"]:
        if workload["id"] == CRM_API:
            workload["endpoints"] = ["https://crm-api.example.org/", "https://bank.example.org/"]
    conn.execute(
        "UPDATE meta SET value = ? WHERE key = 'authority.registry'", (json.dumps(registry),)
    )
    conn.commit()
    conn.close()
    with pytest.raises(LogIntegrityError, match="does not match its record"):
        restart()


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://crm-api.example.org", "https"),
        ("ftp://crm-api.example.org", "not http or https"),
        ("https://user@crm-api.example.org", "userinfo"),
        ("https://crm-api.example.org/?q=1", "query"),
        ("https://crm-api.example.org/#top", "fragment"),
        ("crm-api.example.org/api", "absolute"),
        ("https://crm-api.example.org/" + "a" * 2048, "2048"),
        ("https://crm-api.example.org/a b", "RFC 3986"),
    ],
)
def test_an_unusable_endpoint_is_refused(world: World, endpoint: str, why: str) -> None:
    with pytest.raises(InvalidPrincipalError, match=why):
        world.authority.register_workload(
            "spiffe://example.org/service/x", kind="service", jwk=_jwk(), endpoints=[endpoint]
        )


def test_more_than_sixteen_endpoints_are_refused(world: World) -> None:
    many = [f"https://crm-api.example.org/v{i}" for i in range(17)]
    with pytest.raises(InvalidPrincipalError, match="limit 16"):
        world.authority.register_workload(
            "spiffe://example.org/service/x", kind="service", jwk=_jwk(), endpoints=many
        )


@pytest.mark.parametrize(
    "endpoint",
    ["http://localhost:8080", "http://127.0.0.1:9000/api", "http://[::1]/", "http://a.localhost"],
)
def test_plain_http_is_accepted_for_a_loopback_host(endpoint: str) -> None:
    record = WorkloadRecord.create(
        "spiffe://example.org/service/x", "service", _jwk(), (), [endpoint]
    )
    assert len(record.endpoints) == 1


def _serving(*endpoints: str) -> WorkloadRecord:
    return WorkloadRecord.create("spiffe://example.org/service/x", "service", _jwk(), (), endpoints)


@pytest.mark.parametrize(
    ("endpoints", "htu", "served"),
    [
        (("https://crm-api.example.org",), "https://crm-api.example.org/accounts/acme", True),
        (("https://crm-api.example.org",), "https://crm-api.example.org", True),
        (("https://crm-api.example.org",), "https://CRM-API.example.org:443/x?y#z", True),
        (("https://crm-api.example.org",), "https://crm-api.example.org.evil.net/x", False),
        (("https://crm-api.example.org",), "https://crm-api.example.org:8443/x", False),
        (("https://crm-api.example.org",), "http://crm-api.example.org/x", False),
        (("https://api.example.org/crm",), "https://api.example.org/crm", True),
        (("https://api.example.org/crm",), "https://api.example.org/crm/accounts", True),
        (("https://api.example.org/crm",), "https://api.example.org/crmx", False),
        (("https://api.example.org/crm",), "https://api.example.org/crm/../bank", False),
        (("https://api.example.org/crm",), "https://api.example.org/%63rm/a", True),
        (("https://api.example.org/crm",), "https://api.example.org/crm%2Fx", False),
        (("https://api.example.org/crm/",), "https://api.example.org/crm", True),
        (("https://api.example.org/crm",), "not a url", False),
        ((), "https://crm-api.example.org/", False),
    ],
)
def test_serves_matches_a_normalised_prefix_at_a_segment_boundary(
    endpoints: tuple[str, ...], htu: str, served: bool
) -> None:
    assert _serving(*endpoints).serves(htu) is served


def test_http_admin_registers_endpoints_and_refuses_a_foreign_workload(tmp_path: Path) -> None:
    web = http.make_world(tmp_path)
    try:
        sid = "spiffe://example.org/service/crm-api"
        response = web.admin(
            "/admin/workloads",
            {
                "id": sid,
                "kind": "service",
                "jwk": _jwk(),
                "scopes": ["crm:write"],
                "endpoints": ["https://crm-api.example.org"],
            },
        )
        assert response.status_code == 201, response.text
        event = web.store.get(response.json()["log_index"]).to_dict()
        assert event["detail"]["endpoints"] == ["https://crm-api.example.org/"]
        assert web.authority.registry.workload(sid).serves("https://crm-api.example.org/a")

        bad = web.admin(
            "/admin/workloads",
            {
                "id": sid,
                "kind": "service",
                "jwk": _jwk(),
                "endpoints": "https://crm-api.example.org",
            },
        )
        assert bad.status_code == 400
        foreign = web.admin("/admin/workloads", {"id": EVIL, "kind": "agent", "jwk": _jwk()})
        assert foreign.status_code == 400
        assert foreign.json()["code"] == "invalid_principal"
        empty = web.admin(
            "/admin/issuers", {"issuer": "https://idp.evil.org", "jwks": {"keys": []}}
        )
        assert empty.status_code == 400
        assert empty.json()["code"] == "invalid_key"
    finally:
        web.client.close()
        web.store.close()
