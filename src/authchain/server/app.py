"""The authority as an ASGI application (Starlette): a thin adapter over :class:`Authority`.

Each route parses its input strictly, calls one method of the authority (in a worker thread: the
authority blocks on durable appends, and concurrent requests let the store group-commit them), and
renders the result or the error. The protocol rules live in the core; what lives here is HTTP:
which URL a DPoP proof must name, which header carries what, and how errors look on the wire.

Security decisions made at this edge:

* ``htu`` for ``/token`` and ``/events`` is the configured public URL of the endpoint
  (``Authority.token_endpoint`` / ``events_endpoint``), never built from the ``Host`` header or the
  request line, which the client controls (RFC 9449 section 4.3 (9) and section 11.5).
* Admin routes compare the bearer credential in constant time and refuse everything when no admin
  credential is configured.
* No input produces a 5xx or a traceback: every error becomes an OAuth error response at ``/token``
  and an RFC 9457 problem elsewhere (see :mod:`authchain.server.errors`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authchain._encoding import b64url_decode, json_loads_strict, sha256_b64url
from authchain.errors import (
    AuthchainError,
    ConfigurationError,
    DPoPError,
    DPoPNonceError,
    InvalidTargetError,
    MalformedError,
    PolicyError,
    ReplayCacheFullError,
    StorageError,
)
from authchain.server import _http
from authchain.server._common import State, in_thread, json_response, require_admin
from authchain.server.errors import (
    DPOP_ALGS,
    ApiError,
    oauth_error_code,
    oauth_response,
    problem_for,
    problem_response,
)
from authchain.server.openapi import PROBLEM_CODES, openapi_document
from authchain.tokens.dpop import verify_proof
from authchain.tokens.hop import TOKEN_EXCHANGE_GRANT_TYPE
from authchain.tokens.id_token import ID_TOKEN_TYPE
from authchain.tokens.nonce import NonceSource
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN

if TYPE_CHECKING:
    from authchain.authority import Authority

__all__ = ["create_app", "TOKEN_EXCHANGE", "TXN_TOKEN_TYPE", "ID_TOKEN_TYPE"]

# RFC 8693 section 2.1 and section 3: the grant and token type identifiers (the core's).
TOKEN_EXCHANGE: Final = TOKEN_EXCHANGE_GRANT_TYPE
TXN_TOKEN_TYPE: Final = TXN_TOKEN_TYPE_URN

_TOKEN_BODY_LIMIT: Final = 32 * 1024
_JSON_BODY_LIMIT: Final = 64 * 1024
# The authority's limits on request_details (tctx), restated to classify its refusals.
_MAX_REQUEST_DETAILS: Final = 4096
_MAX_PURPOSE: Final = 512


Handler = Callable[[Request], Awaitable[Response]]


# --------------------------------------------------------------------------------------------------
# Error boundary.


def _problem(state: State, request: Request, exc: BaseException) -> Response:
    status, code, detail, headers = problem_for(exc)
    return problem_response(
        status,
        code,
        detail,
        type_base=state.problem_base,
        instance=request.url.path,
        log_index=getattr(exc, "log_index", None),
        headers=headers,
    )


def _guarded(state: State, handler: Callable[[State, Request], Awaitable[Response]]) -> Handler:
    """Every route runs inside this boundary: whatever escapes becomes a problem response."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(state, request)
        except Exception as exc:  # noqa: BLE001 - the boundary: no traceback reaches a client
            return _problem(state, request, exc)

    return endpoint


# --------------------------------------------------------------------------------------------------
# Discovery.


async def _jwks(state: State, request: Request) -> Response:
    # Short caching: a rotated key must reach resource servers within a token lifetime.
    return json_response(state.authority.jwks().to_dict(), headers={"Cache-Control": "max-age=60"})


