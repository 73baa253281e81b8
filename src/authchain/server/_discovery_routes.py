"""Discovery routes: what a client or a resource server reads before it talks to the authority.

The verification keys (JWKS), the RFC 8414 metadata, the policy set in force, the OpenAPI document,
the description of every problem type, and liveness. All are public (a policy is not secret: a
denial names the rule it broke) and none changes state.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import HttpError
from authchain.server._common import State, json_response
from authchain.server.openapi import PROBLEM_CODES, openapi_document
from authchain.tokens.hop import TOKEN_EXCHANGE_GRANT_TYPE
from authchain.tokens.id_token import ID_TOKEN_TYPE
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN

__all__ = ["jwks", "oauth_metadata", "openapi", "policy", "problem_type", "health"]


async def jwks(state: State, request: Request) -> Response:
    # Short caching: a rotated key must reach resource servers within a token lifetime.
    return json_response(state.authority.jwks().to_dict(), headers={"Cache-Control": "max-age=60"})


def _metadata(state: State) -> dict[str, Any]:
    authority = state.authority
    issuer = authority.issuer
    return {
        # RFC 8414 section 2.
        "issuer": issuer,
        "token_endpoint": authority.token_endpoint,
        # RFC 8414 section 2 / RFC 7662: where resource servers ask whether a token is still usable.
        "introspection_endpoint": authority.introspection_endpoint,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": [TOKEN_EXCHANGE_GRANT_TYPE],
        "response_types_supported": [],
        # The client is the workload whose registered key signs the DPoP proof; there is no client
        # secret or assertion (RFC 8414 "none": no client authentication at the token endpoint).
        "token_endpoint_auth_methods_supported": ["none"],
        # RFC 9449 section 5.1.
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        # RFC 8693 section 3 token types, by role. The names are this server's extension members.
        "subject_token_types_supported": [ID_TOKEN_TYPE, TXN_TOKEN_TYPE_URN],
        "issued_token_types_supported": [TXN_TOKEN_TYPE_URN],
        "authchain_trust_domain": authority.trust_domain,
        "authchain_events_endpoint": authority.events_endpoint,
        "authchain_dpop_nonce_required": authority.nonce_source is not None,
        # C2SP signed-note verifier key of the log's checkpoints, for witnesses and auditors.
        "authchain_log_verifier_key": authority.store.verifier_key(),
        # The policy set in force, for tools that decide ``invoke`` with it.
        "authchain_policy_endpoint": f"{issuer}/policy",
    }


async def oauth_metadata(state: State, request: Request) -> Response:
    return json_response(_metadata(state), headers={"Cache-Control": "max-age=300"})


async def policy(state: State, request: Request) -> Response:
    """The policy set in force as its canonical document: the exact bytes whose SHA-256 is the
    ``policy_set_hash`` every decision names, so a tool can check what it fetched and evaluate
    ``invoke`` with it (``PolicyEngine.from_canonical``). The hash is the entity tag."""
    engine = state.authority.policy
    digest = engine.policy_set_hash
    etag = f'"{digest}"'
    headers = {"ETag": etag, "Cache-Control": "max-age=30", "Authchain-Policy-Set-Hash": digest}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(engine.canonical_policy_set(), media_type="application/json", headers=headers)


async def openapi(state: State, request: Request) -> Response:
    return json_response(openapi_document(state.authority.issuer))


async def problem_type(state: State, request: Request) -> Response:
    code = request.path_params["code"]
    described = PROBLEM_CODES.get(code)
    if described is None:
        raise HttpError(404, "not_found", "no such problem type")
    status, summary = described
    return json_response(
        {"type": state.problem_base + code, "code": code, "status": status, "title": summary}
    )


async def health(state: State, request: Request) -> Response:
    return json_response({"status": "ok", "issuer": state.authority.issuer})
