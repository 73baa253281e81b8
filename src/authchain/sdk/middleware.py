"""The tool service's side: an ASGI middleware that verifies presented task tokens offline, hands the
verified chain to the handler, and reports every action to the authority through a durable outbox.

Per request (RFC 9449 section 7.1):

1. ``Authorization: DPoP <task token>`` and exactly one ``DPoP`` proof are required.
2. The token is verified against the authority's keys (JWKS fetched once and cached; refetched, at
   most once per ``jwks_refresh_interval``, when a token names a key it does not know, so a key
   rotation is picked up without letting unknown ``kid`` values hammer the authority).
3. The proof is verified for this method and for ``htu = base_url + path``: the URL comes from
   configuration, never from the ``Host`` header, which the client controls (RFC 9449 section 11.5).
   Its ``jti`` goes into a replay cache; its key must be the token's ``cnf.jkt``.
4. The handler runs with the verified call in ``request.scope["state"]["authchain"]``; the
   :func:`requires_scope` decorator enforces the route's scope (403 ``insufficient_scope``,
   RFC 6750 section 3.1).
5. Before the response leaves, the action report (the token and proof, so the authority can
   re-verify them, and the outcome) is committed to the outbox; a background sender delivers it.

A presented token that fails verification is refused with 401 and the refusal is reported too
(a replayed token is evidence), summarised per presenting key or source so that a flood of junk
becomes a few reports with counts (:mod:`authchain.sdk.refusals`). A request with no token at all
is refused and not reported. A call refused for scope reports the scope the route required.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio.to_thread
import orjson

from authchain.errors import (
    AuthchainError,
    CapacityError,
    ConfigurationError,
    Input,
    KeyBindingError,
    RemoteError,
    UntrustedIssuerError,
)
from authchain.sdk.client import AuthorityClient
from authchain.sdk.outbox import Outbox, OutboxSender
from authchain.sdk.refusals import RefusalSummaries
from authchain.sdk.tracing import (
    TraceContext,
    attribution_attributes,
    current_trace,
    execute_tool,
    invoke_agent,
)
from authchain.tokens.presentation import Presentation, verify_presentation
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import TrustList

__all__ = ["AuthchainMiddleware", "VerifiedCall", "requires_scope", "describe_action"]

_log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Keys in the ASGI scope's "state" (Starlette exposes it as request.state).
STATE_CALL: Final = "authchain"
_STATE_ACTION: Final = "authchain.action"
_STATE_RESOURCE: Final = "authchain.resource"
_STATE_REFUSAL: Final = "authchain.refusal"
_STATE_REQUIRED: Final = "authchain.required_scope"
_STATE_ATTRS: Final = "authchain.attrs"

# RFC 9449 section 5.1 / 7.1: the algorithms a proof may use, for WWW-Authenticate challenges.
_ALGS: Final = "EdDSA ES256"


@dataclass(frozen=True, slots=True)
class VerifiedCall:
    """A verified presentation, as the handler sees it: who initiated the task, who presents the
    token, through which chain, with which scope."""

    txn: str
    initiator: str
    actor: str
    chain: tuple[str, ...]
    scope: tuple[str, ...]
    token_hash: str
    decision_id: str | None
    token_log_index: int | None
    presentation: Presentation

    @classmethod
    def of(cls, presentation: Presentation) -> VerifiedCall:
        claims = presentation.claims
        authz = claims.authz or {}
        decision_id = authz.get("id")
        return cls(
            txn=claims.txn,
            initiator=claims.sub,
            actor=claims.actor,
            chain=tuple(claims.chain),
            scope=tuple(claims.scope),
            token_hash=presentation.token.token_hash,
            decision_id=decision_id if isinstance(decision_id, str) else None,
            token_log_index=claims.log,
            presentation=presentation,
        )


class _Trust:
    """The authority's keys, fetched on first use and refetched on an unknown ``kid`` at most once
    per interval. Thread-safe; fetches run in worker threads."""

    def __init__(
        self,
        client: AuthorityClient,
        trust_domain: str | None,
        refresh_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.client = client
        self.trust_domain = trust_domain
        self.refresh_interval = refresh_interval
        self.clock = clock
        self.trust: TrustList | None = None
        self.fetched_at = float("-inf")
        self._lock = threading.Lock()

    def load(self, *, force: bool = False) -> bool:
        """Fetch the keys if not yet fetched (or, with ``force``, if the last fetch is older than the
        interval). Returns whether a fetch happened."""
        with self._lock:
            if self.trust is not None and (
                not force or self.clock() - self.fetched_at < self.refresh_interval
            ):
                return False
            metadata = self.client.metadata()
            jwks = self.client.jwks()
            self.trust = TrustList({metadata.issuer: jwks})
            if self.trust_domain is None:
                if metadata.trust_domain is None:
                    raise ConfigurationError(
                        "the authority's metadata names no trust domain; configure trust_domain"
                    )
                self.trust_domain = metadata.trust_domain
            self.fetched_at = self.clock()
            return True


def _header(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == name]


def _problem(
    status: int, code: str, detail: str, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = orjson.dumps(
        {"type": "about:blank", "title": code, "status": status, "detail": detail, "code": code}
    )
    raw_headers = [(b"content-type", b"application/problem+json"), (b"cache-control", b"no-store")]
    raw_headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
    return status, body, raw_headers


async def _send_response(
    send: Send, response: tuple[int, bytes, list[tuple[bytes, bytes]]]
) -> None:
    status, body, headers = response
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthchainMiddleware:
    """ASGI middleware for a tool service (or an agent that serves requests).

    ``authority`` is an :class:`AuthorityClient` holding this service's own registered key (it signs
    the proofs of ``/events`` reports). ``identity`` is the service's SPIFFE ID; ``base_url`` the
    public URL its paths are served under (``htu`` is ``base_url`` + the request path). ``outbox`` is
    an :class:`Outbox` or the path of its SQLite file. ``name`` names the tool or agent in spans
    (default: the last segment of the SPIFFE ID); ``kind`` is ``tool`` (``execute_tool`` spans) or
    ``agent`` (``invoke_agent`` spans), by default the first path segment of the SPIFFE ID.
    ``refusals`` summarises refused presentations (default: 20 full reports per 10 s window, the
    rest counted per presenting key or source).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authority: AuthorityClient,
        identity: str,
        base_url: str,
        outbox: Outbox | str | Path,
        trust_domain: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        public_paths: Iterable[str] = ("/healthz",),
        replay_cache: ReplayCache | None = None,
        jwks_refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.time,
        start_sender: bool = True,
        refusals: RefusalSummaries | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
            raise ConfigurationError(f"base_url {base_url!r} must be an absolute http(s) URL")
        self.app = app
        self.authority = authority
        self.identity = identity
        self.base_url = base_url.rstrip("/")
        self.outbox = outbox if isinstance(outbox, Outbox) else Outbox(outbox)
        segments = identity.split("/")
        self.name = name or segments[-1]
        self.kind = kind or (segments[3] if len(segments) > 3 else "tool")
        self.public_paths = frozenset(public_paths)
        self.replay_cache = replay_cache or ReplayCache()
        self.clock = clock
        self.refusals = refusals or RefusalSummaries()
        self._trust = _Trust(authority, trust_domain, jwks_refresh_interval, clock)
        self.sender = OutboxSender(self.outbox, authority.report)
        if start_sender:
            self.sender.start()

    # ----------------------------------------------------------------------------------------------

    def close(self, flush_timeout: float = 5.0) -> None:
        """Try to deliver what is pending (bounded), then stop the sender. Undelivered reports stay
        in the outbox file and go out at the next start."""
        for summary in self.refusals.flush():
            self.outbox.put(summary)
        self.outbox.wait_empty(flush_timeout)
        self.sender.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        await self._http(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await anyio.to_thread.run_sync(self.close)
            return message

        return wrapped

    def htu(self, scope: Scope) -> str:
        """The URL a proof for this request must name: configured base URL + the path as sent."""
        raw = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else urllib.parse.quote(scope["path"])
        return self.base_url + path.split("?", 1)[0]

    async def _verify(self, token: str, proof: str, method: str, htu: str) -> Presentation:
        if self._trust.trust is None:
            await anyio.to_thread.run_sync(self._trust.load)
        trust = self._trust.trust
        assert trust is not None and self._trust.trust_domain is not None

        def attempt(trust: TrustList) -> Presentation:
            return verify_presentation(
                token,
                proof,
                htm=method,
                htu=htu,
                trust=trust,
                audience=self._trust.trust_domain or "",
                now=int(self.clock()),
                replay_cache=self.replay_cache,
            )

        try:
            return attempt(trust)
        except UntrustedIssuerError:
            # Perhaps a key the authority rotated in since the last fetch. The token is checked
            # before the proof, so the proof's jti was not consumed by the first attempt.
            if not await anyio.to_thread.run_sync(functools.partial(self._trust.load, force=True)):
                raise
            assert self._trust.trust is not None
            return attempt(self._trust.trust)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        htu = self.htu(scope)
        traceparent = next(iter(_header(scope, b"traceparent")), None)
        authorizations = _header(scope, b"authorization")
        proofs = _header(scope, b"dpop")
        scheme, _, token = (authorizations[0] if len(authorizations) == 1 else "").partition(" ")
        token = token.strip()
        if scheme.lower() != "dpop" or not token:
            # RFC 9449 section 7.1: challenge for DPoP.
            await _send_response(
                send,
                _problem(
                    401,
                    "invalid_token",
                    "a task token is required: Authorization: DPoP <token> with a DPoP proof",
                    {"WWW-Authenticate": f'DPoP algs="{_ALGS}"'},
                ),
            )
            return
        if not self.outbox.has_room():
            # Fail closed: an action that could not be recorded is not performed.
            await _send_response(
                send,
                _problem(503, "outbox_full", "the action outbox is full", {"Retry-After": "5"}),
            )
            return
        proof = proofs[0] if len(proofs) == 1 else ",".join(proofs)  # RFC 9449 4.3 (1)
        # The time of the presentation: the authority verifies the token and proof as of it.
        presented_at = int(self.clock())
        for summary in self.refusals.due(presented_at):  # a window of refusals closed
            await anyio.to_thread.run_sync(self.outbox.put, summary)
        try:
            presentation = await self._verify(token, proof, method, htu)
        except RemoteError as exc:
            await _send_response(
                send,
                _problem(
                    503,
                    "authority_unavailable",
                    f"cannot fetch the authority's keys: {exc}",
                    {"Retry-After": "5"},
                ),
            )
            return
        except AuthchainError as exc:
            await self._refuse(scope, send, exc, token, proof, method, htu, traceparent)
            return

        call = VerifiedCall.of(presentation)
        state = scope.setdefault("state", {})
        state[STATE_CALL] = call
        attrs = attribution_attributes(
            txn=call.txn,
            initiator=call.initiator,
            actor=call.actor,
            chain=call.chain,
            decision_id=call.decision_id,
            executor=self.identity,
            token_log_index=call.token_log_index,
        )
        span_cm = (
            invoke_agent(
                self.name,
                agent_id=self.identity,
                traceparent=traceparent,
                attributes=attrs,
                server=True,
            )
            if self.kind == "agent"
            else execute_tool(
                self.name,
                call_id=presentation.proof.jti,
                traceparent=traceparent,
                attributes=attrs,
                server=True,
            )
        )
        reported = False

        async def report(status: int) -> None:
            nonlocal reported
            if reported:
                return
            reported = True
            refusal = state.get(_STATE_REFUSAL)
            outcome = "refused" if refusal else ("succeeded" if status < 400 else "failed")
            context = current_trace()
            body: dict[str, Any] = {
                "token": token,
                "proof": proof,
                "htm": method,
                "htu": htu,
                "action": state.get(_STATE_ACTION) or f"{method} {_route_path(scope)}",
                "resource": state.get(_STATE_RESOURCE) or htu,
                "outcome": outcome,
                "presenter": call.actor,
                "performed_at": presented_at,
                "attrs": {"status": status, **state.get(_STATE_ATTRS, {})},
            }
            if refusal:
                body["refusal"] = refusal
            if state.get(_STATE_REQUIRED):
                body["required_scope"] = state[_STATE_REQUIRED]
            if context is not None:
                body["traceparent"] = context.traceparent()
            # Durable before the client sees the response.
            await anyio.to_thread.run_sync(self.outbox.put, body)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attributes({"http.response.status_code": status})
                if status >= 400:
                    span.set_error(str(state.get(_STATE_REFUSAL) or status))
                await report(status)
            await send(message)

        with span_cm as span:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception:
                await report(500)
                raise

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        exc: AuthchainError,
        token: str,
        proof: str,
        method: str,
        htu: str,
        traceparent: str | None,
    ) -> None:
        if isinstance(exc, CapacityError):
            # A full replay cache says nothing about the request: retry later (not evidence).
            await _send_response(send, _problem(503, exc.code, exc.message, {"Retry-After": "1"}))
            return
        # RFC 9449 section 7.1: the presentation verifier names the input it refused, so the error
        # is a lookup. Anything not about the proof (the token, or the authority's keys being
        # unusable) is answered as the token's fault, which asks the client for a new token.
        error = "invalid_dpop_proof" if exc.input is Input.PRESENTED_PROOF else "invalid_token"
        context = TraceContext.parse(traceparent)
        now = self.clock()
        sample: dict[str, Any] = {
            "htm": method,
            "htu": htu,
            "action": f"{method} {_route_path(scope)}",
            "resource": htu,
            "outcome": "refused",
            "refusal": exc.code,
            "performed_at": int(now),
            "attrs": {"status": 401},
        }
        if context is not None:
            sample["traceparent"] = context.child().traceparent()
        # Who presented: the key a verified proof names, else the source (an unproven key is free).
        jkt = exc.presenter_jkt if isinstance(exc, KeyBindingError) else None
        client = scope.get("client")
        who = f"jkt:{jkt}" if jkt else f"source:{client[0] if client else 'unknown'}"
        reports = self.refusals.due(now)
        if self.refusals.admit(who, exc.code, now, sample):
            reports.append({**sample, "token": token, "proof": proof})
        try:
            for report in reports:
                await anyio.to_thread.run_sync(self.outbox.put, report)
        except AuthchainError as storage:  # the refusal stands; the evidence is logged locally
            _log.error("could not queue the refusal report: %s", storage)
        # RFC 9449 section 7.1 / RFC 6750 section 3: the error in the challenge.
        challenge = f'DPoP error="{error}", algs="{_ALGS}"'
        await _send_response(
            send, _problem(401, error, exc.message, {"WWW-Authenticate": challenge})
        )


