"""The multi-process example: an authority, two agents and a tool, each its own process on loopback.

    python examples/multi_process/run.py [--workdir DIR]

1. ``authchain serve`` runs the authority (a fresh SQLite log in the work directory).
2. This launcher plays the operator: it trusts a local identity provider, registers Alice and a key
   for each workload through the admin API, and logs Alice in (an ID token for the planner).
3. The tool service and the CRM agent start (uvicorn, each with the SDK middleware and its own
   outbox); the planner process starts the task, delegates to the CRM agent and asks it to work;
   the CRM agent calls the tool with its delegated token.
4. Once the tool's report has reached the log, it prints ``authchain trace`` for the tool's action:
   who initiated it, which identity executed it, and what allowed each delegation.

Exit status 0 when the trace is complete, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from _common import save_key, wait_until_up

from authchain.identity.keys import SigningKey
from authchain.tokens.id_token import LocalIdentityProvider

HERE = Path(__file__).resolve().parent
AUTHCHAIN = [sys.executable, "-c", "import sys; from authchain.cli import main; sys.exit(main())"]
ALICE = "alice@example.org"
WORKLOADS = {
    "planner": ("spiffe://example.org/agent/planner", "agent", ["crm:read", "crm:write"]),
    "crm_agent": ("spiffe://example.org/agent/crm", "agent", ["crm:read", "crm:write"]),
    "tool": ("spiffe://example.org/tool/crm-updater", "tool", ["crm:write"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(
    stack: ExitStack, argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("wb"))
    process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=HERE)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    stack.callback(stop)
    return process


def find_tool_action(authority: str, admin: str, tool_id: str, timeout: float) -> dict[str, Any]:
    """Poll the log until the tool's report of its action has arrived (it travels through the
    tool's outbox, asynchronously)."""
    deadline = time.monotonic() + timeout
    start = 0
    while time.monotonic() < deadline:
        page = httpx.get(
            f"{authority}/log/entries",
            params={"start": start},
            headers={"Authorization": f"Bearer {admin}"},
        ).json()
        for row in page["entries"]:
            event = row["event"]
            detail = event.get("detail") or {}
            if event["kind"] == "action.invoked" and detail.get("executor") == tool_id:
                return dict(event)
        start = page["end"]
        time.sleep(0.2)
    raise TimeoutError("the tool's action did not reach the log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", help="Where the log, keys and outboxes go (default: a temp dir)."
    )
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="authchain-example-"))
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "authority.db"

    admin = secrets.token_urlsafe(24)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ports = {name: free_port() for name in ("authority", "tool", "crm_agent")}
    authority = f"http://127.0.0.1:{ports['authority']}"
    tool_url = f"http://127.0.0.1:{ports['tool']}"
    crm_url = f"http://127.0.0.1:{ports['crm_agent']}"

    with ExitStack() as stack:
        start(
            stack,
            [*AUTHCHAIN, "serve", "--db", str(db), "--port", str(ports["authority"])],
            {**env, "AUTHCHAIN_ADMIN_TOKEN": admin},
            workdir / "authority.log",
        )
        wait_until_up(authority)

        # The operator: trust the identity provider, register Alice and the workloads' keys.
        headers = {"Authorization": f"Bearer {admin}"}
        idp = LocalIdentityProvider("https://idp.example.org")
        httpx.post(
            f"{authority}/admin/issuers",
            json={"issuer": idp.issuer, "jwks": idp.jwks.to_dict()},
            headers=headers,
        ).raise_for_status()
        httpx.post(
            f"{authority}/admin/principals",
            json={"id": ALICE, "kind": "user", "scopes": ["crm:read", "crm:write"]},
            headers=headers,
        ).raise_for_status()
        key_files = {}
        for name, (spiffe_id, kind, scopes) in WORKLOADS.items():
            key = SigningKey.generate()
            key_files[name] = workdir / f"{name}.key.json"
            save_key(key, key_files[name])
            httpx.post(
                f"{authority}/admin/workloads",
                json={
                    "id": spiffe_id,
                    "kind": kind,
                    "jwk": key.public.to_jwk(),
                    "scopes": scopes,
                    "endpoints": {"tool": [tool_url], "crm_agent": [crm_url]}.get(name, []),
                },
                headers=headers,
            ).raise_for_status()
        # Alice logs in: her identity provider gives the planner an ID token for this authority.
        id_token_file = workdir / "alice.id_token"
        id_token_file.write_text(idp.issue(ALICE, audience=authority, now=int(time.time())))

        py = [sys.executable]
        start(
            stack,
            [
                *py,
                "tool.py",
                "--authority",
                authority,
                "--port",
                str(ports["tool"]),
                "--key",
                str(key_files["tool"]),
                "--outbox",
                str(workdir / "tool.outbox.db"),
            ],
            env,
            workdir / "tool.log",
        )
        start(
            stack,
            [
                *py,
                "crm_agent.py",
                "--authority",
                authority,
                "--port",
                str(ports["crm_agent"]),
                "--key",
                str(key_files["crm_agent"]),
                "--outbox",
                str(workdir / "crm_agent.outbox.db"),
                "--tool",
                tool_url,
            ],
            env,
            workdir / "crm_agent.log",
        )
        wait_until_up(tool_url)
        wait_until_up(crm_url)

        planner = subprocess.run(
            [
                *py,
                "planner.py",
                "--authority",
                authority,
                "--key",
                str(key_files["planner"]),
                "--id-token",
                str(id_token_file),
                "--crm-agent",
                crm_url,
            ],
            env=env,
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
        sys.stdout.write(planner.stdout)
        if planner.returncode != 0:
            sys.stderr.write(planner.stderr)
            for log in sorted(workdir.glob("*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text()}")
            return 1

        action = find_tool_action(authority, admin, WORKLOADS["tool"][0], args.timeout)
        print(f"\nThe tool's action is log entry {action['id']}; its trace:\n", flush=True)
        shown = subprocess.run(
            [*AUTHCHAIN, "trace", action["id"], "--db", str(db)],
            env={**env, "COLUMNS": "120"},
            timeout=args.timeout,
        )
        report = subprocess.run(
            [*AUTHCHAIN, "trace", action["id"], "--db", str(db), "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=args.timeout,
        )
    verdict = json.loads(report.stdout)["verdict"] if report.returncode == 0 else "unknown"
    print(f"\nverdict: {verdict}  (work directory: {workdir})")
    return 0 if shown.returncode == 0 and verdict == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
