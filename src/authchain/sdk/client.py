"""Talking to the authority over HTTP: task starts, hops and action reports, each with a DPoP proof.

A workload holds one private key (its registered key). Every request it makes to the authority is
signed for that request with a fresh DPoP proof (RFC 9449 section 4); the authority identifies the
workload by the key. The request is built and the answer parsed by pure functions, and two thin
clients do the I/O: :class:`AuthorityClient` over ``httpx.Client`` and :class:`AsyncAuthorityClient`
over ``httpx.AsyncClient``. Both follow a ``use_dpop_nonce`` challenge once (RFC 9449 section 8).

The SDK never imports server code (docs/architecture.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from authchain._encoding import b64url_decode, json_loads_strict
from authchain.errors import MalformedError, RemoteError, RemoteUnavailableError
from authchain.identity.keys import JWKS, SigningKey
from authchain.sdk.tracing import outgoing_traceparent
from authchain.tokens.dpop import content_digest, create_proof
from authchain.tokens.hop import TOKEN_EXCHANGE_GRANT_TYPE
from authchain.tokens.id_token import ID_TOKEN_TYPE
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN

__all__ = [
    "AuthorityClient",
    "AsyncAuthorityClient",
    "AuthorityMetadata",
    "TaskToken",
    "TOKEN_EXCHANGE",
    "ID_TOKEN_TYPE",
    "TXN_TOKEN_TYPE",
]

# RFC 8693 section 2.1 and section 3; Txn-Tokens section 4.
TOKEN_EXCHANGE: Final = TOKEN_EXCHANGE_GRANT_TYPE
TXN_TOKEN_TYPE: Final = TXN_TOKEN_TYPE_URN

_DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True, slots=True)
class TaskToken:
    """A task token as the authority returned it (RFC 8693 section 2.2.1).

    ``unverified_claims`` is the token's payload, decoded but not verified: the holder reads its
    task id and log index for its own bookkeeping; every service it presents the token to verifies it.
    """

    access_token: str
    expires_in: int
    scope: tuple[str, ...]
    unverified_claims: Mapping[str, Any]

    @property
    def txn(self) -> str | None:
        value = self.unverified_claims.get("txn")
        return value if isinstance(value, str) else None

    @property
    def log_index(self) -> int | None:
        value = self.unverified_claims.get("log")
        return value if isinstance(value, int) else None

    @property
    def actor(self) -> str | None:
        act = self.unverified_claims.get("act")
        value = act.get("sub") if isinstance(act, dict) else None
        return value if isinstance(value, str) else None

    @classmethod
    def from_response(cls, body: Mapping[str, Any]) -> TaskToken:
        token = body.get("access_token")
        if not isinstance(token, str) or body.get("token_type") != "DPoP":
            raise MalformedError("token response lacks a DPoP access_token (RFC 8693 2.2.1)")
        if body.get("issued_token_type") != TXN_TOKEN_TYPE:
            raise MalformedError("token response is not a txn_token")
        expires_in = body.get("expires_in")
        scope = body.get("scope", "")
        return cls(
            access_token=token,
            expires_in=expires_in if isinstance(expires_in, int) else 0,
            scope=tuple(scope.split()) if isinstance(scope, str) else (),
            unverified_claims=_unverified_payload(token),
        )

    @classmethod
    def from_string(cls, token: str) -> TaskToken:
        """A token handed over by the previous holder (e.g. in a request body)."""
        claims = _unverified_payload(token)
        scope = claims.get("scope", "")
        exp, iat = claims.get("exp"), claims.get("iat")
        lifetime = exp - iat if isinstance(exp, int) and isinstance(iat, int) else 0
        return cls(token, lifetime, tuple(scope.split()) if isinstance(scope, str) else (), claims)

    def __repr__(self) -> str:  # never print the raw token
        return f"TaskToken(txn={self.txn!r}, actor={self.actor!r}, scope={self.scope!r})"


def _unverified_payload(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedError("task token is not a compact JWS")
    payload = json_loads_strict(b64url_decode(parts[1], max_len=16 * 1024))
    if not isinstance(payload, dict):
        raise MalformedError("task token payload is not a JSON object")
    return payload


@dataclass(frozen=True, slots=True)
class AuthorityMetadata:
    """What a workload needs from the authority's RFC 8414 metadata."""

    issuer: str
    token_endpoint: str
    jwks_uri: str
    events_endpoint: str
    trust_domain: str | None

    @classmethod
    def from_document(cls, doc: Mapping[str, Any], base_url: str) -> AuthorityMetadata:
        issuer = doc.get("issuer")
        token_endpoint = doc.get("token_endpoint")
        jwks_uri = doc.get("jwks_uri")
        if not all(isinstance(v, str) for v in (issuer, token_endpoint, jwks_uri)):
            raise MalformedError(
                "authorization server metadata lacks issuer/token_endpoint/jwks_uri"
            )
        assert isinstance(issuer, str) and isinstance(token_endpoint, str)
        assert isinstance(jwks_uri, str)
        # RFC 8414 section 3.3: the issuer in the document must be the one it was fetched for.
        if issuer.rstrip("/") != base_url.rstrip("/"):
            raise MalformedError(
                f"metadata issuer {issuer!r} is not the configured authority {base_url!r}"
            )
        events = doc.get("authchain_events_endpoint")
        domain = doc.get("authchain_trust_domain")
        return cls(
            issuer=issuer,
            token_endpoint=token_endpoint,
            jwks_uri=jwks_uri,
            events_endpoint=events if isinstance(events, str) else issuer.rstrip("/") + "/events",
            trust_domain=domain if isinstance(domain, str) else None,
        )


