"""The CRM agent: a separate process. The planner calls it (presenting the planner's own task token)
and hands it a token delegated to the CRM agent; the CRM agent uses that token, with its own key, to
call the CRM tool.

    python crm_agent.py --authority URL --port N --key KEY.json --outbox OUTBOX.db --tool URL
"""

from __future__ import annotations

import argparse

import httpx
import uvicorn
from _common import load_key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authchain.sdk import AgentAuth, AuthchainMiddleware, AuthorityClient, requires_scope

IDENTITY = "spiffe://example.org/agent/crm"


def build(args: argparse.Namespace) -> AuthchainMiddleware:
    key = load_key(args.key)

    @requires_scope("crm:write", action="agent.crm.update_account")
    async def update_account(request: Request) -> JSONResponse:
        body = await request.json()
        # The token the planner delegated to this agent: bound to this agent's key.
        auth = AgentAuth(key, body["token"])
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.patch(
                f"{args.tool}/accounts/{body['account']}", json=body["changes"], auth=auth
            )
        return JSONResponse(response.json(), status_code=response.status_code)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes = [
        Route("/tasks/update-account", update_account, methods=["POST"]),
        Route("/healthz", health),
    ]
    return AuthchainMiddleware(
        Starlette(routes=routes),
        authority=AuthorityClient(args.authority, key),
        identity=IDENTITY,
        base_url=f"http://127.0.0.1:{args.port}",
        outbox=args.outbox,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authority", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--outbox", required=True)
    parser.add_argument("--tool", required=True)
    args = parser.parse_args()
    uvicorn.run(build(args), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