def _route_path(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else str(scope.get("path", ""))


# --------------------------------------------------------------------------------------------------
# Route declarations.

F = TypeVar("F", bound=Callable[..., Any])


def _scope_of(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Scope:
    for value in (*args, *kwargs.values()):
        candidate = getattr(value, "scope", None)
        if isinstance(candidate, dict) and candidate.get("type") == "http":
            return candidate
    raise ConfigurationError("requires_scope: the handler takes no request argument")


def describe_action(
    request: Any,
    *,
    action: str | None = None,
    resource: str | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Name the action and the resource this request acts on, for its report (call it from the
    handler; the defaults are the route and the URL)."""
    state = request.scope.setdefault("state", {})
    if action is not None:
        state[_STATE_ACTION] = action
    if resource is not None:
        state[_STATE_RESOURCE] = resource
    if attrs:
        state.setdefault(_STATE_ATTRS, {}).update(attrs)


def requires_scope(*scopes: str, action: str | None = None) -> Callable[[F], F]:
    """Declare the scopes a route needs; the request is refused (403, RFC 6750 ``insufficient_scope``)
    unless the verified token holds every one of them, and the refusal is reported.

    Decorates a handler that takes the request (Starlette's ``Request`` or anything with the ASGI
    ``scope``), sync or async. Without the middleware in front there is no verified call, and the
    request is refused (fail closed).
    """
    required = tuple(scopes)
    if not required or not all(isinstance(s, str) and s and " " not in s for s in required):
        raise ConfigurationError("requires_scope needs one or more scope names without spaces")

    def decorate(handler: F) -> F:
        @functools.wraps(handler)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            scope = _scope_of(args, kwargs)
            state = scope.setdefault("state", {})
            state.setdefault(_STATE_ACTION, action or handler.__name__)
            call = state.get(STATE_CALL)
            if not isinstance(call, VerifiedCall):
                state[_STATE_REFUSAL] = "invalid_token"
                return _plain_response(
                    401,
                    "invalid_token",
                    "no verified task token (is AuthchainMiddleware installed?)",
                    {"WWW-Authenticate": f'DPoP algs="{_ALGS}"'},
                )
            missing = [s for s in required if s not in call.scope]
            if missing:
                state[_STATE_REFUSAL] = "scope_escalation"
                # The route's scope, for the report: the token's own scope the authority knows.
                state[_STATE_REQUIRED] = " ".join(required)
                return _plain_response(
                    403,
                    "insufficient_scope",
                    f"scope `{' '.join(missing)}` is required but the token holds "
                    f"`{' '.join(call.scope)}`",
                    {
                        "WWW-Authenticate": f'DPoP error="insufficient_scope", scope="{" ".join(required)}"'
                    },
                )
            result = handler(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        wrapper.__authchain_scopes__ = required  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class _ProblemResponse:
    """A minimal ASGI response (so the decorator works without Starlette's response classes)."""

    def __init__(self, status: int, code: str, detail: str, headers: Mapping[str, str]) -> None:
        self.status_code = status
        self._response = _problem(status, code, detail, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_response(send, self._response)


def _plain_response(status: int, code: str, detail: str, headers: Mapping[str, str]) -> Any:
    with contextlib.suppress(ImportError):
        from starlette.responses import Response

        _, body, raw = _problem(status, code, detail, headers)
        return Response(
            body,
            status_code=status,
            headers={k.decode(): v.decode("latin-1") for k, v in raw if k != b"content-type"},
            media_type="application/problem+json",
        )
    return _ProblemResponse(status, code, detail, headers)
