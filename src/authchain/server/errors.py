"""How errors leave the HTTP API: OAuth error responses at ``/token``, RFC 9457 problem details
everywhere else.

The error tree of :mod:`authchain.errors` has one stable ``code`` per failure, and the code that knew
the cause of a refusal named the request input it is about (``input``); this module is the one table
that turns an error into a wire answer. The token endpoint speaks OAuth (RFC 6749 section 5.2,
RFC 8693 section 2.2.2, RFC 9449 sections 5 and 8): ``{"error", "error_description"}`` with status
400, the ``error`` looked up by the input (:data:`OAUTH_ERRORS`). Every other route answers ``application/problem+json`` (RFC 9457) carrying the same machine
``code`` as an extension member. When the authority recorded the refusal, its log index travels in
both shapes (``log_index``, and in the OAuth ``error_description``), so a client can hand an
investigator the exact entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import orjson
from starlette.responses import Response

from authchain.errors import (
    AuthchainError,
    CapacityError,
    ConfigurationError,
    DPoPError,
    DPoPNonceError,
    HopError,
    HttpError,
    Input,
    NotFoundError,
    PolicyDenied,
    PolicyError,
    ReplayError,
    StorageError,
    VerificationError,
)

__all__ = [
    "OAUTH_ERRORS",
    "PROBLEM_MEDIA_TYPE",
    "oauth_error_code",
    "oauth_error_response",
    "oauth_response",
    "problem_response",
    "problem_for",
    "problem_status",
]

_log = logging.getLogger(__name__)

# RFC 9457 section 3: the media type of a problem details document.
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

# RFC 9449 section 5.1 and RFC 7518: the proof algorithms the authority accepts, as advertised in
# ``WWW-Authenticate`` challenges (RFC 9449 section 7.1 ``algs``).
DPOP_ALGS: Final = "EdDSA ES256"

# The OAuth ``error`` of a refusal at the token endpoint, by the request input the refusal is about
# (``AuthchainError.input``, named by the authority where it knew the cause). The choices, and why:
#
# * RFC 9449 section 5: anything wrong with the DPoP proof (its form, signature, method, URL, age,
#   a replayed ``jti``), or a key that no workload registered, is ``invalid_dpop_proof``.
# * RFC 6749 section 5.2 / RFC 8693 section 2.2.2: a subject token that does not verify, has expired,
#   was revoked, or is not held by the proof's key is ``invalid_grant``.
# * RFC 8693 section 2.2.2: an audience that is unknown, not a SPIFFE ID, or already in the chain (a
#   cycle) is ``invalid_target``: the authority "is unwilling ... to issue a token for the target".
# * RFC 6749 section 5.2: asking for more than is held, or being refused by a hop rule (lifetime,
#   depth) or by policy, is ``invalid_scope``: "the requested scope is ... or exceeds the scope
#   granted".
# * RFC 6749 section 5.2: unusable ``request_details`` (or any other member) is ``invalid_request``.
#
# Whatever the input, two answers go by class (see :func:`oauth_error_code`): a missing or stale
# server nonce is ``use_dpop_nonce`` (RFC 9449 section 8), and a full resource or a failing store is
# ``temporarily_unavailable`` with status 503 (RFC 6749 section 5.2 has it for the authorization
# endpoint; Authchain uses it at the token endpoint too, since nothing was decided).
OAUTH_ERRORS: Final[Mapping[Input, str]] = {
    Input.DPOP_PROOF: "invalid_dpop_proof",
    Input.ACTOR: "invalid_dpop_proof",
    Input.SUBJECT_TOKEN: "invalid_grant",
    Input.AUDIENCE: "invalid_target",
    Input.SCOPE: "invalid_scope",
    Input.POLICY: "invalid_scope",
    Input.REQUEST_DETAILS: "invalid_request",
    Input.REQUEST: "invalid_request",
}


def oauth_error_code(exc: AuthchainError) -> str:
    """The OAuth ``error`` for a refusal at the token endpoint: a lookup, never a second check.

    An error the HTTP edge raised carries its OAuth code; otherwise the nonce challenge and the
    503s go by class, then :data:`OAUTH_ERRORS` by the input the refusal is about. An error that
    names no input falls back by family: a hop rule or a policy denial is ``invalid_scope``, any
    other verification failure ``invalid_grant``, the rest ``invalid_request``.
    """
    if isinstance(exc, HttpError):
        return exc.code
    if isinstance(exc, DPoPNonceError):
        return "use_dpop_nonce"
    if isinstance(exc, CapacityError | StorageError):
        return "temporarily_unavailable"
    if exc.input is not None:
        mapped = OAUTH_ERRORS.get(exc.input)
        if mapped is not None:
            return mapped
    if isinstance(exc, HopError | PolicyDenied):
        return "invalid_scope"
    if isinstance(exc, VerificationError):
        return "invalid_grant"
    return "invalid_request"


def _description(message: str, log_index: int | None) -> str:
    # RFC 6749 section 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E (no '"' or '\').
    text = message if log_index is None else f"{message} (recorded at log index {log_index})"
    cleaned = "".join(c if (" " <= c <= "~" and c not in '"\\') else "?" for c in text)
    return cleaned[:1000]


def _json(
    body: Mapping[str, Any], status: int, media_type: str, headers: Mapping[str, str]
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type=media_type, headers=dict(headers)
    )


def oauth_response(
    error: str,
    description: str,
    *,
    log_index: int | None = None,
    status: int = 400,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """RFC 6749 section 5.2 error response; ``Cache-Control: no-store`` as section 5.1 asks."""
    body: dict[str, Any] = {
        "error": error,
        "error_description": _description(description, log_index),
    }
    if log_index is not None:
        body["log_index"] = log_index
    all_headers = {"Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return _json(body, status, "application/json", all_headers)


def oauth_error_response(exc: AuthchainError, *, nonce: str | None = None) -> Response:
    """The token endpoint's answer to a refusal: the OAuth error of :func:`oauth_error_code`, its
    status and headers. ``nonce`` is the server's current DPoP nonce when nonces are required; it
    travels with every answer so a client never needs an extra round trip for it."""
    error = oauth_error_code(exc)
    status = exc.status if isinstance(exc, HttpError) else 400
    headers: dict[str, str] = {} if nonce is None else {"DPoP-Nonce": nonce}
    if isinstance(exc, HttpError):
        headers.update(exc.headers)
    if error == "temporarily_unavailable":
        # Nothing was issued (fail closed); the same request may succeed shortly.
        status = 503
        headers["Retry-After"] = "1"
    elif error == "use_dpop_nonce" and isinstance(exc, DPoPNonceError) and exc.nonce:
        headers["DPoP-Nonce"] = exc.nonce
    elif error == "invalid_dpop_proof":
        # RFC 9449 section 7.1 style challenge, so a client knows which algorithms to use.
        headers["WWW-Authenticate"] = f'DPoP error="invalid_dpop_proof", algs="{DPOP_ALGS}"'
    return oauth_response(
        error, exc.message, log_index=exc.log_index, status=status, headers=headers
    )


# Problem titles: stable per code (RFC 9457 section 3.1.3: the title does not change per occurrence).
_TITLES: Final[Mapping[int, str]] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    type_base: str,
    instance: str | None = None,
    log_index: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An RFC 9457 problem details response. ``type`` is ``type_base + code``: the server serves a
    description of every code at that URL (RFC 9457 section 3.1.1 asks that it be dereferenceable)."""
    body: dict[str, Any] = {
        "type": type_base + code,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail[:1000],
        "code": code,
    }
    if instance is not None:
        body["instance"] = instance
    if log_index is not None:
        body["log_index"] = log_index
    return _json(body, status, PROBLEM_MEDIA_TYPE, headers or {})


