"""``POST /introspect``: RFC 7662 token introspection, for resource servers that must refuse a token
whose chain was revoked.

A task token verifies offline, but revocation is state: a tool learns that a token, one of its
ancestors or its task was revoked, or that its holder's key was replaced, only from the authority.
The caller is a registered workload, authenticated by its DPoP proof for this URL like every
requester (RFC 7662 section 2.1 asks that the protected resource be authorized); the answer is
RFC 7662 section 2.2's, with ``active: false`` for anything the authority would refuse.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import HttpError
from authchain.server import _http
from authchain.server._common import State, dpop_header, in_thread, json_response

__all__ = ["introspect"]

_BODY_LIMIT: Final = 32 * 1024
_MAX_TOKEN: Final = 16 * 1024


async def introspect(state: State, request: Request) -> Response:
    authority = state.authority
    # RFC 7662 section 2.1: a form-encoded POST with the token.
    if _http.media_type(request) != _http.FORM_MEDIA_TYPE:
        raise HttpError(400, "invalid_request", f"the body must be {_http.FORM_MEDIA_TYPE}")
    form = _http.parse_form(await _http.read_body(request, _BODY_LIMIT))
    await in_thread(
        authority.authenticate, dpop_header(request), htu=authority.introspection_endpoint
    )
    token = form.get("token")
    if not token:
        raise HttpError(400, "invalid_request", "token is required (RFC 7662 section 2.1)")
    if len(token) > _MAX_TOKEN:
        raise HttpError(400, "invalid_request", f"token is longer than {_MAX_TOKEN} characters")
    answer = await in_thread(authority.introspect, token)
    # RFC 7662 section 4: the answer must not be cached by intermediaries.
    return json_response(answer, headers={"Cache-Control": "no-store"})