# --------------------------------------------------------------------------------------------------
# The protocol, without I/O.


class _Protocol:
    """Builds requests and reads answers. Shared by the sync and async clients; holds the latest
    DPoP nonce the authority sent (RFC 9449 section 8: a server may rotate it on any response)."""

    def __init__(self, base_url: str, key: SigningKey, clock: Callable[[], float]) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.clock = clock
        self.nonce: str | None = None
        self.metadata: AuthorityMetadata | None = None
        self._lock = threading.Lock()

    def proof(self, method: str, url: str, body_digest: str | None = None) -> str:
        return create_proof(
            self.key,
            htm=method,
            htu=url,
            now=int(self.clock()),
            nonce=self.nonce,
            content_digest=body_digest,
        )

    def start_form(
        self,
        id_token: str,
        scope: str | Iterable[str] | None,
        purpose: str | None,
        details: Mapping[str, Any] | None,
    ) -> dict[str, str]:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": id_token,
            "subject_token_type": ID_TOKEN_TYPE,
            "requested_token_type": TXN_TOKEN_TYPE,
        }
        scope_text = _scope_text(scope)
        if scope_text:
            form["scope"] = scope_text
        request_details = dict(details or {})
        if purpose is not None:
            request_details["purpose"] = purpose
        if request_details:
            form["request_details"] = orjson.dumps(request_details).decode()
        return form

    def hop_form(self, token: str, to: str, scope: str | Iterable[str] | None) -> dict[str, str]:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": token,
            "subject_token_type": TXN_TOKEN_TYPE,
            "requested_token_type": TXN_TOKEN_TYPE,
            "audience": to,
        }
        scope_text = _scope_text(scope)
        if scope_text:
            form["scope"] = scope_text
        return form

    def headers(self, method: str, url: str) -> dict[str, str]:
        return {
            "DPoP": self.proof(method, url),
            "traceparent": outgoing_traceparent(),
            "Accept": "application/json",
        }

    def json_headers(self, url: str, content: bytes) -> dict[str, str]:
        """A JSON POST whose DPoP proof covers the body: RFC 9530 ``Content-Digest`` and the same
        value in the proof's ``content_digest`` claim (``/events`` requires both)."""
        digest = content_digest(content)
        return {
            "DPoP": self.proof("POST", url, digest),
            "Content-Digest": digest,
            "Content-Type": "application/json",
            "traceparent": outgoing_traceparent(),
            "Accept": "application/json",
        }

    def note_nonce(self, response: httpx.Response) -> bool:
        """Remember a ``DPoP-Nonce``; True if the response is a ``use_dpop_nonce`` challenge."""
        nonce = response.headers.get("dpop-nonce")
        if nonce:
            self.nonce = nonce
        if response.status_code not in (400, 401) or not nonce:
            return False
        if 'error="use_dpop_nonce"' in response.headers.get("www-authenticate", ""):
            return True
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and body.get("error") == "use_dpop_nonce"


