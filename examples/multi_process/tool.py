"""The CRM tool service: a separate process that verifies every presented task token offline and
reports each action to the authority through its durable outbox.

    python tool.py --authority URL --port N --key KEY.json --outbox OUTBOX.db
"""

from __future__ import annotations

import argparse

import uvicorn
from _common import load_key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from authchain.sdk import (
    AuthchainMiddleware,
    AuthorityClient,
    VerifiedCall,
    describe_action,
    requires_scope,
)

IDENTITY = "spiffe://example.org/tool/crm-updater"

ACCOUNTS: dict[str, dict[str, str]] = {"acme": {"name": "ACME", "stage": "prospect"}}


@requires_scope("crm:write", action="crm.accounts.update")
async def update_account(request: Request) -> JSONResponse:
    call: VerifiedCall = request.scope["state"]["authchain"]
    account = request.path_params["account"]
    describe_action(request, resource=f"crm://accounts/{account}")
    changes = await request.json()
    ACCOUNTS.setdefault(account, {}).update({k: str(v) for k, v in changes.items()})
    return JSONResponse(
        {
            "account": ACCOUNTS[account],
            "on_behalf_of": call.initiator,
            "presented_by": call.actor,
            "chain": list(call.chain),
        }
    )


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authority", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--outbox", required=True)
    args = parser.parse_args()
    key = load_key(args.key)
    base_url = f"http://127.0.0.1:{args.port}"
    routes = [
        Route("/accounts/{account}", update_account, methods=["PATCH"]),
        Route("/healthz", health),
    ]
    app = AuthchainMiddleware(
        Starlette(routes=routes),
        authority=AuthorityClient(args.authority, key),
        identity=IDENTITY,
        base_url=base_url,
        outbox=args.outbox,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
