"""``POST /token``: the task start and the hop over RFC 8693 token exchange, each request
authenticated by the requester's DPoP proof (RFC 9449 section 5).

This route checks only that the request is a token-exchange request (media type, parameters, token
types) and calls :meth:`Authority.start_task` or :meth:`Authority.exchange`, which authenticate the
proof, verify the subject token, apply the rules of a hop and policy, and record the decision. The
OAuth error of a refusal is then one lookup (:func:`~authchain.server.errors.oauth_error_response`)
on the input the authority named; nothing is verified here a second time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import (
    AuthchainError,
    ConfigurationError,
    HttpError,
    InvalidTargetError,
    MalformedError,
    PolicyError,
)
from authchain.server import _http
from authchain.server._common import State, dpop_header, in_thread, json_response
from authchain.server.errors import oauth_error_response
from authchain.tokens.hop import TOKEN_EXCHANGE_GRANT_TYPE
from authchain.tokens.id_token import ID_TOKEN_TYPE
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN

if TYPE_CHECKING:
    from authchain.authority import Authority, IssuedToken

__all__ = ["token", "TOKEN_EXCHANGE", "TXN_TOKEN_TYPE"]

# RFC 8693 section 2.1 and section 3: the grant and token type identifiers (the core's).
TOKEN_EXCHANGE: Final = TOKEN_EXCHANGE_GRANT_TYPE
TXN_TOKEN_TYPE: Final = TXN_TOKEN_TYPE_URN

_TOKEN_BODY_LIMIT: Final = 32 * 1024


def _current_nonce(authority: Authority) -> str | None:
    source = authority.nonce_source
    return None if source is None else source.current(authority.now())


async def token(state: State, request: Request) -> Response:
    authority = state.authority
    form: dict[str, str] = {}
    try:
        form = await _read_form(request)
        issue = _issuance(authority, request, form)
    except HttpError as exc:
        # Refused before the authority decided anything (malformed, unsupported): still recorded,
        # since every refusal at the token endpoint is evidence (issue 6).
        exc.log_index = await _record_refusal(state, request, form, exc)
        return oauth_error_response(exc, nonce=_current_nonce(authority))
    try:
        issued: IssuedToken = await in_thread(issue)
    except (ConfigurationError, PolicyError):
        # A misconfiguration or a policy that cannot be evaluated is the server's fault, not the
        # client's: it becomes a logged 500 problem at the boundary, never an OAuth 400.
        raise
    except AuthchainError as exc:
        return oauth_error_response(exc, nonce=_current_nonce(authority))
    headers = {"Cache-Control": "no-store"}
    nonce = _current_nonce(authority)
    if nonce is not None:
        headers["DPoP-Nonce"] = nonce
    return json_response(issued.token_response(), headers=headers)


async def _read_form(request: Request) -> dict[str, str]:
    # RFC 6749 section 3.2: POST with form-encoded parameters.
    if _http.media_type(request) != _http.FORM_MEDIA_TYPE:
        raise HttpError(400, "invalid_request", f"the body must be {_http.FORM_MEDIA_TYPE}")
    try:
        return _http.parse_form(await _http.read_body(request, _TOKEN_BODY_LIMIT))
    except HttpError as exc:
        # At the token endpoint every malformed request is an OAuth invalid_request (RFC 6749 5.2).
        raise HttpError(400, "invalid_request", exc.detail) from exc


def _issuance(
    authority: Authority, request: Request, form: dict[str, str]
) -> Callable[[], IssuedToken]:
    """The authority's call that answers this token-exchange request, once the request is one."""
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise HttpError(400, "invalid_request", "grant_type is required")
    if grant_type != TOKEN_EXCHANGE:
        raise HttpError(
            400, "unsupported_grant_type", f"only {TOKEN_EXCHANGE} is supported (RFC 8693)"
        )
    subject_token = form.get("subject_token")
    subject_token_type = form.get("subject_token_type")
    if subject_token is None or subject_token_type is None:
        raise HttpError(
            400,
            "invalid_request",
            "subject_token and subject_token_type are required (RFC 8693 2.1)",
        )
    requested = form.get("requested_token_type")
    if requested is not None and requested != TXN_TOKEN_TYPE:
        raise HttpError(400, "invalid_request", f"requested_token_type must be {TXN_TOKEN_TYPE}")
    if "actor_token" in form or "actor_token_type" in form:
        raise HttpError(
            400,
            "invalid_request",
            "actor_token is not used: the actor is the workload whose key signed the DPoP proof",
        )
    if "audience" in form and "resource" in form:
        raise HttpError(
            400, "invalid_target", "give the next actor as audience or resource, not both"
        )
    audience = form.get("audience", form.get("resource"))
    details = form.get("request_details")
    proof = dpop_header(request)
    scope = form.get("scope")
    traceparent = request.headers.get("traceparent")
    # RFC 9449 section 4.3 (8), (9): the proof must name this method and the configured URL of the
    # endpoint, never one built from the Host header or the request line (section 11.5).
    htu = authority.token_endpoint
    if subject_token_type == ID_TOKEN_TYPE:
        # A task start. The token is bound to the requester's key and its audience is the trust
        # domain (Txn-Tokens section 4), so that is the only audience accepted here.
        if audience is not None and audience not in (authority.trust_domain, authority.issuer):
            raise HttpError(
                400,
                "invalid_target",
                "a task start issues a token for the requesting workload in this trust domain;"
                " audience, if given, must be the trust domain",
            )
        return functools.partial(
            authority.start_task,
            subject_token=subject_token,
            dpop_proof=proof,
            scope=scope,
            request_details=details,
            htm="POST",
            htu=htu,
            traceparent=traceparent,
        )
    if subject_token_type == TXN_TOKEN_TYPE:
        if audience is None:
            raise HttpError(
                400, "invalid_request", "audience (the next actor's SPIFFE ID) is required"
            )
        if details is not None:
            raise HttpError(400, "invalid_request", "request_details is fixed at task start (tctx)")
        return functools.partial(
            authority.exchange,
            subject_token=subject_token,
            dpop_proof=proof,
            audience=audience,
            scope=scope,
            htm="POST",
            htu=htu,
            traceparent=traceparent,
        )
    raise HttpError(
        400,
        "invalid_request",
        f"subject_token_type must be {ID_TOKEN_TYPE} or {TXN_TOKEN_TYPE}",
    )


# The error recorded for a request refused at this edge, by its OAuth code: the log speaks the
# core's codes (``malformed``, ``invalid_target``), not the wire's.
_RECORDED_AS: Final[dict[str, type[AuthchainError]]] = {"invalid_target": InvalidTargetError}


async def _record_refusal(
    state: State, request: Request, form: dict[str, str], exc: HttpError
) -> int | None:
    subject_token_type = form.get("subject_token_type")
    action = "start_task" if subject_token_type == ID_TOKEN_TYPE else "delegate"
    error = _RECORDED_AS.get(exc.code, MalformedError)(exc.detail)
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
