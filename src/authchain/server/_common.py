"""What the routes of the HTTP API share: their state, the admin check, the DPoP header, JSON
answers, threads."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from authchain.errors import HttpError

if TYPE_CHECKING:
    from authchain.authority import Authority

__all__ = [
    "State",
    "admin_or_public",
    "dpop_header",
    "in_thread",
    "json_response",
    "require_admin",
]


class State:
    """What the routes share: the authority and the admin credential. (Which action reports were
    recorded is the audit log's single-use ledger's to say, durably, not the server's memory.)"""

    def __init__(self, authority: Authority, admin_token: str | None, public_log: bool) -> None:
        self.authority = authority
        self.admin_token = admin_token.encode() if admin_token else None
        self.public_log = public_log
        self.problem_base = f"{authority.issuer}/problems/"


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call of the core (a durable append, a proof read) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def dpop_header(request: Request) -> str | None:
    """The request's ``DPoP`` header, for the authority to verify."""
    values = request.headers.getlist("dpop")
    if not values:
        return None
    # RFC 9449 section 4.3 (1): not more than one DPoP header field. Joined with "," (never valid
    # in a compact JWS) so the authority refuses it as malformed, and records the refusal.
    return ",".join(values)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def require_admin(state: State, request: Request) -> None:
    """RFC 6750 bearer credential, compared in constant time; everything refused when unset."""
    if state.admin_token is None:
        raise HttpError(
            403,
            "admin_disabled",
            "the admin API is disabled: no admin credential is configured (AUTHCHAIN_ADMIN_TOKEN)",
        )
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise HttpError(
            401,
            "unauthorized",
            "an admin bearer token is required",
            {"WWW-Authenticate": 'Bearer realm="authchain-admin"'},
        )
    if not hmac.compare_digest(
        credential.strip().encode("utf-8", "surrogateescape"), state.admin_token
    ):
        raise HttpError(
            401,
            "unauthorized",
            "the admin bearer token is not valid",
            {"WWW-Authenticate": 'Bearer realm="authchain-admin", error="invalid_token"'},
        )


def admin_or_public(state: State, request: Request) -> None:
    if not state.public_log:
        require_admin(state, request)
