"""A small world for the HTTP tests: an authority on a real SQLite store behind the real app, an
identity provider, a user and a few registered workloads, and helpers that speak RFC 8693 + RFC 9449
by hand (so tests can break each part of a request on purpose)."""

from __future__ import annotations

import base64
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from authchain.audit.store import LogStore, open_store
from authchain.authority import Authority
from authchain.identity.keys import SigningKey
from authchain.server import create_app
from authchain.tokens.dpop import content_digest, create_proof
from authchain.tokens.id_token import LocalIdentityProvider
from authchain.tokens.nonce import NonceSource

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

ISSUER = "https://authority.example.org"
TOKEN_URL = ISSUER + "/token"
EVENTS_URL = ISSUER + "/events"
TRUST_DOMAIN = "example.org"
ADMIN_TOKEN = "test-admin-credential-0123456789"
ALICE = "alice@example.org"
PLANNER = "spiffe://example.org/agent/planner"
CRM_AGENT = "spiffe://example.org/agent/crm"
RESEARCH = "spiffe://example.org/agent/research"
TOOL = "spiffe://example.org/tool/crm-updater"
TOOL_URL = "https://tool.example.org"

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
TXN_TOKEN = "urn:ietf:params:oauth:token-type:txn_token"


def claims(token: str) -> dict[str, Any]:
    """A token's payload, decoded without verification (the tests inspect what was issued)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


class Clock:
    """The authority's clock, moved by tests (no test waits for real time)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class World:
    store: LogStore
    authority: Authority
    client: TestClient
    idp: LocalIdentityProvider
    clock: Clock
    keys: dict[str, SigningKey] = field(default_factory=dict)

    @property
    def now(self) -> int:
        return int(self.clock())

    # Requests, built by hand.

    def id_token(self, sub: str = ALICE, **kw: Any) -> str:
        return self.idp.issue(sub, audience=ISSUER, now=self.now, **kw)

    def proof(
        self, who: str | SigningKey, *, htm: str = "POST", htu: str = TOKEN_URL, **kw: Any
    ) -> str:
        key = self.keys[who] if isinstance(who, str) else who
        return create_proof(key, htm=htm, htu=htu, now=self.now, **kw)

    def start_form(
        self, *, scope: str = "crm:read crm:write", purpose: str = "update ACME"
    ) -> dict[str, str]:
        return {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": self.id_token(),
            "subject_token_type": ID_TOKEN,
            "requested_token_type": TXN_TOKEN,
            "scope": scope,
            "request_details": f'{{"purpose": "{purpose}"}}',
        }

    def hop_form(self, token: str, *, to: str, scope: str | None = None) -> dict[str, str]:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": token,
            "subject_token_type": TXN_TOKEN,
            "requested_token_type": TXN_TOKEN,
            "audience": to,
        }
        if scope is not None:
            form["scope"] = scope
        return form

    def post_token(self, form: dict[str, str], proof: str | None, **headers: str) -> httpx.Response:
        all_headers = dict(headers)
        if proof is not None:
            all_headers["DPoP"] = proof
        return self.client.post("/token", data=form, headers=all_headers)

    def start(self, who: str = PLANNER, *, scope: str = "crm:read crm:write") -> str:
        response = self.post_token(self.start_form(scope=scope), self.proof(who))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def hop(self, token: str, who: str, *, to: str, scope: str | None = None) -> str:
        response = self.post_token(self.hop_form(token, to=to, scope=scope), self.proof(who))
        assert response.status_code == 200, response.text
        issued: str = response.json()["access_token"]
        return issued

    def report(
        self, body: dict[str, Any], *, by: str | SigningKey = TOOL, htu: str = EVENTS_URL, **kw: Any
    ) -> httpx.Response:
        """POST /events as a service: the body with its RFC 9530 Content-Digest, and the service's
        proof covering it (``kw`` goes to the proof: a nonce, another digest, a fixed jti)."""
        raw = json.dumps(body).encode()
        digest = content_digest(raw)
        proof = self.proof(by, htu=htu, **{"content_digest": digest, **kw})
        headers = {"Content-Type": "application/json", "Content-Digest": digest, "DPoP": proof}
        return self.client.post("/events", content=raw, headers=headers)

    def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


def register_serving(
    authority: Authority,
    spiffe_id: str,
    *,
    kind: str,
    jwk: dict[str, Any],
    scopes: Sequence[str],
    endpoints: Sequence[str] = (),
) -> int:
    """Register a workload with the URL prefixes it serves (the services that report actions)."""
    return authority.register_workload(
        spiffe_id, kind=kind, jwk=jwk, scopes=scopes, endpoints=endpoints
    )


def reopen(world: World, path: Path) -> World:
    """Another authority on the same log file (``path``), with the same clients and clock: after
    closing ``world`` it is the restarted server; beside a live ``world``, a second process."""
    store = open_store(str(path))
    authority = Authority(store, issuer=ISSUER, trust_domain=TRUST_DOMAIN, clock=world.clock)
    app = create_app(authority, admin_token=ADMIN_TOKEN, public_log=True)
    client = TestClient(app, base_url=ISSUER, raise_server_exceptions=False)
    return World(store, authority, client, world.idp, world.clock, world.keys)


def make_world(
    tmp_path: Path,
    *,
    admin_token: str | None = ADMIN_TOKEN,
    nonce_source: NonceSource | None = None,
    public_log: bool = True,
) -> World:
    clock = Clock()
    store = open_store(str(tmp_path / "log.db"))
    authority = Authority(
        store, issuer=ISSUER, trust_domain=TRUST_DOMAIN, clock=clock, nonce_source=nonce_source
    )
    app = create_app(authority, admin_token=admin_token, public_log=public_log)
    client = TestClient(app, base_url=ISSUER, raise_server_exceptions=False)
    idp = LocalIdentityProvider("https://idp.example.org")
    world = World(store, authority, client, idp, clock)
    authority.trust_issuer(idp.issuer, idp.jwks)
    authority.register_principal(
        ALICE, kind="user", scopes=["research:read", "crm:read", "crm:write"]
    )
    for spiffe_id, kind, scopes, endpoints in (
        (PLANNER, "agent", ["research:read", "crm:read", "crm:write"], []),
        (CRM_AGENT, "agent", ["crm:read", "crm:write"], []),
        (RESEARCH, "agent", ["research:read"], []),
        (TOOL, "tool", ["crm:write"], [TOOL_URL]),
    ):
        key = SigningKey.generate()
        world.keys[spiffe_id] = key
        register_serving(
            authority,
            spiffe_id,
            kind=kind,
            jwk=key.public.to_jwk(),
            scopes=scopes,
            endpoints=endpoints,
        )
    return world


def asgi_post_scope(
    path: str,
    *,
    content_type: str = "application/json",
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> dict[str, Any]:
    """The ASGI scope of a ``POST`` to ``path`` on this authority, for tests that drive the app
    with their own ``receive`` (a client that disconnects, or trickles its body)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "server": ("authority.example.org", 443),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"authority.example.org"),
            (b"content-type", content_type.encode()),
            *headers,
        ],
    }