def _metadata(state: State) -> dict[str, Any]:
    issuer = state.authority.issuer
    return {
        # RFC 8414 section 2.
        "issuer": issuer,
        "token_endpoint": state.authority.token_endpoint,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": [TOKEN_EXCHANGE],
        "response_types_supported": [],
        # The client is the workload whose registered key signs the DPoP proof; there is no client
        # secret or assertion (RFC 8414 "none": no client authentication at the token endpoint).
        "token_endpoint_auth_methods_supported": ["none"],
        # RFC 9449 section 5.1.
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        # RFC 8693 section 3 token types, by role. The names are this server's extension members.
        "subject_token_types_supported": [ID_TOKEN_TYPE, TXN_TOKEN_TYPE],
        "issued_token_types_supported": [TXN_TOKEN_TYPE],
        "authchain_trust_domain": state.authority.trust_domain,
        "authchain_events_endpoint": state.authority.events_endpoint,
        "authchain_dpop_nonce_required": state.nonce_source is not None,
        # C2SP signed-note verifier key of the log's checkpoints, for witnesses and auditors.
        "authchain_log_verifier_key": state.authority.store.verifier_key(),
    }


async def _oauth_metadata(state: State, request: Request) -> Response:
    return json_response(_metadata(state), headers={"Cache-Control": "max-age=300"})


async def _openapi(state: State, request: Request) -> Response:
    return json_response(openapi_document(state.authority.issuer))


async def _problem_type(state: State, request: Request) -> Response:
    code = request.path_params["code"]
    described = PROBLEM_CODES.get(code)
    if described is None:
        raise ApiError(404, "not_found", "no such problem type")
    status, summary = described
    return json_response(
        {"type": state.problem_base + code, "code": code, "status": status, "title": summary}
    )


async def _health(state: State, request: Request) -> Response:
    return json_response({"status": "ok", "issuer": state.authority.issuer})


# --------------------------------------------------------------------------------------------------
# The token endpoint (RFC 8693 section 2, RFC 9449 section 5).


def _nonce_headers(state: State) -> dict[str, str]:
    if state.nonce_source is None:
        return {}
    return {"DPoP-Nonce": state.nonce_source.current(state.authority.now())}


def _unverified_nonce(proof: str) -> str | None:
    """The ``nonce`` claim of a proof whose signature the authority verifies next. Reading it early
    is safe: the authority verifies this exact proof, so a forged nonce fails its signature check."""
    try:
        segments = proof.split(".")
        if len(segments) != 3:
            return None
        claims = json_loads_strict(b64url_decode(segments[1], max_len=8192), max_len=8192)
    except MalformedError:
        return None
    value = claims.get("nonce") if isinstance(claims, dict) else None
    return value if isinstance(value, str) else None


def _dpop_header(request: Request) -> str | None:
    values = request.headers.getlist("dpop")
    if not values:
        return None
    # RFC 9449 section 4.3 (1): not more than one DPoP header field. Joined with "," (never valid
    # in a compact JWS) so the authority refuses it as malformed and records the refusal.
    return ",".join(values)


async def _token(state: State, request: Request) -> Response:
    try:
        return await _token_exchange(state, request)
    except ApiError as exc:
        # Refused before the authority decided anything (malformed, unsupported): still recorded,
        # since every refusal at the token endpoint is evidence (issue 6).
        log_index = await _record_refusal(state, request, exc)
        return oauth_response(
            exc.code, exc.detail, status=exc.status, headers=exc.headers, log_index=log_index
        )


_REFUSAL_ERRORS: dict[str, type[AuthchainError]] = {
    "invalid_target": InvalidTargetError,
}


async def _record_refusal(state: State, request: Request, exc: ApiError) -> int | None:
    form = getattr(request.state, "authchain_form", None) or {}
    subject_token_type = form.get("subject_token_type")
    action = "start_task" if subject_token_type == ID_TOKEN_TYPE else "delegate"
    error = _REFUSAL_ERRORS.get(exc.code, MalformedError)(exc.detail)
    try:
        recorded: AuthchainError = await in_thread(
            state.authority.record_refusal,
            error,
            action=action,
            subject_token=form.get("subject_token"),
            audience=form.get("audience", form.get("resource")),
            traceparent=request.headers.get("traceparent"),
        )
    except AuthchainError:
        # The refusal stands whether or not it could be recorded (nothing was issued).
        return None
    return recorded.log_index


