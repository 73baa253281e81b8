"""The :class:`Authority`: the one object the server, the CLI and the demo hold.

A thin facade over the modules that each do one job: the recorder (:mod:`.recorder`), the state
beside the log (:mod:`.state`), registration (:mod:`.registry`), revocation (:mod:`.revocation`),
signing keys (:mod:`.keys`), requester authentication (:mod:`.requester`), issuance
(:mod:`.issuance`) and action reports (:mod:`.actions`). No HTTP here: the server calls these methods
with the request's method and URL so DPoP proofs are checked against what the client really signed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from authchain.audit.startup import verify_at_start
from authchain.audit.store import LogStore
from authchain.authority.actions import ActionReports
from authchain.authority.issuance import Issuance, IssuedToken
from authchain.authority.keys import Signer
from authchain.authority.recorder import Recorder
from authchain.authority.registry import Registration
from authchain.authority.requester import Authenticator
from authchain.authority.revocation import Revocations
from authchain.authority.state import SideState
from authchain.errors import AuthchainError, VerificationError
from authchain.identity.keys import JWKS, KeyRing, SigningKey
from authchain.identity.registry import Registry, WorkloadRecord
from authchain.policy import PolicyEngine
from authchain.tokens.dpop import DPoPProof
from authchain.tokens.id_token import DEFAULT_ID_TOKEN_MAX_AGE
from authchain.tokens.nonce import NonceSource
from authchain.tokens.task_token import TrustList, verify_task_token

__all__ = ["Authority"]


class Authority:
    """Issues task tokens, records every decision and action, answers from the log.

    Thread-safe: issuance may run on many threads (the store group-commits their records); changes
    to the registry, revocations and keys are serialised.

    ``nonce_source``, when given, makes DPoP nonces mandatory for every requester (RFC 9449
    section 8). ``token_endpoint`` and ``events_endpoint`` are the public URLs proofs must name
    (never built from a request's ``Host`` header). ``id_token_max_age`` is how old (by ``iat``, in
    seconds) an initiator's ID token may be when it starts a task.

    Construction verifies the log first (:func:`authchain.audit.startup.verify_at_start`,
    incremental since the last verified start) and raises :class:`LogIntegrityError`, naming the
    first bad index, rather than append on top of a log that does not verify.
    """

    def __init__(
        self,
        store: LogStore,
        *,
        issuer: str = "https://authority.example.org",
        trust_domain: str = "example.org",
        policy: PolicyEngine | None = None,
        signing_key: SigningKey | None = None,
        clock: Callable[[], float] = time.time,
        token_lifetime: int = 300,
        task_lifetime: int = 3600,
        max_depth: int = 8,
        token_endpoint: str | None = None,
        events_endpoint: str | None = None,
        nonce_source: NonceSource | None = None,
        id_token_max_age: int = DEFAULT_ID_TOKEN_MAX_AGE,
    ) -> None:
        # Nothing is appended, and nothing beside the log is trusted, before the log verifies.
        verify_at_start(store)
        self.issuer = issuer.rstrip("/")
        self.trust_domain = trust_domain
        self.policy = policy or PolicyEngine.default()
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.task_lifetime = task_lifetime
        self.max_depth = max_depth
        self.token_endpoint = token_endpoint or f"{self.issuer}/token"
        self.events_endpoint = events_endpoint or f"{self.issuer}/events"
        self.introspection_endpoint = f"{self.issuer}/introspect"
        lock = threading.RLock()
        state = SideState(store)
        #: The only code that appends to the log.
        self.recorder = Recorder(store, trust_domain=trust_domain, clock=clock)
        self._revocations = Revocations(self.recorder, state, lock, lambda: self.registry)
        self._registration = Registration(
            self.recorder,
            state,
            lock,
            trust_domain=trust_domain,
            revoking=self._revocations.revoking,
        )
        self._signer = Signer(
            self.recorder,
            state,
            lock,
            issuer=self.issuer,
            token_lifetime=token_lifetime,
            clock=self.now,
            signing_key=signing_key,
        )
        self._auth = Authenticator(
            lambda: self.registry, recorder=self.recorder, nonce_source=nonce_source
        )
        self._issuance = Issuance(
            recorder=self.recorder,
            signer=self._signer,
            authenticator=self._auth,
            revocations=self._revocations,
            registry=lambda: self.registry,
            policy=lambda: self.policy,
            clock=self.now,
            issuer=self.issuer,
            trust_domain=trust_domain,
            token_endpoint=self.token_endpoint,
            token_lifetime=token_lifetime,
            task_lifetime=task_lifetime,
            max_depth=max_depth,
            id_token_max_age=id_token_max_age,
        )
        self._actions = ActionReports(
            recorder=self.recorder,
            signer=self._signer,
            revocations=self._revocations,
            registry=lambda: self.registry,
            clock=self.now,
            trust_domain=trust_domain,
        )

    # ----------------------------------------------------------------------------------------------
    # What the authority reads.

    def now(self) -> int:
        return int(self._clock())

    @property
    def store(self) -> LogStore:
        """The log this authority records into."""
        return self.recorder.store

    @property
    def registry(self) -> Registry:
        return self._registration.registry

    @property
    def keys(self) -> KeyRing:
        return self._signer.keys

    @property
    def trust(self) -> TrustList:
        """The trust list a resource server of this domain verifies task tokens with."""
        return self._signer.trust

    @property
    def nonce_source(self) -> NonceSource | None:
        return self._auth.nonce_source

    def jwks(self) -> JWKS:
        """The keys that verify this authority's task tokens now (the active and retiring ones)."""
        return self._signer.jwks()

    # ----------------------------------------------------------------------------------------------
    # Requests from workloads.

    def authenticate(
        self,
        dpop_proof: str | None,
        *,
        htu: str,
        htm: str = "POST",
        content_digest: str | None = None,
    ) -> tuple[DPoPProof, WorkloadRecord]:
        """The registered workload whose key signed ``dpop_proof`` for this request; with
        ``content_digest`` (the request's verified RFC 9530 ``Content-Digest``) the proof must
        cover it. The proof's ``jti`` is spent by the request's next record (durably).

        Raises:
            DPoPError: about ``Input.DPOP_PROOF`` (missing, malformed, for another request or body;
                ``DPoPNonceError`` without the current nonce) or ``Input.ACTOR`` (key unregistered).
            ReplayError: the proof was used before (about ``Input.DPOP_PROOF``).
            StorageError: the single-use ledger could not be read; retry later.
        """
        return self._auth.authenticate(
            dpop_proof, htm=htm, htu=htu, now=self.now(), content_digest=content_digest
        )

    def start_task(
        self,
        *,
        subject_token: str,
        dpop_proof: str | None,
        scope: str | Iterable[str] | None,
        request_details: Mapping[str, Any] | str | None = None,
        htm: str = "POST",
        htu: str | None = None,
        traceparent: str | None = None,
        human_approval: bool = False,
    ) -> IssuedToken:
        """RFC 8693 exchange of the initiator's ID token for the first task token of a new task.

        The actor is the workload whose registered key signed the DPoP proof; the token is bound to
        that key. ``request_details`` (the purpose and its parameters) becomes the immutable ``tctx``.

        Raises:
            VerificationError: the request failed a check; ``exc.input`` names the input
                (request details, DPoP proof, actor, subject token, scope) and ``exc.log_index``
                the entry recording the refusal (none for ``DPoPNonceError``, a protocol round
                trip). A scope beyond the actor's registration is a ``ScopeEscalationError``.
            PolicyDenied: policy denied the start (recorded, with the decision).
            StorageError, ReplayCacheFullError: nothing was issued; retry later.
        """
        return self._issuance.start_task(
            subject_token=subject_token,
            dpop_proof=dpop_proof,
            scope=scope,
            request_details=request_details,
            htm=htm,
            htu=htu,
            traceparent=traceparent,
            human_approval=human_approval,
        )

    def exchange(
        self,
        *,
        subject_token: str,
        dpop_proof: str | None,
        audience: str,
        scope: str | Iterable[str] | None = None,
        lifetime: int | None = None,
        htm: str = "POST",
        htu: str | None = None,
        traceparent: str | None = None,
        human_approval: bool = False,
    ) -> IssuedToken:
        """RFC 8693 token exchange of a task token for a narrower one bound to the next actor.

        Raises:
            VerificationError: the request failed a check; ``exc.input`` names the input (DPoP
                proof, actor, subject token, audience, scope) and ``exc.log_index`` the entry
                recording the refusal (none for ``DPoPNonceError``).
            PolicyDenied: policy denied the hop (recorded, with the decision).
            StorageError, ReplayCacheFullError: nothing was issued; retry later.
        """
        return self._issuance.exchange(
            subject_token=subject_token,
            dpop_proof=dpop_proof,
            audience=audience,
            scope=scope,
            lifetime=lifetime,
            htm=htm,
            htu=htu,
            traceparent=traceparent,
            human_approval=human_approval,
        )

    def record_action(self, **report: Any) -> int:
        """Record an action a resource server performed (or refused) for a presented token; see
        :meth:`authchain.authority.actions.ActionReports.record_action` for the members.

        Raises:
            MalformedError: the report is out of bounds (``performed_at``, ``count``, attributes).
            ReplayError: ``report_id`` was recorded before for the same report; ``first_index``.
            DuplicateEventError: ``report_id`` was used before for another report.
            RateLimitedError: the reporter's budget of unverified reports is spent; retry later.
            StorageError: nothing was recorded; retry later.
        """
        return self._actions.record_action(**report)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 token introspection of a task token, as of now: is it still usable?

        ``{"active": false}`` (with ``authchain_reason``, the machine code) when the token does not
        verify, has expired, or it, an ancestor or its task was revoked, or its holder's key was
        replaced; otherwise ``active`` with the token's claims (RFC 7662 section 2.2). Resource
        servers call it to refuse tokens whose chain was revoked (the staleness bound is theirs:
        how long they keep an answer). Reads only; records nothing.
        """
        try:
            verified = verify_task_token(
                token, trust=self.trust, audience=self.trust_domain, now=self.now()
            )
            self._revocations.check(verified)
        except VerificationError as exc:
            return {"active": False, "authchain_reason": exc.code}
        claims = verified.claims
        return {
            "active": True,
            "token_type": "DPoP",
            "scope": " ".join(claims.scope),
            "iss": claims.iss,
            "aud": claims.aud,
            "sub": claims.sub,
            "iat": claims.iat,
            "exp": claims.exp,
            "jti": claims.jti,
            "txn": claims.txn,
            "act": claims.act,
            "cnf": {"jkt": claims.cnf_jkt},
        }

    def record_refusal(
        self,
        exc: AuthchainError,
        *,
        action: str,
        subject_token: str | None = None,
        audience: str | None = None,
        traceparent: str | None = None,
    ) -> AuthchainError:
        """Record a token request refused before it reached a decision; returns ``exc`` with its
        ``log_index``.

        Raises:
            StorageError: the refusal could not be recorded (it stands all the same).
        """
        return self._issuance.record_refusal(
            exc,
            action=action,
            subject_token=subject_token,
            audience=audience,
            traceparent=traceparent,
        )

    # ----------------------------------------------------------------------------------------------
    # Administration.

    def register_workload(
        self,
        spiffe_id: str,
        *,
        kind: str,
        jwk: Mapping[str, Any],
        scopes: Iterable[str] = (),
        endpoints: Iterable[str] = (),
    ) -> int:
        """Register (or re-register) a workload of this trust domain: its key, the scopes it may
        ever hold (a ceiling on every token it receives) and the URL prefixes it serves
        (``endpoints``: https, or http for a loopback host). Returns the log index. A new key ends
        every token bound to the old one.

        Raises:
            InvalidSpiffeIdError, InvalidPrincipalError, InvalidKeyError: the registration is
                malformed, names another trust domain, or the key belongs to another workload.
                Nothing changes.
            StorageError: not recorded, so not applied.
        """
        return self._registration.register_workload(
            spiffe_id, kind=kind, jwk=jwk, scopes=scopes, endpoints=endpoints
        )

    def register_principal(
        self, sub: str, *, kind: str = "user", scopes: Iterable[str] = ()
    ) -> int:
        """Register a principal with the scopes it may grant; returns the log index.

        Raises:
            InvalidPrincipalError: malformed id, kind or scopes. Nothing changes.
            StorageError: not recorded, so not applied.
        """
        return self._registration.register_principal(sub, kind=kind, scopes=scopes)

    def trust_issuer(self, issuer: str, jwks: JWKS | Mapping[str, Any]) -> int:
        """Trust an OpenID issuer's ID tokens to start tasks; returns the log index.

        Raises:
            InvalidPrincipalError, InvalidKeyError: the issuer URL or its keys are unusable (a JWK
                Set without a key among them).
            StorageError: not recorded, so not applied.
        """
        return self._registration.trust_issuer(issuer, jwks)

    def revoke(
        self,
        *,
        token_hash: str | None = None,
        txn: str | None = None,
        reason: str = "",
        by: str = "admin",
    ) -> int:
        """Revoke one token (and so every descendant) by its hash, or a whole task.

        Raises:
            MalformedError: not exactly one of ``token_hash`` and ``txn``, or the reason too long.
            StorageError: not recorded, so not applied.
        """
        return self._revocations.revoke(token_hash=token_hash, txn=txn, reason=reason, by=by)

    def end_task(self, txn: str, *, by: str = "admin") -> int:
        """End a task: late work under any of its tokens is refused and the refusal recorded.

        Raises:
            StorageError: not recorded, so not applied.
        """
        return self._revocations.end_task(txn, by=by)

    def rotate_signing_key(self, new_key: SigningKey | None = None, *, by: str = "admin") -> str:
        """Rotate the token-signing key with overlap (recorded as ``key.rotated``); returns the new
        ``kid``.

        Raises:
            ConfigurationError: ``new_key`` is the active key.
            StorageError: not recorded, so not applied.
        """
        return self._signer.rotate(new_key, by=by)
