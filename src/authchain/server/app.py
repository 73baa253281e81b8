"""The authority as an ASGI application (Starlette): a thin adapter over :class:`Authority`.

Each route parses its input strictly, calls the authority (in a worker thread: the authority blocks
on durable appends, and concurrent requests let the store group-commit them), and renders the result
or the error. The protocol rules live in the core; what lives here is HTTP: which URL a DPoP proof
must name, which header carries what, and how errors look on the wire. The routes, by group:

* discovery (JWKS, RFC 8414 metadata, the policy set, OpenAPI, problem types, health):
  :mod:`._discovery_routes`; token introspection (RFC 7662): :mod:`._introspection_route`;
* the token endpoint: :mod:`._token_route`;
* action reports (``/events``): :mod:`._events_route`;
* administration and revocation: :mod:`._admin_routes`;
* the audit log and traces: :mod:`._log_routes`.

This module builds the app and holds its error boundary. Security decisions made at this edge:

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
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from authchain.server import (
    _admin_routes,
    _discovery_routes,
    _events_route,
    _introspection_route,
    _log_routes,
    _token_route,
)
from authchain.server._common import State
from authchain.server.errors import problem_for, problem_response

if TYPE_CHECKING:
    from authchain.authority import Authority

__all__ = ["create_app"]

_Handler = Callable[[State, Request], Awaitable[Response]]

# The routes of the API: path, method, handler. The OpenAPI document describes each one, and a test
# checks that it does.
_ROUTES: tuple[tuple[str, str, _Handler], ...] = (
    ("/.well-known/jwks.json", "GET", _discovery_routes.jwks),
    ("/.well-known/oauth-authorization-server", "GET", _discovery_routes.oauth_metadata),
    ("/openapi.json", "GET", _discovery_routes.openapi),
    ("/policy", "GET", _discovery_routes.policy),
    ("/introspect", "POST", _introspection_route.introspect),
    ("/problems/{code}", "GET", _discovery_routes.problem_type),
    ("/healthz", "GET", _discovery_routes.health),
    ("/token", "POST", _token_route.token),
    ("/events", "POST", _events_route.events),
    ("/revoke", "POST", _admin_routes.revoke),
    ("/admin/issuers", "POST", _admin_routes.issuers),
    ("/admin/principals", "POST", _admin_routes.principals),
    ("/admin/workloads", "POST", _admin_routes.workloads),
    ("/log/checkpoint", "GET", _log_routes.checkpoint),
    ("/log/proof/inclusion", "GET", _log_routes.inclusion),
    ("/log/proof/consistency", "GET", _log_routes.consistency),
    ("/log/entries", "GET", _log_routes.entries),
    ("/trace/{event_id}", "GET", _log_routes.trace),
)


# --------------------------------------------------------------------------------------------------
# Error boundary.


def _problem(state: State, request: Request, exc: BaseException) -> Response:
    if isinstance(exc, ClientDisconnect):
        # The client went away before its body arrived: nobody reads this answer, and it is not
        # an error of the server, so nothing is logged.
        return Response(status_code=400)
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


def _guarded(state: State, handler: _Handler) -> Callable[[Request], Awaitable[Response]]:
    """Every route runs inside this boundary: whatever escapes becomes a problem response."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(state, request)
        except Exception as exc:  # noqa: BLE001 - the boundary: no traceback reaches a client
            return _problem(state, request, exc)

    return endpoint


# --------------------------------------------------------------------------------------------------
# The app.


def create_app(
    authority: Authority,
    *,
    admin_token: str | None = None,
    public_log: bool = False,
) -> Starlette:
    """The authority's HTTP API.

    ``admin_token`` is the bearer credential of the admin routes (``/admin/*``, ``/revoke``, and
    ``/log/entries`` and ``/trace`` unless ``public_log``); without one they refuse everything.
    ``public_log`` lets anyone read entries and traces; checkpoints and proofs are always public,
    since witnesses and auditors need them and they carry only hashes. DPoP nonces are required
    when the authority has a nonce source (RFC 9449 section 8).
    """
    state = State(authority, admin_token, public_log)
    routes = [
        Route(path, _guarded(state, handler), methods=[method]) for path, method, handler in _ROUTES
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
