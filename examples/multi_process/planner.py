"""The planner agent: a separate process that runs one task and exits.

It exchanges Alice's ID token for the first task token, delegates `crm:write` to the CRM agent (a
hop recorded with its policy decision), tries to delegate a scope it does not hold (refused and
recorded), and asks the CRM agent to do the work, presenting its own token.

    python planner.py --authority URL --key KEY.json --id-token FILE --crm-agent URL
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import httpx
from _common import load_key

from authchain.errors import RemoteError
from authchain.sdk import AgentAuth, AuthorityClient, invoke_agent

IDENTITY = "spiffe://example.org/agent/planner"
CRM_AGENT = "spiffe://example.org/agent/crm"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--authority", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--id-token", required=True)
    parser.add_argument("--crm-agent", required=True)
    args = parser.parse_args()
    key = load_key(args.key)

    with (
        AuthorityClient(args.authority, key) as authority,
        invoke_agent("planner", agent_id=IDENTITY),
    ):
        auth = AgentAuth(key, authority=authority)
        task = auth.start_task(
            Path(args.id_token).read_text().strip(),
            scope="crm:read crm:write",
            purpose="move ACME to the negotiation stage",
        )
        print(f"planner: task {task.txn} started (log index {task.log_index})", flush=True)
        try:
            auth.delegate(to=CRM_AGENT, scope="crm:delete")
        except RemoteError as refused:
            print(f"planner: delegation refused: {refused.error} (log index {refused.log_index})")
        handed = auth.delegate(to=CRM_AGENT, scope="crm:write")
        print(f"planner: delegated crm:write to {CRM_AGENT} (log index {handed.log_index})")
        response = httpx.post(
            f"{args.crm_agent}/tasks/update-account",
            json={
                "token": handed.access_token,
                "account": "acme",
                "changes": {"stage": "negotiation"},
            },
            auth=auth,
            timeout=30,
        )
    response.raise_for_status()
    print("planner: result " + json.dumps(response.json(), sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
