"""``POST /events``: action reports from the services that performed (or refused) an action for a
presented task token.

The reporting service authenticates as every requester of the authority does, by a DPoP proof signed
with its own registered key for this URL (:meth:`Authority.authenticate`: ``htu`` is the configured
events endpoint, never the ``Host`` header). The proof covers the body: the request carries an
RFC 9530 ``Content-Digest`` (sha-256) of its body, and the proof carries the same value in its
``content_digest`` claim. The authority then verifies the presented token and proof again as of the
time of the action, and records it.

Answers: 201 with the new entry's index; 200 with the first index when the report id was recorded
before for the same report (an outbox retry); 409 when the id was used for another report; 429 when
the reporter's budget of unverified reports is spent; 503 when the store failed (nothing recorded:
retry). Reports are idempotent across restarts and processes: the report id is spent in the single-
use ledger in the same transaction as its event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authchain.authority.recorder import REPORT
from authchain.errors import DuplicateEventError, HttpError, RateLimitedError, ReplayError
from authchain.server import _http
from authchain.server._common import State, dpop_header, in_thread, json_response

if TYPE_CHECKING:
    from authchain.authority import Authority

__all__ = ["events"]

_JSON_BODY_LIMIT: Final = 64 * 1024


async def events(state: State, request: Request) -> Response:
    authority = state.authority
    if _http.media_type(request) != "application/json":
        raise HttpError(415, "unsupported_media_type", "the body must be application/json")
    raw = await _http.read_body(request, _JSON_BODY_LIMIT)
    digest = _http.content_digest(request, raw)
    body = _http.parse_json_object(raw, _JSON_BODY_LIMIT)
    report = _report(body, request)
    try:
        index = await in_thread(
            _authenticate_and_record, authority, dpop_header(request), digest, report
        )
    except ReplayError as exc:
        if exc.scope != REPORT:
            raise
        # An outbox retry of a recorded report: the first entry again, and nothing new.
        return json_response(
            {"log_index": exc.first_index, "report_id": report["report_id"], "duplicate": True}
        )
    except DuplicateEventError as exc:
        raise HttpError(409, "report_id_conflict", exc.message) from None
    except RateLimitedError as exc:
        raise HttpError(
            429, "rate_limited", exc.message, {"Retry-After": str(exc.retry_after)}
        ) from None
    return json_response({"log_index": index, "report_id": report["report_id"]}, status=201)


def _authenticate_and_record(
    authority: Authority, proof: str | None, digest: str, report: dict[str, Any]
) -> int:
    # One worker call for both, so the reporter's proof is spent by the report's own record.
    _, reporter = authority.authenticate(
        proof, htu=authority.events_endpoint, content_digest=digest
    )
    return authority.record_action(executor=reporter.id, **report)


def _report(body: dict[str, Any], request: Request) -> dict[str, Any]:
    """The report's members, each checked for type and size (400 otherwise)."""
    token = _http.optional_str(body, "token", 16 * 1024)
    presented_proof = _http.optional_str(body, "proof", 8 * 1024)
    if token is not None and presented_proof is None:
        raise HttpError(400, "invalid_request", "a reported token needs the presenter's proof")
    outcome = _http.optional_str(body, "outcome", 16) or "succeeded"
    if outcome not in ("succeeded", "failed", "refused"):
        raise HttpError(400, "invalid_request", "outcome must be succeeded, failed or refused")
    attrs = body.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise HttpError(400, "invalid_request", "attrs must be an object")
    return {
        "report_id": _http.optional_str(body, "report_id", 64),
        "action": _http.required_str(body, "action", 256),
        "resource": _http.required_str(body, "resource", 2048),
        "token": token,
        "proof": presented_proof,
        "htm": _http.optional_str(body, "htm", 32) or "POST",
        "htu": _http.optional_str(body, "htu", 2048),
        "outcome": outcome,
        "refusal": _http.optional_str(body, "refusal", 64),
        "required_scope": _http.optional_str(body, "required_scope", 2048),
        "count": _optional_int(body, "count"),
        "presenter": _http.optional_str(body, "presenter", 2048),
        "traceparent": (
            _http.optional_str(body, "traceparent", 64) or request.headers.get("traceparent")
        ),
        "performed_at": _optional_int(body, "performed_at"),
        "attrs": attrs,
    }


def _optional_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    # Bounded to what the log can hold (RFC 8785 / I-JSON safe integers), so no value is a 500.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
        raise HttpError(400, "invalid_request", f"{name} must be a non-negative integer")
    return value