async def _token_exchange(state: State, request: Request) -> Response:
    authority = state.authority
    # RFC 6749 section 3.2: POST with form-encoded parameters.
    if _http.media_type(request) != _http.FORM_MEDIA_TYPE:
        raise ApiError(400, "invalid_request", f"the body must be {_http.FORM_MEDIA_TYPE}")
    try:
        form = _http.parse_form(await _http.read_body(request, _TOKEN_BODY_LIMIT))
    except ApiError as exc:
        raise ApiError(400, "invalid_request", exc.detail) from exc
    request.state.authchain_form = form

    grant_type = form.get("grant_type")
    if grant_type is None:
        raise ApiError(400, "invalid_request", "grant_type is required")
    if grant_type != TOKEN_EXCHANGE:
        raise ApiError(
            400, "unsupported_grant_type", f"only {TOKEN_EXCHANGE} is supported (RFC 8693)"
        )
    subject_token = form.get("subject_token")
    subject_token_type = form.get("subject_token_type")
    if subject_token is None or subject_token_type is None:
        raise ApiError(
            400,
            "invalid_request",
            "subject_token and subject_token_type are required (RFC 8693 2.1)",
        )
    requested = form.get("requested_token_type")
    if requested is not None and requested != TXN_TOKEN_TYPE:
        raise ApiError(400, "invalid_request", f"requested_token_type must be {TXN_TOKEN_TYPE}")
    if "actor_token" in form or "actor_token_type" in form:
        raise ApiError(
            400,
            "invalid_request",
            "actor_token is not used: the actor is the workload whose key signed the DPoP proof",
        )
    if "audience" in form and "resource" in form:
        raise ApiError(
            400, "invalid_target", "give the next actor as audience or resource, not both"
        )
    audience = form.get("audience", form.get("resource"))

    proof = _dpop_header(request)
    # RFC 9449 section 8: when nonces are required, a proof without the current one is answered
    # with use_dpop_nonce and a fresh nonce. This is a protocol round trip, not a decision about
    # authority, so it is not an audit event.
    if state.nonce_source is not None and proof is not None:
        try:
            state.nonce_source.check(_unverified_nonce(proof) or "", authority.now())
        except DPoPNonceError as exc:
            return oauth_response(
                "use_dpop_nonce",
                exc.message,
                headers={"DPoP-Nonce": exc.nonce or state.nonce_source.current(authority.now())},
            )

    htu = authority.token_endpoint
    traceparent = request.headers.get("traceparent")
    details = form.get("request_details")
    try:
        if subject_token_type == ID_TOKEN_TYPE:
            # A task start. The token is bound to the requester's key and its audience is the
            # trust domain (Txn-Tokens section 4), so that is the only audience accepted here.
            if audience is not None and audience not in (authority.trust_domain, authority.issuer):
                raise ApiError(
                    400,
                    "invalid_target",
                    "a task start issues a token for the requesting workload in this trust domain;"
                    " audience, if given, must be the trust domain",
                )
            issued = await in_thread(
                authority.start_task,
                subject_token=subject_token,
                dpop_proof=proof,
                scope=form.get("scope"),
                request_details=details,
                htm="POST",
                htu=htu,
                traceparent=traceparent,
            )
        elif subject_token_type == TXN_TOKEN_TYPE:
            if audience is None:
                raise ApiError(
                    400, "invalid_request", "audience (the next actor's SPIFFE ID) is required"
                )
            if details is not None:
                raise ApiError(
                    400, "invalid_request", "request_details is fixed at task start (tctx)"
                )
            issued = await in_thread(
                authority.exchange,
                subject_token=subject_token,
                dpop_proof=proof,
                audience=audience,
                scope=form.get("scope"),
                htm="POST",
                htu=htu,
                traceparent=traceparent,
            )
        else:
            raise ApiError(
                400,
                "invalid_request",
                f"subject_token_type must be {ID_TOKEN_TYPE} or {TXN_TOKEN_TYPE}",
            )
    except (ApiError, ConfigurationError, PolicyError):
        # A misconfiguration or a policy that cannot be evaluated is the server's fault, not the
        # client's: it becomes a logged 500 problem at the boundary, never an OAuth 400.
        raise
    except (ReplayCacheFullError, StorageError) as exc:
        # Nothing was issued (fail closed); the same request may succeed shortly.
        return oauth_response(
            "temporarily_unavailable",
            exc.message,
            log_index=exc.log_index,
            status=503,
            headers={"Retry-After": "1"},
        )
    except AuthchainError as exc:
        error = _classify(state, exc, proof, details, subject_token_type)
        headers = _nonce_headers(state)
        if error == "invalid_dpop_proof":
            # RFC 9449 section 7.1 style challenge, so a client knows which algorithms to use.
            headers["WWW-Authenticate"] = f'DPoP error="invalid_dpop_proof", algs="{DPOP_ALGS}"'
        if isinstance(exc, DPoPNonceError) and exc.nonce:
            headers["DPoP-Nonce"] = exc.nonce
        return oauth_response(error, exc.message, log_index=exc.log_index, headers=headers)

    headers = {"Cache-Control": "no-store", **_nonce_headers(state)}
    return json_response(issued.token_response(), headers=headers)


