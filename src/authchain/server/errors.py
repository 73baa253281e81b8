"""How errors leave the HTTP API: OAuth error responses at ``/token``, RFC 9457 problem details
everywhere else.

The error tree of :mod:`authchain.errors` has one stable ``code`` per failure; this module is the one
table that turns a code into a wire answer. The token endpoint speaks OAuth (RFC 6749 section 5.2,
RFC 8693 section 2.2.2, RFC 9449 sections 5 and 8): ``{"error", "error_description"}`` with status
400. Every other route answers ``application/problem+json`` (RFC 9457) carrying the same machine
``code`` as an extension member. When the authority recorded the refusal, its log index travels in
both shapes (``log_index``, and in the OAuth ``error_description``), so a client can hand an
investigator the exact entry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.responses import Response

from authchain.errors import (
    AuthchainError,
    ConfigurationError,
    DPoPError,
    DPoPNonceError,
    HopError,
    NotFoundError,
    PolicyDenied,
    PolicyError,
    ReplayCacheFullError,
    ReplayError,
    StorageError,
    VerificationError,
)

__all__ = [
    "OAUTH_ERRORS",
    "PROBLEM_MEDIA_TYPE",
    "ApiError",
    "oauth_error_code",
    "oauth_response",
    "problem_response",
    "problem_for",
    "problem_status",
]

_log = logging.getLogger("authchain.server")

# RFC 9457 section 3: the media type of a problem details document.
PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

# RFC 9449 section 5.1 and RFC 7518: the proof algorithms the authority accepts, as advertised in
# ``WWW-Authenticate`` challenges (RFC 9449 section 7.1 ``algs``).
DPOP_ALGS: Final = "EdDSA ES256"

# The OAuth ``error`` for each Authchain code at the token endpoint. Codes that are not listed fall
# back by family (see :func:`oauth_error_code`). The choices, and why:
#
# * RFC 9449 section 5: anything wrong with the DPoP proof, including a replayed ``jti``, a proof made
#   for another method, URL or token, or a key that no workload registered, is ``invalid_dpop_proof``.
# * RFC 9449 section 8: a missing or stale server nonce is ``use_dpop_nonce`` (plus ``DPoP-Nonce``).
# * RFC 6749 section 5.2 / RFC 8693 section 2.2.2: a subject token that does not verify, has expired,
#   was revoked, or is not held by the proof's key is ``invalid_grant``.
# * RFC 6749 section 5.2: asking for more than is held, or being denied by policy or by a hop rule
#   (lifetime, depth), is ``invalid_scope``: "the requested scope is ... or exceeds the scope granted".
# * RFC 8693 section 2.2.2: an audience that is unknown, not a SPIFFE ID, or already in the chain (a
#   cycle) is ``invalid_target``: the authority "is unwilling ... to issue a token for the target".
OAUTH_ERRORS: Final[Mapping[str, str]] = {
    "invalid_dpop_proof": "invalid_dpop_proof",
    "dpop_method_mismatch": "invalid_dpop_proof",
    "dpop_url_mismatch": "invalid_dpop_proof",
    "dpop_ath_mismatch": "invalid_dpop_proof",
    "replay": "invalid_dpop_proof",
    "use_dpop_nonce": "use_dpop_nonce",
    "key_binding_mismatch": "invalid_grant",
    "expired": "invalid_grant",
    "not_yet_valid": "invalid_grant",
    "issued_in_future": "invalid_grant",
    "revoked": "invalid_grant",
    "signature_invalid": "invalid_grant",
    "untrusted_issuer": "invalid_grant",
    "wrong_audience": "invalid_grant",
    "wrong_type": "invalid_grant",
    "invalid_claim": "invalid_grant",
    "algorithm_refused": "invalid_grant",
    "malformed": "invalid_grant",
    "size_limit": "invalid_grant",
    "not_canonical": "invalid_grant",
    "invalid_key": "invalid_grant",
    "invalid_principal": "invalid_grant",
    "scope_escalation": "invalid_scope",
    "policy_denied": "invalid_scope",
    "lifetime_exceeded": "invalid_scope",
    "chain_too_deep": "invalid_scope",
    "hop_refused": "invalid_scope",
    "chain_cycle": "invalid_target",
    "invalid_target": "invalid_target",
    "invalid_spiffe_id": "invalid_target",
    "invalid_request": "invalid_request",
    "unsupported_grant_type": "unsupported_grant_type",
}


@dataclass(frozen=True, slots=True)
class ApiError(Exception):
    """An error the HTTP layer itself detects (before or around the authority): a malformed request,
    a missing credential. ``code`` is the machine code, ``status`` the HTTP status."""

    status: int
    code: str
    detail: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.detail


def oauth_error_code(exc: AuthchainError, *, proof_refused: bool = False) -> str:
    """The OAuth ``error`` for a refusal at the token endpoint.

    ``proof_refused`` says the DPoP proof itself does not verify for this request. The authority
    raises the same classes for a bad proof and a bad subject token (a signature is a signature), so
    the endpoint tells them apart by checking the proof on its own (without consuming its ``jti``)
    and passes the answer here: a refusal caused by the proof is ``invalid_dpop_proof`` whatever its
    class.
    """
    if isinstance(exc, DPoPNonceError):
        return "use_dpop_nonce"
    if isinstance(exc, DPoPError | ReplayError):
        return "invalid_dpop_proof"
    if proof_refused and isinstance(exc, VerificationError) and not isinstance(exc, HopError):
        return "invalid_dpop_proof"
    mapped = OAUTH_ERRORS.get(exc.code)
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
    extra: Mapping[str, Any] | None = None,
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
    if extra:
        body.update(extra)
    return _json(body, status, PROBLEM_MEDIA_TYPE, headers or {})


def problem_status(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """``(status, code, headers)`` for an error on a non-OAuth route, without side effects.

    Hostile or invalid input is 4xx; a full replay cache or a failing store is 503 with
    ``Retry-After`` (the request may succeed later, and nothing was acknowledged); only a
    misconfiguration or a programming error is 500.
    """
    if isinstance(exc, ApiError):
        return exc.status, exc.code, dict(exc.headers)
    if not isinstance(exc, AuthchainError):
        return 500, "internal_error", {}
    if isinstance(exc, ReplayCacheFullError | StorageError):
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
        detail = exc.detail if isinstance(exc, ApiError) else str(exc)
        return status, code, detail, headers
    if isinstance(exc, ConfigurationError | PolicyError):
        _log.error("configuration or policy failure: %s", exc)
        return status, code, "the server is misconfigured; the operator has been told", headers
    _log.error("unexpected error in the HTTP API", exc_info=exc)
    return 500, "internal_error", "internal error; it has been logged", headers
