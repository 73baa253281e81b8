"""Administration routes: trust an identity provider, register principals and workloads, revoke.

Each needs the admin bearer credential (RFC 6750, from ``AUTHCHAIN_ADMIN_TOKEN``; see
:func:`~authchain.server._common.require_admin`), and each is itself an audit event whose log index
the answer carries.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authchain._encoding import sha256_b64url
from authchain.errors import HttpError
from authchain.server import _http
from authchain.server._common import State, in_thread, json_response, require_admin

__all__ = ["issuers", "principals", "workloads", "revoke"]

_JSON_BODY_LIMIT: Final = 64 * 1024


async def _admin_json(state: State, request: Request) -> dict[str, Any]:
    require_admin(state, request)
    if _http.media_type(request) != "application/json":
        raise HttpError(415, "unsupported_media_type", "the body must be application/json")
    return _http.parse_json_object(
        await _http.read_body(request, _JSON_BODY_LIMIT), _JSON_BODY_LIMIT
    )


async def issuers(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    issuer = _http.required_str(body, "issuer", 2048)
    jwks = body.get("jwks")
    if not isinstance(jwks, dict):
        raise HttpError(400, "invalid_request", "'jwks' must be a JWK Set object")
    index = await in_thread(state.authority.trust_issuer, issuer, jwks)
    return json_response({"issuer": issuer, "log_index": index}, status=201)


async def principals(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    sub = _http.required_str(body, "id", 1024)
    kind = _http.optional_str(body, "kind", 32) or "user"
    scopes = _http.string_list(body, "scopes")
    index = await in_thread(state.authority.register_principal, sub, kind=kind, scopes=scopes)
    return json_response({"id": sub, "log_index": index}, status=201)


async def workloads(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    spiffe_id = _http.required_str(body, "id", 2048)
    kind = _http.required_str(body, "kind", 32)
    jwk = body.get("jwk")
    if not isinstance(jwk, dict):
        raise HttpError(400, "invalid_request", "'jwk' must be a public JWK object")
    scopes = _http.string_list(body, "scopes")
    # The URL prefixes the workload serves; the authority checks each (https, bounded, normalised).
    endpoints = _http.string_list(body, "endpoints")
    index = await in_thread(
        state.authority.register_workload,
        spiffe_id,
        kind=kind,
        jwk=jwk,
        scopes=scopes,
        endpoints=endpoints,
    )
    return json_response({"id": spiffe_id, "log_index": index}, status=201)


async def revoke(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    token = _http.optional_str(body, "token", 16 * 1024)
    token_hash = _http.optional_str(body, "token_hash", 64)
    txn = _http.optional_str(body, "txn", 256)
    reason = _http.optional_str(body, "reason", 512) or ""
    if token is not None:
        if token_hash is not None:
            raise HttpError(400, "invalid_request", "give token or token_hash, not both")
        # Only the hash travels further: raw tokens never reach the log (docs/tokens.md).
        token_hash = sha256_b64url(token)
    if (token_hash is None) == (txn is None):
        raise HttpError(
            400, "invalid_request", "revoke exactly one of a token (or its hash) or a txn"
        )
    index = await in_thread(
        state.authority.revoke, token_hash=token_hash, txn=txn, reason=reason, by="admin"
    )
    return json_response({"revoked": token_hash or txn, "log_index": index}, status=200)
