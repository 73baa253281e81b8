"""What the routes of the HTTP API share: their state, the admin check, JSON answers, threads."""

from __future__ import annotations

import collections
import functools
import hmac
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from authchain.server.errors import ApiError
from authchain.tokens.nonce import NonceSource
from authchain.tokens.replay import ReplayCache

if TYPE_CHECKING:
    from authchain.authority import Authority

__all__ = ["State", "in_thread", "json_response", "require_admin", "admin_or_public"]

_REPORT_DEDUP_SIZE: Final = 65_536


class State:
    """What the routes share: the authority, the admin credential, DPoP nonces and replay state."""

    def __init__(
        self,
        authority: Authority,
        admin_token: str | None,
        nonce_source: NonceSource | None,
        public_log: bool,
    ) -> None:
        self.authority = authority
        self.admin_token = admin_token.encode() if admin_token else None
        self.nonce_source = nonce_source
        self.public_log = public_log
        # /events proofs are single-use like any other; this cache is separate from the authority's
        # own because the URL differs, so no jti can collide between the two.
        self.events_replay = ReplayCache()
        # A service's outbox may deliver a report twice (the answer to the first attempt was lost).
        # The report id makes the retry idempotent: the first log index is returned again.
        self._reports: collections.OrderedDict[tuple[str, str], int] = collections.OrderedDict()
        self._reports_lock = threading.Lock()
        self.problem_base = f"{authority.issuer}/problems/"

    def seen_report(self, key: tuple[str, str]) -> int | None:
        with self._reports_lock:
            return self._reports.get(key)

    def remember_report(self, key: tuple[str, str], index: int) -> None:
        with self._reports_lock:
            self._reports[key] = index
            while len(self._reports) > _REPORT_DEDUP_SIZE:
                self._reports.popitem(last=False)


async def in_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run a blocking call of the core (a durable append, a proof read) off the event loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def require_admin(state: State, request: Request) -> None:
    """RFC 6750 bearer credential, compared in constant time; everything refused when unset."""
    if state.admin_token is None:
        raise ApiError(
            403,
            "admin_disabled",
            "the admin API is disabled: no admin credential is configured (AUTHCHAIN_ADMIN_TOKEN)",
        )
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError(
            401,
            "unauthorized",
            "an admin bearer token is required",
            {"WWW-Authenticate": 'Bearer realm="authchain-admin"'},
        )
    if not hmac.compare_digest(
        credential.strip().encode("utf-8", "surrogateescape"), state.admin_token
    ):
        raise ApiError(
            401,
            "unauthorized",
            "the admin bearer token is not valid",
            {"WWW-Authenticate": 'Bearer realm="authchain-admin", error="invalid_token"'},
        )


def admin_or_public(state: State, request: Request) -> None:
    if not state.public_log:
        require_admin(state, request)
