"""Against a real server: ``authchain serve`` on 127.0.0.1 (uvicorn, a separate process, a free
port), driven by the SDK and by a client written from RFC 8693 and RFC 9449 alone (PyJWT and plain
httpx, no Authchain code), which starts a task, delegates, and is refused on escalation and replay."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from authchain.identity.keys import SigningKey
from authchain.sdk import AgentAuth, AuthorityClient
from authchain.tokens.id_token import LocalIdentityProvider

ADMIN = "live-admin-" + secrets.token_hex(16)
# The ``authchain`` console script, run by this interpreter.
AUTHCHAIN = [sys.executable, "-c", "import sys; from authchain.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Live:
    url: str
    process: subprocess.Popen[bytes]
    db: Path

    def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    db = tmp_path_factory.mktemp("live") / "log.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AUTHCHAIN_ADMIN_TOKEN": ADMIN}
    process = subprocess.Popen(
        [*AUTHCHAIN, "serve", "--db", str(db), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"authchain serve did not start: {process.stderr.read()!r}")  # type: ignore[union-attr]
            time.sleep(0.1)
        yield Live(url, process, db)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@dataclass
class Setup:
    idp: LocalIdentityProvider
    planner: SigningKey
    crm: SigningKey


@pytest.fixture(scope="module")
def setup(live: Live) -> Setup:
    idp = LocalIdentityProvider("https://idp.example.org")
    planner, crm = SigningKey.generate(), SigningKey.generate()
    assert (
        live.admin("/admin/issuers", {"issuer": idp.issuer, "jwks": idp.jwks.to_dict()}).status_code
        == 201
    )
    assert (
        live.admin(
            "/admin/principals",
            {"id": "alice@example.org", "kind": "user", "scopes": ["crm:read", "crm:write"]},
        ).status_code
        == 201
    )
    for sid, key in (
        ("spiffe://example.org/agent/planner", planner),
        ("spiffe://example.org/agent/crm", crm),
    ):
        body = {
            "id": sid,
            "kind": "agent",
            "jwk": key.public.to_jwk(),
            "scopes": ["crm:read", "crm:write"],
        }
        assert live.admin("/admin/workloads", body).status_code == 201
    return Setup(idp, planner, crm)


def test_sdk_starts_a_task_and_delegates_over_loopback(live: Live, setup: Setup) -> None:
    with AuthorityClient(live.url, setup.planner) as authority:
        auth = AgentAuth(setup.planner, authority=authority)
        id_token = setup.idp.issue("alice@example.org", audience=live.url, now=int(time.time()))
        started = auth.start_task(id_token, scope="crm:read crm:write", purpose="live test")
        handed = auth.delegate(to="spiffe://example.org/agent/crm", scope="crm:write")
    assert handed.txn == started.txn and handed.actor == "spiffe://example.org/agent/crm"
    checkpoint = httpx.get(live.url + "/log/checkpoint").text
    assert checkpoint.splitlines()[1].isdigit()


# --------------------------------------------------------------------------------------------------
# An independent client: only RFC 8693 (form parameters), RFC 9449 (DPoP proof) and PyJWT.


class RfcClient:
    def __init__(self, token_endpoint: str) -> None:
        self.token_endpoint = token_endpoint
        self.key = generate_private_key(SECP256R1())
        numbers = self.key.public_key().public_numbers()

        def b64(n: int) -> str:
            return jwt.utils.base64url_encode(n.to_bytes(32, "big")).decode()

        self.jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y)}

    def proof(self) -> str:
        # RFC 9449 section 4.2: typ dpop+jwt, the public jwk in the header, jti/htm/htu/iat.
        claims = {
            "jti": str(uuid.uuid4()),
            "htm": "POST",
            "htu": self.token_endpoint,
            "iat": int(time.time()),
        }
        return jwt.encode(
            claims, self.key, algorithm="ES256", headers={"typ": "dpop+jwt", "jwk": self.jwk}
        )

    def exchange(self, form: dict[str, str], proof: str | None = None) -> httpx.Response:
        # RFC 8693 section 2.1: form-encoded POST to the token endpoint.
        return httpx.post(self.token_endpoint, data=form, headers={"DPoP": proof or self.proof()})


def test_client_written_from_the_rfcs_alone(live: Live, setup: Setup) -> None:
    metadata = httpx.get(live.url + "/.well-known/oauth-authorization-server").json()
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in metadata["grant_types_supported"]
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]
    agent = RfcClient(metadata["token_endpoint"])
    sid = "spiffe://example.org/agent/rfc-client"
    assert (
        live.admin(
            "/admin/workloads",
            {"id": sid, "kind": "agent", "jwk": agent.jwk, "scopes": ["crm:read", "crm:write"]},
        ).status_code
        == 201
    )

    id_token = setup.idp.issue(
        "alice@example.org", audience=metadata["issuer"], now=int(time.time())
    )
    start = agent.exchange(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": id_token,
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "requested_token_type": "urn:ietf:params:oauth:token-type:txn_token",
            "scope": "crm:read crm:write",
            "request_details": json.dumps({"purpose": "interop"}),
        }
    )
    assert start.status_code == 200, start.text
    token = start.json()
    assert token["token_type"] == "DPoP"
    assert token["issued_token_type"] == "urn:ietf:params:oauth:token-type:txn_token"

    hop = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": token["access_token"],
        "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
        "audience": "spiffe://example.org/agent/crm",
        "scope": "crm:read",
    }
    delegated = agent.exchange(hop)
    assert delegated.status_code == 200, delegated.text
    assert delegated.json()["scope"] == "crm:read"

    # Escalation: ask for more than the held token carries.
    escalation = agent.exchange({**hop, "scope": "crm:read crm:write crm:admin"})
    assert escalation.status_code == 400 and escalation.json()["error"] == "invalid_scope"

    # Replay: the same proof twice.
    proof = agent.proof()
    assert agent.exchange(hop, proof).status_code == 200
    replayed = agent.exchange(hop, proof)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof"
