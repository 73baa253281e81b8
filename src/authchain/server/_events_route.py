"""``POST /events``: action reports from the services that performed (or refused) an action for a
presented task token.

The reporting service authenticates as every requester of the authority does, by a DPoP proof signed
with its own registered key for this URL (:meth:`Authority.authenticate`: ``htu`` is the configured
events endpoint, never the ``Host`` header). The authority then verifies the presented token and
proof again as of the time of the action, and records it.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import HttpError
from authchain.server import _http
from authchain.server._common import State, dpop_header, in_thread, json_response

__all__ = ["events"]

_JSON_BODY_LIMIT: Final = 64 * 1024


async def events(state: State, request: Request) -> Response:
    authority = state.authority
    if _http.media_type(request) != "application/json":
        raise HttpError(415, "unsupported_media_type", "the body must be application/json")
    body = _http.parse_json_object(
        await _http.read_body(request, _JSON_BODY_LIMIT), _JSON_BODY_LIMIT
    )
    _, reporter = await in_thread(
        authority.authenticate, dpop_header(request), htu=authority.events_endpoint
    )

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
        raise HttpError(400, "invalid_request", "outcome must be succeeded, failed or refused")
    refusal = _http.optional_str(body, "refusal", 64)
    presenter = _http.optional_str(body, "presenter", 2048)
    traceparent = _http.optional_str(body, "traceparent", 64) or request.headers.get("traceparent")
    performed_at = body.get("performed_at")
    if performed_at is not None and (
        not isinstance(performed_at, int) or isinstance(performed_at, bool)
    ):
        raise HttpError(400, "invalid_request", "performed_at must be an integer (seconds)")
    attrs = body.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise HttpError(400, "invalid_request", "attrs must be an object")
    if token is not None and presented_proof is None:
        raise HttpError(400, "invalid_request", "a reported token needs the presenter's proof")
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
        report_id=report_id,
        performed_at=performed_at,
        traceparent=traceparent,
        attrs=attrs,
    )
    if report_id is not None:
        state.remember_report((reporter.id, report_id), index)
    return json_response({"log_index": index, "report_id": report_id}, status=201)
