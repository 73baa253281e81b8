"""The agent's side: an ``httpx`` auth that presents a task token with a fresh DPoP proof per request.

``AgentAuth`` holds the workload's key and its current task token. On every request it sends
``Authorization: DPoP <task token>`` and a ``DPoP`` proof for that method and URL, bound to the token
by ``ath`` (RFC 9449 section 7.1), plus a ``traceparent``. It also starts tasks and performs hops
through an :class:`AuthorityClient`, so that one object is all an agent needs::

    auth = AgentAuth(key, authority=AuthorityClient("https://authority.example.org", key))
    auth.start_task(id_token, scope="crm:read crm:write", purpose="update ACME's record")
    crm_token = auth.delegate(to="spiffe://example.org/agent/crm", scope="crm:write")
    httpx.get("https://tool.example.org/accounts/acme", auth=auth)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any

import httpx

from authchain.errors import ConfigurationError
from authchain.identity.keys import SigningKey
from authchain.sdk.client import AsyncAuthorityClient, AuthorityClient, TaskToken
from authchain.sdk.tracing import outgoing_traceparent
from authchain.tokens.dpop import create_proof

__all__ = ["AgentAuth"]


class AgentAuth(httpx.Auth):
    """``httpx`` authentication for a workload that holds a task token.

    ``token`` is the task token this workload holds (a string handed over by the previous actor, or
    the :class:`TaskToken` returned by :meth:`start_task`). ``authority`` is needed only to start
    tasks and delegate: a sync :class:`AuthorityClient` for :meth:`start_task`/:meth:`delegate`, an
    :class:`AsyncAuthorityClient` for :meth:`astart_task`/:meth:`adelegate`.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        key: SigningKey,
        token: str | TaskToken | None = None,
        *,
        authority: AuthorityClient | AsyncAuthorityClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.authority = authority
        self._clock = clock
        self._token: TaskToken | None = None
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()
        if token is not None:
            self.token = token

    # The held token.

    @property
    def token(self) -> TaskToken | None:
        return self._token

    @token.setter
    def token(self, value: str | TaskToken | None) -> None:
        self._token = TaskToken.from_string(value) if isinstance(value, str) else value

    def _held(self) -> TaskToken:
        if self._token is None:
            raise ConfigurationError(
                "this workload holds no task token: start a task or receive one"
            )
        return self._token

    def _sync_authority(self) -> AuthorityClient:
        if not isinstance(self.authority, AuthorityClient):
            raise ConfigurationError("start_task and delegate need a sync AuthorityClient")
        return self.authority

    def _async_authority(self) -> AsyncAuthorityClient:
        if not isinstance(self.authority, AsyncAuthorityClient):
            raise ConfigurationError("astart_task and adelegate need an AsyncAuthorityClient")
        return self.authority

    # Task start and hops.

    def start_task(
        self,
        id_token: str,
        *,
        scope: str | Iterable[str] | None = None,
        purpose: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> TaskToken:
        """Start a task for the user whose ID token this is; the new token becomes the held one."""
        issued = self._sync_authority().start_task(
            id_token, scope=scope, purpose=purpose, details=details
        )
        self._token = issued
        return issued

    def delegate(self, *, to: str, scope: str | Iterable[str] | None = None) -> TaskToken:
        """A hop: ask for a token for the next actor ``to``. The returned token is bound to that
        actor's key (useless to anyone else); hand it over. The held token is unchanged."""
        return self._sync_authority().delegate(self._held(), to=to, scope=scope)

    async def astart_task(
        self,
        id_token: str,
        *,
        scope: str | Iterable[str] | None = None,
        purpose: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> TaskToken:
        issued = await self._async_authority().start_task(
            id_token, scope=scope, purpose=purpose, details=details
        )
        self._token = issued
        return issued

    async def adelegate(self, *, to: str, scope: str | Iterable[str] | None = None) -> TaskToken:
        return await self._async_authority().delegate(self._held(), to=to, scope=scope)

    # httpx.Auth.

    def _sign(self, request: httpx.Request, token: str) -> None:
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        with self._lock:
            nonce = self._nonces.get(origin)
        # RFC 9449 section 4.2: htu is the request URI without query and fragment (create_proof
        # strips them); ath binds the proof to this token (section 7.1).
        request.headers["DPoP"] = create_proof(
            self.key,
            htm=request.method,
            htu=str(request.url),
            now=int(self._clock()),
            access_token=token,
            nonce=nonce,
        )
        request.headers["Authorization"] = f"DPoP {token}"
        if "traceparent" not in request.headers:
            request.headers["traceparent"] = outgoing_traceparent()

    def _challenge(self, request: httpx.Request, response: httpx.Response) -> bool:
        """Remember a resource server's ``DPoP-Nonce``; True if this response asks for a retry with
        it (RFC 9449 section 9: 401 with ``WWW-Authenticate: DPoP error="use_dpop_nonce"``)."""
        nonce = response.headers.get("dpop-nonce")
        if not nonce:
            return False
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        with self._lock:
            self._nonces[origin] = nonce
        return response.status_code == 401 and 'error="use_dpop_nonce"' in response.headers.get(
            "www-authenticate", ""
        )

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._held().access_token
        self._sign(request, token)
        response = yield request
        if self._challenge(request, response):
            self._sign(request, token)
            yield request
