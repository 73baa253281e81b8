"""Hops through ``POST /token`` over loopback, against the in-process hop rate of the same run.

    .venv/bin/python bench/http_api.py [--quick]

The floor is ``Authority.exchange`` called in process, one hop after another, on the same kind of
store (SQLite, WAL, durable appends). Then ``authchain serve`` runs in its own process on 127.0.0.1
(uvicorn, one worker) and 1, 8 and 64 concurrent clients (keep-alive connections, see
:class:`LoadClient`) each delegate from the same parent token, one hop after another. Every
hop makes a fresh DPoP proof on the client and is verified, decided by policy, durably recorded and
signed by the server. Each level is bounded by a count and a time budget.

Figures: hops/s and p50/p99 latency (ms) per level; ratios: HTTP hops/s over in-process hops/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from _harness import percentile, write_results
from authchain.audit.store import open_store
from authchain.authority import Authority
from authchain.identity.keys import SigningKey
from authchain.sdk import AsyncAuthorityClient, AuthorityClient
from authchain.tokens.dpop import create_proof
from authchain.tokens.id_token import LocalIdentityProvider

PLANNER = "spiffe://example.org/agent/planner"
CRM = "spiffe://example.org/agent/crm"
ALICE = "alice@example.org"
SCOPES = ["crm:read", "crm:write"]
AUTHCHAIN = [sys.executable, "-c", "import sys; from authchain.cli import main; sys.exit(main())"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------------
# The floor: in process.


def in_process(workdir: Path, count: int) -> tuple[float, list[float]]:
    store = open_store(str(workdir / "inprocess.db"))
    authority = Authority(store, issuer="https://authority.example.org")
    idp = LocalIdentityProvider()
    authority.trust_issuer(idp.issuer, idp.jwks)
    authority.register_principal(ALICE, scopes=SCOPES)
    planner, crm = SigningKey.generate(), SigningKey.generate()
    authority.register_workload(PLANNER, kind="agent", jwk=planner.public.to_jwk(), scopes=SCOPES)
    authority.register_workload(CRM, kind="agent", jwk=crm.public.to_jwk(), scopes=SCOPES)
    now = int(time.time())
    parent = authority.start_task(
        subject_token=idp.issue(ALICE, audience=authority.issuer, now=now),
        dpop_proof=create_proof(planner, htm="POST", htu=authority.token_endpoint, now=now),
        scope=SCOPES,
    ).access_token

    def hop() -> None:
        proof = create_proof(
            planner, htm="POST", htu=authority.token_endpoint, now=int(time.time())
        )
        authority.exchange(subject_token=parent, dpop_proof=proof, audience=CRM, scope="crm:write")

    for _ in range(max(10, count // 10)):
        hop()
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        t0 = time.perf_counter_ns()
        hop()
        latencies.append((time.perf_counter_ns() - t0) / 1e6)
    rate = count / (time.perf_counter() - start)
    store.close()
    latencies.sort()
    return rate, latencies


# --------------------------------------------------------------------------------------------------
# Over HTTP.


def start_server(workdir: Path, admin: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*AUTHCHAIN, "serve", "--db", str(workdir / "http.db"), "--port", str(port)],
        env={**os.environ, "AUTHCHAIN_ADMIN_TOKEN": admin},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("authchain serve did not start")


def setup_http(url: str, admin: str) -> tuple[SigningKey, str]:
    headers = {"Authorization": f"Bearer {admin}"}
    idp = LocalIdentityProvider()
    planner, crm = SigningKey.generate(), SigningKey.generate()
    with httpx.Client(base_url=url, headers=headers) as c:
        c.post(
            "/admin/issuers", json={"issuer": idp.issuer, "jwks": idp.jwks.to_dict()}
        ).raise_for_status()
        c.post("/admin/principals", json={"id": ALICE, "scopes": SCOPES}).raise_for_status()
        for sid, key in ((PLANNER, planner), (CRM, crm)):
            body = {"id": sid, "kind": "agent", "jwk": key.public.to_jwk(), "scopes": SCOPES}
            c.post("/admin/workloads", json=body).raise_for_status()
    with AuthorityClient(url, planner) as authority:
        parent = authority.start_task(
            idp.issue(ALICE, audience=url, now=int(time.time())), scope=SCOPES
        ).access_token
    return planner, parent


class LoadClient:
    """One HTTP/1.1 keep-alive connection that sends hops as fast as the server answers them.

    A bare asyncio stream, not httpx: at 64 concurrent connections httpx's connection pool costs
    more CPU than the server (both share this machine's cores), and this benchmark measures the
    server. The request is what any RFC 8693 + RFC 9449 client sends: the form, and a fresh DPoP
    proof per request made with the workload's key. (``sdk_hops_per_s_1`` measures the SDK client.)
    """

    def __init__(self, url: str, key: SigningKey, form: bytes) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.htu = url + "/token"
        self.key = key
        self.form = form

    async def run(self, budget: Budget, latencies: list[float]) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            while budget.take():
                proof = create_proof(self.key, htm="POST", htu=self.htu, now=int(time.time()))
                request = (
                    f"POST /token HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(self.form)}\r\nDPoP: {proof}\r\n\r\n"
                ).encode() + self.form
                t0 = time.perf_counter_ns()
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"hop refused: {head[:40]!r} {body[:200]!r}")
                latencies.append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            writer.close()


class Budget:
    """At most ``count`` hops, and none started after ``seconds``."""

    def __init__(self, count: int, seconds: float) -> None:
        self.remaining = count
        self.deadline = time.monotonic() + seconds

    def take(self) -> bool:
        if self.remaining <= 0 or time.monotonic() > self.deadline:
            return False
        self.remaining -= 1
        return True


async def http_level(
    url: str, key: SigningKey, parent: str, clients: int, count: int, seconds: float
) -> tuple[float, list[float]]:
    """``clients`` concurrent connections share ``count`` hops; (hops/s, sorted latencies in ms)."""
    form = str(
        httpx.QueryParams(
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "subject_token": parent,
                "subject_token_type": "urn:ietf:params:oauth:token-type:txn_token",
                "audience": CRM,
                "scope": "crm:write",
            }
        )
    ).encode()
    load = LoadClient(url, key, form)
    await asyncio.gather(*(load.run(Budget(2, 10), []) for _ in range(clients)))  # warm up
    latencies: list[float] = []
    budget = Budget(count, seconds)
    start = time.perf_counter()
    await asyncio.gather(*(load.run(budget, latencies) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return len(latencies) / elapsed, latencies


async def sdk_level(url: str, key: SigningKey, parent: str, count: int) -> float:
    """One client, one hop after another, through the SDK (httpx)."""
    async with AsyncAuthorityClient(url, key) as authority:
        await authority.delegate(parent, to=CRM, scope="crm:write")
        start = time.perf_counter()
        for _ in range(count):
            await authority.delegate(parent, to=CRM, scope="crm:write")
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer hops (a smoke run)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        rate, lat = in_process(workdir, int(1000 * scale))
        figures["inprocess_hops_per_s"] = rate
        figures["inprocess_p50_ms"] = percentile(lat, 50)
        figures["inprocess_p99_ms"] = percentile(lat, 99)

        admin = secrets.token_urlsafe(24)
        process, url = start_server(workdir, admin)
        try:
            key, parent = setup_http(url, admin)
            for clients, count in ((1, 600), (8, 1600), (64, 3200)):
                rate, lat = asyncio.run(
                    http_level(url, key, parent, clients, int(count * scale), seconds=20.0)
                )
                figures[f"hops_per_s_{clients}"] = rate
                figures[f"p50_ms_{clients}"] = percentile(lat, 50)
                figures[f"p99_ms_{clients}"] = percentile(lat, 99)
                figures[f"hops_{clients}"] = len(lat)
                ratios[f"http_vs_inprocess_{clients}"] = rate / figures["inprocess_hops_per_s"]
            figures["sdk_hops_per_s_1"] = asyncio.run(sdk_level(url, key, parent, int(300 * scale)))
        finally:
            process.terminate()
            process.wait(10)
    ratios["http_vs_inprocess"] = ratios["http_vs_inprocess_64"]
    write_results("http", figures, ratios)


if __name__ == "__main__":
    main()
