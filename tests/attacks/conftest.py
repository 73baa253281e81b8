"""A real authority for the attack suite: ``authchain serve`` on 127.0.0.1 (uvicorn in its own
process, a free port), a trusted identity provider, a user and registered workloads. The attacker
is a registered workload with its own valid key: it speaks to the authority only over HTTP, with the
SDK's client or by hand. The log is read back as an investigator would, from the store file."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from authchain.attribution import Finding, Report, findings, trace
from authchain.audit.records import Record, read
from authchain.audit.store import open_store
from authchain.identity.keys import SigningKey
from authchain.sdk import AuthorityClient
from authchain.tokens.id_token import LocalIdentityProvider

ADMIN = "attack-admin-" + secrets.token_hex(16)
AUTHCHAIN = [sys.executable, "-c", "import sys; from authchain.cli import main; sys.exit(main())"]
ALICE = "alice@example.org"
BOB = "bob@example.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Actor:
    """A registered workload: its SPIFFE ID, its key, and an SDK client speaking as it."""

    id: str
    key: SigningKey
    client: AuthorityClient


@dataclass
class Authority:
    url: str
    db: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    idp: LocalIdentityProvider = field(
        default_factory=lambda: LocalIdentityProvider("https://idp.example.org")
    )
    actors: dict[str, Actor] = field(default_factory=dict)

    # -- the process ----------------------------------------------------------------------------

    def start(self) -> None:
        env = {**os.environ, "AUTHCHAIN_ADMIN_TOKEN": ADMIN}
        self.process = subprocess.Popen(
            [*AUTHCHAIN, "serve", "--db", str(self.db), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                err = self.process.stderr.read() if self.process.stderr else b""
                raise RuntimeError(f"authchain serve did not start: {err!r}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- administration over HTTP ---------------------------------------------------------------

    def admin(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers={"Authorization": f"Bearer {ADMIN}"})

    def register(
        self,
        name: str,
        kind: str,
        scopes: list[str],
        *,
        endpoints: list[str] | None = None,
        key: SigningKey | None = None,
    ) -> Actor:
        sid = f"spiffe://example.org/{kind}/{name}"
        key = key or SigningKey.generate()
        body: dict[str, Any] = {
            "id": sid,
            "kind": kind,
            "jwk": key.public.to_jwk(),
            "scopes": scopes,
        }
        if endpoints is not None:
            body["endpoints"] = endpoints
        response = self.admin("/admin/workloads", body)
        assert response.status_code == 201, response.text
        actor = Actor(sid, key, AuthorityClient(self.url, key))
        self.actors[sid] = actor
        return actor

    def id_token(self, sub: str = ALICE, **kw: Any) -> str:
        return self.idp.issue(sub, audience=self.url, now=int(time.time()), **kw)

    # -- the investigator's view ----------------------------------------------------------------

    def record(self, index: int) -> Any:
        with open_store(str(self.db), create=False) as store:
            record: Record = read(store.get(index), index)
            return record

    def size(self) -> int:
        with open_store(str(self.db), create=False) as store:
            return store.size()

    def trace(self, index: int) -> Report:
        with open_store(str(self.db), create=False) as store:
            return trace(store, index=index)

    def findings(self, **kw: Any) -> list[Finding]:
        with open_store(str(self.db), create=False) as store:
            return findings(store, **kw)


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Authority]:
    port = _free_port()
    world = Authority(
        f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("attacks") / "log.db", port
    )
    world.start()
    try:
        assert (
            world.admin(
                "/admin/issuers", {"issuer": world.idp.issuer, "jwks": world.idp.jwks.to_dict()}
            ).status_code
            == 201
        )
        for user in (ALICE, BOB):
            response = world.admin(
                "/admin/principals",
                {"id": user, "kind": "user", "scopes": ["research:read", "crm:read", "crm:write"]},
            )
            assert response.status_code == 201, response.text
        yield world
    finally:
        for actor in world.actors.values():
            actor.client.close()
        world.stop()