def _proof_refused(state: State, proof: str | None) -> bool:
    """Does the proof alone fail for this request? Checked without a replay cache (the authority's
    own cache already consumed or refused its jti), so this decides only which party was wrong."""
    if not proof:
        return True
    try:
        verify_proof(
            proof,
            htm="POST",
            htu=state.authority.token_endpoint,
            now=state.authority.now(),
            replay_cache=None,
        )
    except AuthchainError:
        return True
    return False


def _details_refused(details: str | None) -> bool:
    """Is ``request_details`` itself unusable (not a JSON object)? Mirrors the first check the
    authority makes on a task start, only to tell ``invalid_request`` from ``invalid_grant``."""
    if details is None:
        return False
    if len(details) > _MAX_REQUEST_DETAILS:
        return True
    try:
        value = json_loads_strict(details, max_len=_MAX_REQUEST_DETAILS)
    except MalformedError:
        return True
    if not isinstance(value, dict) or len(orjson.dumps(value)) > _MAX_REQUEST_DETAILS:
        return True
    purpose = value.get("purpose", "")
    return not isinstance(purpose, str) or len(purpose) > _MAX_PURPOSE


def _classify(
    state: State,
    exc: AuthchainError,
    proof: str | None,
    details: str | None,
    subject_token_type: str,
) -> str:
    if isinstance(exc, DPoPError):
        return oauth_error_code(exc)
    # The authority checks request_details first on a task start; a malformed one is the request's
    # fault, not the grant's.
    if (
        subject_token_type == ID_TOKEN_TYPE
        and isinstance(exc, MalformedError)
        and _details_refused(details)
    ):
        return "invalid_request"
    return oauth_error_code(exc, proof_refused=_proof_refused(state, proof))


# --------------------------------------------------------------------------------------------------
# Action reports from resource servers.