def problem_status(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """``(status, code, headers)`` for an error on a non-OAuth route, without side effects.

    Hostile or invalid input is 4xx; a full replay cache or a failing store is 503 with
    ``Retry-After`` (the request may succeed later, and nothing was acknowledged); only a
    misconfiguration or a programming error is 500.
    """
    if isinstance(exc, HttpError):
        return exc.status, exc.code, dict(exc.headers)
    if not isinstance(exc, AuthchainError):
        return 500, "internal_error", {}
    if isinstance(exc, CapacityError | StorageError):
        return 503, exc.code, {"Retry-After": "1"}
    if isinstance(exc, NotFoundError):
        return 404, exc.code, {}
    if isinstance(exc, DPoPNonceError):
        headers = {"WWW-Authenticate": f'DPoP error="use_dpop_nonce", algs="{DPOP_ALGS}"'}
        nonce = getattr(exc, "nonce", None)
        if nonce:
            headers["DPoP-Nonce"] = nonce
        return 401, exc.code, headers
    if isinstance(exc, DPoPError | ReplayError):
        challenge = f'DPoP error="invalid_dpop_proof", algs="{DPOP_ALGS}"'
        return 401, exc.code, {"WWW-Authenticate": challenge}
    if isinstance(exc, PolicyDenied):
        return 403, exc.code, {}
    if isinstance(exc, VerificationError):
        return 400, exc.code, {}
    return 500, exc.code, {}


def problem_for(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    """``(status, code, detail, headers)`` for an error on a non-OAuth route. The detail of a 500
    says nothing about the internals; the error is logged instead."""
    status, code, headers = problem_status(exc)
    if status < 500 or status == 503:
        return status, code, str(exc), headers
    if isinstance(exc, ConfigurationError | PolicyError):
        _log.error("configuration or policy failure: %s", exc)
        return status, code, "the server is misconfigured; the operator has been told", headers
    _log.error("unexpected error in the HTTP API", exc_info=exc)
    return 500, "internal_error", "internal error; it has been logged", headers
