"""Read-only routes over the audit log: the signed checkpoint, RFC 9162 proofs, entries, and the
attribution report of one event.

Checkpoints and proofs carry only hashes and are always public: witnesses and auditors need them.
Entries and traces carry identities and purposes; they are public only when the app was created with
``public_log=True``, otherwise they need the admin credential.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import HttpError
from authchain.server import _http
from authchain.server._common import State, admin_or_public, in_thread, json_response

__all__ = ["checkpoint", "inclusion", "consistency", "entries", "trace"]

_MAX_PAGE: Final = 1000
_DEFAULT_PAGE: Final = 100
_MAX_EVENT_ID: Final = 64


async def checkpoint(state: State, request: Request) -> Response:
    signed = await in_thread(state.authority.store.latest_checkpoint)
    # C2SP tlog-checkpoint: the signed note as text, exactly as signed.
    return Response(
        signed.text,
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


async def inclusion(state: State, request: Request) -> Response:
    index = _http.query_int(request, "index")
    size = _http.query_int(request, "size")
    proof = await in_thread(state.authority.store.inclusion_proof, index, size)
    return json_response(proof.to_dict())


async def consistency(state: State, request: Request) -> Response:
    old = _http.query_int(request, "old")
    size = _http.query_int(request, "size")
    proof = await in_thread(state.authority.store.consistency_proof, old, size)
    return json_response(proof.to_dict())


def _read_page(state: State, start: int, end: int | None) -> dict[str, Any]:
    size = state.authority.store.size()
    if start > size:
        raise HttpError(404, "not_found", f"start {start} is beyond the log's size {size}")
    if end is not None and end < start:
        raise HttpError(400, "invalid_request", "end must not be before start")
    if end is not None and end - start > _MAX_PAGE:
        raise HttpError(400, "invalid_request", f"at most {_MAX_PAGE} entries per page")
    stop = min(size, start + _DEFAULT_PAGE if end is None else end)
    rows = [
        {"index": index, "event": event.to_dict()}
        for index, event in state.authority.store.entries(start, stop)
    ]
    return {"start": start, "end": stop, "size": size, "entries": rows}


async def entries(state: State, request: Request) -> Response:
    admin_or_public(state, request)
    start = _http.query_int(request, "start")
    end_values = request.query_params.getlist("end")
    end = _http.query_int(request, "end") if end_values else None
    return json_response(await in_thread(_read_page, state, start, end))


async def trace(state: State, request: Request) -> Response:
    from authchain.attribution import trace as attribution_trace

    admin_or_public(state, request)
    event_id = request.path_params["event_id"]
    if len(event_id) > _MAX_EVENT_ID:
        raise HttpError(404, "not_found", "no such event")
    report = await in_thread(attribution_trace, state.authority.store, event_id=event_id)
    return json_response(report.to_dict())