async def _events(state: State, request: Request) -> Response:
    authority = state.authority
    if _http.media_type(request) != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    body = _http.parse_json_object(
        await _http.read_body(request, _JSON_BODY_LIMIT), _JSON_BODY_LIMIT
    )
    # The reporting service authenticates with a DPoP proof by its own registered key for this URL
    # (RFC 9449 section 4.3; htu is the configured events endpoint, never the Host header).
    reporter_proof = _dpop_header(request)
    if reporter_proof is None:
        raise DPoPError("a DPoP proof by the reporting service's registered key is required")
    if state.nonce_source is not None:
        state.nonce_source.check(_unverified_nonce(reporter_proof) or "", authority.now())
    proof = verify_proof(
        reporter_proof,
        htm="POST",
        htu=authority.events_endpoint,
        now=authority.now(),
        replay_cache=state.events_replay,
    )
    reporter = authority.registry.workload_by_jkt(proof.thumbprint)
    if reporter is None:
        raise DPoPError("the DPoP proof's key is not the registered key of any workload")

    report_id = _http.optional_str(body, "report_id", 64)
    if report_id is not None:
        seen = state.seen_report((reporter.id, report_id))
        if seen is not None:
            return json_response({"log_index": seen, "report_id": report_id, "duplicate": True})
    action = _http.required_str(body, "action", 256)
    resource = _http.required_str(body, "resource", 2048)
    token = _http.optional_str(body, "token", 16 * 1024)
    presented_proof = _http.optional_str(body, "proof", 8 * 1024)
    htm = _http.optional_str(body, "htm", 32) or "POST"
    htu = _http.optional_str(body, "htu", 2048)
    outcome = _http.optional_str(body, "outcome", 16) or "succeeded"
    if outcome not in ("succeeded", "failed", "refused"):
        raise ApiError(400, "invalid_request", "outcome must be succeeded, failed or refused")
    refusal = _http.optional_str(body, "refusal", 64)
    presenter = _http.optional_str(body, "presenter", 2048)
    traceparent = _http.optional_str(body, "traceparent", 64) or request.headers.get("traceparent")
    performed_at = body.get("performed_at")
    if performed_at is not None and (
        not isinstance(performed_at, int) or isinstance(performed_at, bool)
    ):
        raise ApiError(400, "invalid_request", "performed_at must be an integer (seconds)")
    attrs = body.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise ApiError(400, "invalid_request", "attrs must be an object")
    if token is not None and presented_proof is None:
        raise ApiError(400, "invalid_request", "a reported token needs the presenter's proof")
    extra = dict(attrs)
    if report_id is not None:
        extra["report_id"] = report_id
    index = await in_thread(
        authority.record_action,
        executor=reporter.id,
        action=action,
        resource=resource,
        token=token,
        proof=presented_proof,
        htm=htm,
        htu=htu,
        outcome=outcome,
        presenter=presenter,
        refusal=refusal,
        performed_at=performed_at,
        traceparent=traceparent,
        attrs=extra,
    )
    if report_id is not None:
        state.remember_report((reporter.id, report_id), index)
    return json_response({"log_index": index, "report_id": report_id}, status=201)


# --------------------------------------------------------------------------------------------------
# Administration (RFC 6750 bearer credential from AUTHCHAIN_ADMIN_TOKEN).


async def _admin_json(state: State, request: Request) -> dict[str, Any]:
    require_admin(state, request)
    if _http.media_type(request) != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    return _http.parse_json_object(
        await _http.read_body(request, _JSON_BODY_LIMIT), _JSON_BODY_LIMIT
    )