def _scope_text(scope: str | Iterable[str] | None) -> str:
    if scope is None:
        return ""
    return scope if isinstance(scope, str) else " ".join(scope)


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def raise_for_answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON body of a successful answer, or :class:`RemoteError` carrying the OAuth error or
    problem code, the status, and the log index of the recorded refusal."""
    body = _body(response)
    if response.status_code < 400:
        return body
    error = body.get("error") or body.get("code") or f"http_{response.status_code}"
    description = body.get("error_description") or body.get("detail") or response.reason_phrase
    log_index = body.get("log_index")
    retry_after = _retry_after(response)
    cls = (
        RemoteUnavailableError
        if response.status_code >= 500 or response.status_code == 429
        else RemoteError
    )
    raise cls(
        f"{error}: {description}",
        error=str(error),
        status=response.status_code,
        log_index=log_index if isinstance(log_index, int) else None,
        retry_after=retry_after,
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isascii() and value.isdigit() else None


def _unreachable(exc: httpx.HTTPError, url: str) -> RemoteUnavailableError:
    return RemoteUnavailableError(f"{url} could not be reached: {type(exc).__name__}")


# --------------------------------------------------------------------------------------------------
# Sync client.


class AuthorityClient:
    """The authority as seen by one workload (sync).

    ``base_url`` is the authority's issuer URL; ``key`` the workload's registered private key.
    ``http`` may be any ``httpx.Client`` (for tests, Starlette's ``TestClient`` of the server app).
    """

    def __init__(
        self,
        base_url: str,
        key: SigningKey,
        *,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
        timeout: httpx.Timeout | float = _DEFAULT_TIMEOUT,
    ) -> None:
        self._p = _Protocol(base_url, key, clock)
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)

    @property
    def key(self) -> SigningKey:
        return self._p.key

    @property
    def base_url(self) -> str:
        return self._p.base_url

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> AuthorityClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unreachable(exc, url) from exc
        return raise_for_answer(response)

    def metadata(self) -> AuthorityMetadata:
        """RFC 8414 metadata, fetched once."""
        if self._p.metadata is None:
            doc = self._get(f"{self._p.base_url}/.well-known/oauth-authorization-server")
            self._p.metadata = AuthorityMetadata.from_document(doc, self._p.base_url)
        return self._p.metadata

    def jwks(self) -> JWKS:
        return JWKS.from_dict(self._get(self.metadata().jwks_uri))

    def _signed_post(self, url: str, form: Mapping[str, str]) -> httpx.Response:
        for _ in range(2):  # RFC 9449 section 8: retry once with the nonce the server supplied
            try:
                response = self.http.post(url, headers=self._p.headers("POST", url), data=form)
            except httpx.HTTPError as exc:
                raise _unreachable(exc, url) from exc
            if not self._p.note_nonce(response):
                return response
        return response

    def start_task(
        self,
        id_token: str,
        *,
        scope: str | Iterable[str] | None = None,
        purpose: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> TaskToken:
        """Exchange the initiator's ID token for the first task token (bound to this key)."""
        form = self._p.start_form(id_token, scope, purpose, details)
        response = self._signed_post(self.metadata().token_endpoint, form)
        return TaskToken.from_response(raise_for_answer(response))

    def delegate(
        self, token: str | TaskToken, *, to: str, scope: str | Iterable[str] | None = None
    ) -> TaskToken:
        """A hop: a narrower token for the workload ``to`` (its SPIFFE ID), bound to its key."""
        raw = token.access_token if isinstance(token, TaskToken) else token
        form = self._p.hop_form(raw, to, scope)
        response = self._signed_post(self.metadata().token_endpoint, form)
        return TaskToken.from_response(raise_for_answer(response))

    def report(self, report: Mapping[str, Any]) -> int:
        """Send one action report to ``/events``, signed by this (the reporting service's) key,
        the proof covering the body (``Content-Digest``). Returns the log index of the recorded
        event (the first one's, when the authority already recorded this report id).

        Raises :class:`RemoteUnavailableError` for 5xx and 429 (retry later) and
        :class:`RemoteError` otherwise (409: the report id was used for another report)."""
        response = self._post_json(self.metadata().events_endpoint, report)
        body = raise_for_answer(response)
        index = body.get("log_index")
        if not isinstance(index, int):
            raise RemoteError("the authority's answer has no log_index", error="malformed")
        return index

    def _post_json(self, url: str, body: Mapping[str, Any]) -> httpx.Response:
        content = orjson.dumps(dict(body))
        for _ in range(2):
            headers = self._p.json_headers(url, content)
            try:
                response = self.http.post(url, headers=headers, content=content)
            except httpx.HTTPError as exc:
                raise _unreachable(exc, url) from exc
            if not self._p.note_nonce(response):
                return response
        return response


# --------------------------------------------------------------------------------------------------
# Async client.


class AsyncAuthorityClient:
    """The same as :class:`AuthorityClient` over ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        key: SigningKey,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        timeout: httpx.Timeout | float = _DEFAULT_TIMEOUT,
    ) -> None:
        self._p = _Protocol(base_url, key, clock)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    @property
    def key(self) -> SigningKey:
        return self._p.key

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncAuthorityClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise _unreachable(exc, url) from exc
        return raise_for_answer(response)

    async def metadata(self) -> AuthorityMetadata:
        if self._p.metadata is None:
            doc = await self._get(f"{self._p.base_url}/.well-known/oauth-authorization-server")
            self._p.metadata = AuthorityMetadata.from_document(doc, self._p.base_url)
        return self._p.metadata

    async def jwks(self) -> JWKS:
        return JWKS.from_dict(await self._get((await self.metadata()).jwks_uri))

    async def _signed_post(self, url: str, form: Mapping[str, str]) -> httpx.Response:
        for _ in range(2):
            try:
                response = await self.http.post(
                    url, headers=self._p.headers("POST", url), data=form
                )
            except httpx.HTTPError as exc:
                raise _unreachable(exc, url) from exc
            if not self._p.note_nonce(response):
                return response
        return response

    async def start_task(
        self,
        id_token: str,
        *,
        scope: str | Iterable[str] | None = None,
        purpose: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> TaskToken:
        form = self._p.start_form(id_token, scope, purpose, details)
        response = await self._signed_post((await self.metadata()).token_endpoint, form)
        return TaskToken.from_response(raise_for_answer(response))

    async def delegate(
        self, token: str | TaskToken, *, to: str, scope: str | Iterable[str] | None = None
    ) -> TaskToken:
        raw = token.access_token if isinstance(token, TaskToken) else token
        form = self._p.hop_form(raw, to, scope)
        response = await self._signed_post((await self.metadata()).token_endpoint, form)
        return TaskToken.from_response(raise_for_answer(response))