async def _admin_issuers(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    issuer = _http.required_str(body, "issuer", 2048)
    jwks = body.get("jwks")
    if not isinstance(jwks, dict):
        raise ApiError(400, "invalid_request", "'jwks' must be a JWK Set object")
    index = await in_thread(state.authority.trust_issuer, issuer, jwks)
    return json_response({"issuer": issuer, "log_index": index}, status=201)


async def _admin_principals(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    sub = _http.required_str(body, "id", 1024)
    kind = _http.optional_str(body, "kind", 32) or "user"
    scopes = _http.string_list(body, "scopes")
    index = await in_thread(state.authority.register_principal, sub, kind=kind, scopes=scopes)
    return json_response({"id": sub, "log_index": index}, status=201)


async def _admin_workloads(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    spiffe_id = _http.required_str(body, "id", 2048)
    kind = _http.required_str(body, "kind", 32)
    jwk = body.get("jwk")
    if not isinstance(jwk, dict):
        raise ApiError(400, "invalid_request", "'jwk' must be a public JWK object")
    scopes = _http.string_list(body, "scopes")
    index = await in_thread(
        state.authority.register_workload, spiffe_id, kind=kind, jwk=jwk, scopes=scopes
    )
    return json_response({"id": spiffe_id, "log_index": index}, status=201)


async def _revoke(state: State, request: Request) -> Response:
    body = await _admin_json(state, request)
    token = _http.optional_str(body, "token", 16 * 1024)
    token_hash = _http.optional_str(body, "token_hash", 64)
    txn = _http.optional_str(body, "txn", 256)
    reason = _http.optional_str(body, "reason", 512) or ""
    if token is not None:
        if token_hash is not None:
            raise ApiError(400, "invalid_request", "give token or token_hash, not both")
        # Only the hash travels further: raw tokens never reach the log (DESIGN.md, "Tokens").
        token_hash = sha256_b64url(token)
    if (token_hash is None) == (txn is None):
        raise ApiError(
            400, "invalid_request", "revoke exactly one of a token (or its hash) or a txn"
        )
    index = await in_thread(
        state.authority.revoke, token_hash=token_hash, txn=txn, reason=reason, by="admin"
    )
    return json_response({"revoked": token_hash or txn, "log_index": index}, status=200)


# --------------------------------------------------------------------------------------------------
# The app.


def create_app(
    authority: Authority,
    *,
    admin_token: str | None = None,
    nonce_source: NonceSource | None = None,
    public_log: bool = False,
) -> Starlette:
    """The authority's HTTP API.

    ``admin_token`` is the bearer credential of the admin routes (``/admin/*``, ``/revoke``, and
    ``/log/entries`` and ``/trace`` unless ``public_log``); without one they refuse everything.
    ``nonce_source``, when given, makes DPoP nonces mandatory at ``/token`` and ``/events``
    (RFC 9449 section 8). ``public_log`` lets anyone read entries and traces; checkpoints and proofs
    are always public, since witnesses and auditors need them and they carry only hashes.
    """
    state = State(authority, admin_token, nonce_source, public_log)

    def route(
        path: str, handler: Callable[[State, Request], Awaitable[Response]], method: str
    ) -> Route:
        return Route(path, _guarded(state, handler), methods=[method])

    from authchain.server import _log_routes

    routes = [
        route("/.well-known/jwks.json", _jwks, "GET"),
        route("/.well-known/oauth-authorization-server", _oauth_metadata, "GET"),
        route("/openapi.json", _openapi, "GET"),
        route("/problems/{code}", _problem_type, "GET"),
        route("/healthz", _health, "GET"),
        Route("/token", _guarded(state, _token), methods=["POST"]),
        route("/events", _events, "POST"),
        route("/revoke", _revoke, "POST"),
        route("/admin/issuers", _admin_issuers, "POST"),
        route("/admin/principals", _admin_principals, "POST"),
        route("/admin/workloads", _admin_workloads, "POST"),
        route("/log/checkpoint", _log_routes.checkpoint, "GET"),
        route("/log/proof/inclusion", _log_routes.inclusion, "GET"),
        route("/log/proof/consistency", _log_routes.consistency, "GET"),
        route("/log/entries", _log_routes.entries, "GET"),
        route("/trace/{event_id}", _log_routes.trace, "GET"),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        # Routing errors (404, 405) as problem details too.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {404: "not_found", 405: "method_not_allowed"}.get(status, "http_error")
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return problem_response(
            status,
            code,
            str(detail),
            type_base=state.problem_base,
            instance=request.url.path,
            headers=headers,
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        return _problem(state, request, exc)

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.state.authchain = state
    return app
