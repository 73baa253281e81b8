"""The authority: the only place that signs task tokens (DESIGN.md, "Layers").

It orchestrates the core: verifies the initiator's assertion or the parent token and the holder's
DPoP proof, applies the rules of a hop, asks policy, records the decision durably in the audit log,
and only then signs. Every refusal is recorded too, with its machine code, because denials are
evidence. If recording fails nothing is issued (fail closed).

No HTTP here: the server is a thin adapter that calls these methods with the request's method and
URL so DPoP proofs are checked against what the client really signed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from authchain._encoding import json_loads_strict, sha256_b64url
from authchain._ids import uuid7
from authchain.audit.events import AuditEvent
from authchain.audit.store import LogStore
from authchain.errors import (
    AuthchainError,
    DPoPError,
    InvalidPrincipalError,
    InvalidTargetError,
    KeyBindingError,
    LogIntegrityError,
    MalformedError,
    PolicyDenied,
    RevokedError,
    ScopeEscalationError,
)
from authchain.identity.keys import JWKS, KeyRing, PublicKey, SigningKey
from authchain.identity.registry import PrincipalRecord, Registry, WorkloadRecord
from authchain.identity.spiffe import SpiffeId
from authchain.policy import Decision, Party, PolicyEngine, PolicyRequest
from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.dpop import DPoPProof, verify_proof
from authchain.tokens.hop import HopRequest, derive_child_claims, first_token_claims
from authchain.tokens.id_token import verify_id_token
from authchain.tokens.presentation import verify_presentation
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import (
    TXN_TOKEN_TYPE_URN,
    TrustList,
    VerifiedTaskToken,
    mint_task_token,
    verify_task_token,
)
from authchain.tracecontext import TraceContext

__all__ = ["Authority", "IssuedToken"]

_META_REGISTRY: Final = "authority.registry"
_META_KEYS: Final = "authority.keys"
_META_REVOCATIONS: Final = "authority.revocations"

_MAX_PURPOSE = 512
_MAX_REQUEST_DETAILS = 4096


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A task token the authority signed, and the log entry that recorded its issuance."""

    access_token: str
    token_hash: str
    claims: TaskTokenClaims
    decision: Decision
    log_index: int

    @property
    def expires_in(self) -> int:
        return max(0, self.claims.exp - self.claims.iat)

    @property
    def scope(self) -> str:
        return " ".join(self.claims.scope)

    @property
    def txn(self) -> str:
        return self.claims.txn

    def token_response(self) -> dict[str, Any]:
        """RFC 8693 section 2.2.1 successful response."""
        return {
            "access_token": self.access_token,
            "issued_token_type": TXN_TOKEN_TYPE_URN,
            "token_type": "DPoP",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _split_scope(scope: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if scope is None:
        return None
    if isinstance(scope, str):
        parts = scope.split()
    else:
        parts = list(scope)
    if not parts:
        return None
    return tuple(dict.fromkeys(parts))


class Authority:
    """Issues task tokens, records every decision and action, answers from the log.

    Thread-safe: token issuance may run on many threads; the store group-commits their events.
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
        require_nonce: bool = False,
    ) -> None:
        self.store = store
        self.issuer = issuer.rstrip("/")
        self.trust_domain = trust_domain
        self.policy = policy or PolicyEngine.default()
        self._clock = clock
        self.token_lifetime = token_lifetime
        self.task_lifetime = task_lifetime
        self.max_depth = max_depth
        self.token_endpoint = token_endpoint or f"{self.issuer}/token"
        self.events_endpoint = events_endpoint or f"{self.issuer}/events"
        self._lock = threading.RLock()
        self._replay = ReplayCache()
        self._presentations = ReplayCache()
        self.registry = self._load_registry()
        self.keys = self._load_keys(signing_key)
        self._trust = TrustList({self.issuer: self.keys.verification_keys(now=self.now())})
        self._revoked_tokens: dict[str, int] = {}
        self._revoked_tasks: dict[str, int] = {}
        self._txns_with_revoked_tokens: set[str] = set()
        # Revoked tokens whose task the log could not name (see ``revoke``): while any stands, every
        # token's lineage is checked, not only the lineages of tasks known to hold a revoked token.
        self._revoked_unscoped: set[str] = set()
        self._load_revocations()

    # ----------------------------------------------------------------------------------------------
    # Clock, keys, persistence.

    def now(self) -> int:
        return int(self._clock())

    @property
    def trust(self) -> TrustList:
        """The trust list a resource server of this domain verifies task tokens with."""
        return self._trust

    def jwks(self) -> JWKS:
        return self.keys.verification_keys(now=self.now())

    def _load_keys(self, signing_key: SigningKey | None) -> KeyRing:
        stored = self.store.get_meta(_META_KEYS)
        if signing_key is not None:
            ring = KeyRing(signing_key, max_token_lifetime=self.token_lifetime)
            self._save_keys(ring)
            return ring
        if stored is not None:
            data = json_loads_strict(stored)
            ring = KeyRing(
                SigningKey.from_private_jwk(data["active"]),
                max_token_lifetime=self.token_lifetime,
            )
            for retired in data.get("retired", []):
                ring.restore_retired(PublicKey.from_jwk(retired["jwk"]), int(retired["until"]))
            return ring
        ring = KeyRing(SigningKey.generate(), max_token_lifetime=self.token_lifetime)
        self._save_keys(ring)
        return ring

    def _save_keys(self, ring: KeyRing) -> None:
        data = {
            "active": ring.active.private_jwk(),
            "retired": [
                {
                    "jwk": {
                        k: v for k, v in key.to_jwk().items() if k not in ("kid", "alg", "use")
                    },
                    "until": until,
                }
                for key, until in ring.retired()
            ],
        }
        self.store.put_meta(_META_KEYS, orjson.dumps(data).decode())

    def rotate_signing_key(self, new_key: SigningKey | None = None) -> str:
        """Rotate with overlap: the new key signs from now on, the old one verifies until every token
        it signed has expired. Returns the new ``kid``."""
        with self._lock:
            self.keys.rotate(new_key or SigningKey.generate(), now=self.now())
            self._save_keys(self.keys)
            self._trust = TrustList({self.issuer: self.keys.verification_keys(now=self.now())})
            return self.keys.active.kid

    def _load_registry(self) -> Registry:
        stored = self.store.get_meta(_META_REGISTRY)
        if stored is None:
            return Registry()
        registry = Registry.from_dict(json_loads_strict(stored))
        self._check_registry(registry)
        return registry

    def _check_registry(self, registry: Registry) -> None:
        """The registry is kept beside the log, not in it; every entry must match the log event
        that recorded it, so a key, scope or issuer edited in the store is refused at startup
        instead of being trusted (one read per entry)."""

        def recorded(what: str, ident: str, kind: str) -> dict[str, Any]:
            index = registry.logged(what, ident)
            event = None
            if index is not None and 0 <= index < self.store.size():
                try:
                    event = self.store.get(index)
                except AuthchainError:
                    event = None
            if event is None or event.kind != kind:
                raise LogIntegrityError(
                    f"the registry's {what} {ident!r} has no {kind} entry in the log "
                    f"(it names index {index})",
                    index,
                )
            return {"actor": event.actor, "initiator": event.initiator, **(event.attrs or {})}

        for w in registry.workloads():
            got = recorded("workload", w.id, "workload.registered")
            if (got.get("actor"), got.get("jkt"), got.get("kind"), got.get("scopes")) != (
                w.id,
                w.key.kid,
                str(w.kind),
                list(w.scopes),
            ):
                raise LogIntegrityError(
                    f"the registry's workload {w.id!r} does not match its registration in the log "
                    f"(index {registry.logged('workload', w.id)})",
                    registry.logged("workload", w.id),
                )
        for p in registry.principals():
            got = recorded("principal", p.id, "principal.registered")
            if (got.get("initiator"), got.get("kind"), got.get("scopes")) != (
                p.id,
                str(p.kind),
                list(p.scopes),
            ):
                raise LogIntegrityError(
                    f"the registry's principal {p.id!r} does not match its registration in the "
                    f"log (index {registry.logged('principal', p.id)})",
                    registry.logged("principal", p.id),
                )
        for issuer, jwks in registry.issuers.items():
            got = recorded("issuer", issuer, "issuer.trusted")
            if (got.get("issuer"), got.get("kids")) != (issuer, sorted(k.kid for k in jwks)):
                raise LogIntegrityError(
                    f"the registry's issuer {issuer!r} does not match its entry in the log "
                    f"(index {registry.logged('issuer', issuer)})",
                    registry.logged("issuer", issuer),
                )

    def _save_registry(self) -> None:
        self.store.put_meta(_META_REGISTRY, orjson.dumps(self.registry.to_dict()).decode())

    def _load_revocations(self) -> None:
        stored = self.store.get_meta(_META_REVOCATIONS)
        if stored is None:
            return
        data = json_loads_strict(stored)
        self._revoked_tokens = {k: int(v) for k, v in data.get("tokens", {}).items()}
        self._revoked_tasks = {k: int(v) for k, v in data.get("tasks", {}).items()}
        self._txns_with_revoked_tokens = set(data.get("token_txns", []))
        self._revoked_unscoped = set(data.get("unscoped", []))
        # Like the registry: each revocation must be the log's own record of it.
        for token_hash, index in self._revoked_tokens.items():
            self._check_logged(index, ("token.revoked",), token=token_hash)
        for txn, index in self._revoked_tasks.items():
            self._check_logged(index, ("task.revoked", "task.ended"), txn=txn)

    def _check_logged(self, index: int, kinds: tuple[str, ...], **expected: str) -> None:
        try:
            event = self.store.get(index) if 0 <= index < self.store.size() else None
        except AuthchainError:
            event = None
        if (
            event is None
            or event.kind not in kinds
            or any(getattr(event, name) != value for name, value in expected.items())
        ):
            raise LogIntegrityError(
                f"the stored revocation of {next(iter(expected.values()))} does not match the log "
                f"entry it names (index {index})",
                index,
            )

    def _save_revocations(self) -> None:
        data = {
            "tokens": self._revoked_tokens,
            "tasks": self._revoked_tasks,
            "token_txns": sorted(self._txns_with_revoked_tokens),
            "unscoped": sorted(self._revoked_unscoped),
        }
        self.store.put_meta(_META_REVOCATIONS, orjson.dumps(data).decode())

    # ----------------------------------------------------------------------------------------------
    # Events.

    def _record(self, kind: str, trace: TraceContext, **fields: Any) -> int:
        # Absent values are omitted from events (never null), inside attrs too.
        attrs = fields.get("attrs")
        if attrs is not None:
            fields["attrs"] = {k: v for k, v in attrs.items() if v is not None} or None
        event = AuditEvent(
            id=uuid7(),
            time=_rfc3339(self._clock()),
            kind=kind,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            trust_domain=self.trust_domain,
            **fields,
        )
        return self.store.append(event)

    def _refuse(
        self,
        exc: AuthchainError,
        kind: str,
        trace: TraceContext,
        **fields: Any,
    ) -> AuthchainError:
        """Record a refusal (denials are evidence) and return the error to raise, carrying the index."""
        attrs = dict(fields.pop("attrs", None) or {})
        attrs["error"] = exc.code
        attrs["reason"] = exc.message[:500]
        fields.setdefault("outcome", "denied")
        exc.log_index = self._record(kind, trace, attrs=attrs, **fields)
        return exc

    def record_refusal(
        self,
        exc: AuthchainError,
        *,
        action: str,
        subject_token: str | None = None,
        audience: str | None = None,
        traceparent: str | None = None,
    ) -> AuthchainError:
        """Record a token request refused before it reached a decision (a malformed request, an
        unsupported grant) and return the error carrying its log index: every refusal is evidence.
        Only what is safe to keep is recorded: the subject token's hash, never the token; the
        audience only if it is a valid SPIFFE ID."""
        fields: dict[str, Any] = {
            "action": action if action in ("start_task", "delegate") else None
        }
        if isinstance(subject_token, str) and subject_token:
            fields["parent_token"] = sha256_b64url(subject_token)
        if isinstance(audience, str):
            try:
                fields["resource"] = str(SpiffeId.parse(audience))
            except AuthchainError:
                pass
        kind = "task.denied" if action == "start_task" else "hop.denied"
        return self._refuse(exc, kind, TraceContext.from_traceparent(traceparent), **fields)

    # ----------------------------------------------------------------------------------------------
    # Registry.

    def register_workload(
        self, spiffe_id: str, *, kind: str, jwk: Mapping[str, Any], scopes: Iterable[str] = ()
    ) -> int:
        """Register (or re-register) a workload's key. A new key is recorded with the old one's
        thumbprint, so an investigator sees exactly when an identity changed keys."""
        record = WorkloadRecord.create(spiffe_id, kind, jwk, scopes)
        with self._lock:
            # Checked, then recorded, then applied: a refused or unrecorded registration changes
            # nothing.
            previous = self.registry.check_workload(record)
            attrs: dict[str, Any] = {
                "kind": str(record.kind),
                "jkt": record.key.kid,
                "jwk": record.key.to_jwk(with_kid=False),
                "scopes": list(record.scopes),
            }
            if previous is not None and previous.key.kid != record.key.kid:
                attrs["previous_jkt"] = previous.key.kid
            index = self._record(
                "workload.registered",
                TraceContext.new(),
                actor=record.id,
                outcome="succeeded",
                attrs=attrs,
            )
            self.registry.put_workload(record)
            self.registry.note_logged("workload", record.id, index)
            self._save_registry()
            return index

    def register_principal(
        self, sub: str, *, kind: str = "user", scopes: Iterable[str] = ()
    ) -> int:
        record = PrincipalRecord.create(sub, kind, scopes)
        with self._lock:
            index = self._record(
                "principal.registered",
                TraceContext.new(),
                initiator=record.id,
                outcome="succeeded",
                attrs={"kind": str(record.kind), "scopes": list(record.scopes)},
            )
            self.registry.put_principal(record)
            self.registry.note_logged("principal", record.id, index)
            self._save_registry()
            return index

    def trust_issuer(self, issuer: str, jwks: JWKS | Mapping[str, Any]) -> int:
        keys = jwks if isinstance(jwks, JWKS) else JWKS.from_dict(jwks)
        if not isinstance(issuer, str) or not issuer.startswith(("https://", "http://")):
            raise InvalidPrincipalError("issuer must be an http(s) URL")
        with self._lock:
            index = self._record(
                "issuer.trusted",
                TraceContext.new(),
                outcome="succeeded",
                resource=issuer,
                attrs={"issuer": issuer, "kids": sorted(k.kid for k in keys)},
            )
            self.registry.put_issuer(issuer, keys)
            self.registry.note_logged("issuer", issuer, index)
            self._save_registry()
            return index

    # ----------------------------------------------------------------------------------------------
    # Policy.

    def _decide(
        self,
        action: str,
        *,
        principal: Party,
        resource: Party,
        txn: str,
        initiator: str,
        requested: tuple[str, ...],
        held: tuple[str, ...],
        chain: tuple[str, ...],
        purpose: str,
        now: int,
        human_approval: bool = False,
    ) -> Decision:
        request = PolicyRequest(
            action=action,  # type: ignore[arg-type]
            principal=principal,
            resource=resource,
            task=txn,
            initiator=initiator,
            requested_scopes=requested,
            held_scopes=held,
            chain=chain,
            depth=len(chain),
            purpose=purpose,
            time=now,
            human_approval=human_approval,
        )
        return self.policy.decide(request)

    @staticmethod
    def _authz(decision: Decision) -> dict[str, Any]:
        return {
            "id": decision.id,
            "policies": list(decision.policies),
            "policy_set_hash": decision.policy_set_hash,
        }

    # ----------------------------------------------------------------------------------------------
    # DPoP at the token endpoint.

    def _requester(
        self, dpop_proof: str | None, *, htm: str, htu: str, now: int, access_token: str | None
    ) -> tuple[DPoPProof, WorkloadRecord]:
        if not dpop_proof:
            raise DPoPError("a DPoP proof is required (RFC 9449 section 5)")
        proof = verify_proof(
            dpop_proof,
            htm=htm,
            htu=htu,
            now=now,
            replay_cache=self._replay,
            access_token=access_token,
        )
        workload = self.registry.workload_by_jkt(proof.thumbprint)
        if workload is None:
            raise DPoPError("the DPoP proof's key is not the registered key of any workload")
        return proof, workload

    # ----------------------------------------------------------------------------------------------
    # Start a task.

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
        """
        now = self.now()
        trace = TraceContext.from_traceparent(traceparent)
        txn = uuid7()
        subject_hash = sha256_b64url(subject_token) if isinstance(subject_token, str) else None
        requested = _split_scope(scope)
        base: dict[str, Any] = {"txn": txn, "action": "start_task", "parent_token": subject_hash}
        try:
            tctx = self._task_context(request_details)
        except AuthchainError as exc:
            raise self._refuse(exc, "task.denied", trace, **base) from None
        try:
            proof, actor = self._requester(
                dpop_proof, htm=htm, htu=htu or self.token_endpoint, now=now, access_token=None
            )
        except AuthchainError as exc:
            raise self._refuse(exc, "task.denied", trace, **base) from None
        base["actor"] = actor.id
        base["chain"] = [actor.id]
        try:
            assertion = verify_id_token(
                subject_token, issuers=self.registry.issuers, audience=self.issuer, now=now
            )
        except AuthchainError as exc:
            raise self._refuse(exc, "task.denied", trace, **base) from None
        base["initiator"] = assertion.subject
        principal = self.registry.find_principal(assertion.subject)
        initiator_kind = str(principal.kind) if principal else "user"
        granted = principal.scopes if principal else ()
        scopes = requested if requested is not None else granted
        base["scope"] = list(scopes)
        decision = self._decide(
            "start_task",
            principal=Party(assertion.subject, initiator_kind, self.trust_domain, granted),  # type: ignore[arg-type]
            resource=Party(txn, "task", self.trust_domain),
            txn=txn,
            initiator=assertion.subject,
            requested=scopes,
            held=granted,
            chain=(actor.id,),
            purpose=str(tctx.get("purpose", "")),
            now=now,
            human_approval=human_approval,
        )
        attrs: dict[str, Any] = {
            "initiator_kind": initiator_kind,
            "human_approval": True if human_approval else None,
            "assertion_issuer": assertion.issuer,
            "purpose": tctx.get("purpose", ""),
        }
        if not decision.allowed:
            denied = PolicyDenied(_denial_message(decision), decision)
            raise self._refuse(
                denied, "task.denied", trace, decision=decision.to_dict(), attrs=attrs, **base
            ) from None
        jti = uuid7()
        claims = first_token_claims(
            issuer=self.issuer,
            audience=self.trust_domain,
            initiator_sub=assertion.subject,
            first_actor=actor.id,
            first_actor_jkt=proof.thumbprint,
            scope=scopes,
            now=now,
            jti=jti,
            txn=txn,
            lifetime=self.token_lifetime,
            tctx=tctx,
            rctx={"req_ip": None, "authn": assertion.issuer, "trace_id": trace.trace_id},
            task_deadline=now + self.task_lifetime,
        )
        attrs.update(
            {"jti": jti, "exp": claims.exp, "depth": 1, "deadline": now + self.task_lifetime}
        )
        # Fail closed: the issuance is durable before the token exists.
        index = self._record(
            "task.started",
            trace,
            decision=decision.to_dict(),
            outcome="allowed",
            attrs=attrs,
            **base,
        )
        return self._sign(claims, decision, index)

    def _task_context(self, details: Mapping[str, Any] | str | None) -> dict[str, Any]:
        if details is None:
            return {"purpose": ""}
        if isinstance(details, str):
            if len(details) > _MAX_REQUEST_DETAILS:
                raise MalformedError(f"request_details is longer than {_MAX_REQUEST_DETAILS} bytes")
            details = json_loads_strict(details, max_len=_MAX_REQUEST_DETAILS)
        if not isinstance(details, Mapping):
            raise MalformedError("request_details must be a JSON object")
        if len(orjson.dumps(dict(details))) > _MAX_REQUEST_DETAILS:
            raise MalformedError(f"request_details is longer than {_MAX_REQUEST_DETAILS} bytes")
        purpose = details.get("purpose", "")
        if not isinstance(purpose, str) or len(purpose) > _MAX_PURPOSE:
            raise MalformedError(f"purpose must be a string of at most {_MAX_PURPOSE} characters")
        return dict(details)

    def _sign(self, claims: TaskTokenClaims, decision: Decision, index: int) -> IssuedToken:
        claims = replace(claims, authz=self._authz(decision), log=index)
        token = mint_task_token(claims, self.keys.active)
        return IssuedToken(token, sha256_b64url(token), claims, decision, index)

    # ----------------------------------------------------------------------------------------------
    # A hop.

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
        """RFC 8693 token exchange of a task token for a narrower one bound to the next actor."""
        now = self.now()
        trace = TraceContext.from_traceparent(traceparent)
        parent_hash = sha256_b64url(subject_token) if isinstance(subject_token, str) else None
        requested = _split_scope(scope)
        base: dict[str, Any] = {
            "action": "delegate",
            "parent_token": parent_hash,
            "resource": audience if isinstance(audience, str) else None,
            "scope": list(requested) if requested else None,
        }
        # 1. The requester: the registered workload whose key signed the DPoP proof (RFC 9449 5).
        try:
            proof, requester = self._requester(
                dpop_proof,
                htm=htm,
                htu=htu or self.token_endpoint,
                now=now,
                access_token=None,
            )
        except AuthchainError as exc:
            raise self._refuse(exc, "hop.denied", trace, **base) from None
        base["actor"] = requester.id
        # 2. The subject token: a task token of this trust domain, signed by this authority.
        try:
            parent = verify_task_token(
                subject_token, trust=self._trust, audience=self.trust_domain, now=now
            )
        except AuthchainError as exc:
            raise self._refuse(exc, "hop.denied", trace, **base) from None
        pc = parent.claims
        base.update(
            {
                "txn": pc.txn,
                "initiator": pc.sub,
                "chain": list(pc.chain),
            }
        )
        attrs: dict[str, Any] = {"parent_jti": pc.jti, "parent_log": pc.log}
        if human_approval:
            # The approval the policy relied on is evidence too (sensitive scopes need it).
            attrs["human_approval"] = True
        try:
            # 3. Only the holder may delegate: the proof's key is the token's cnf.jkt.
            if proof.thumbprint != pc.cnf_jkt:
                raise KeyBindingError(
                    f"the subject token is bound to another key than the one that signed the "
                    f"DPoP proof (presented by {requester.id}, held by {pc.actor})"
                )
            # 4. Revocation of the token, an ancestor, or the task; the task's deadline.
            self._check_revocation(parent)
            # 5. The audience is a registered workload of this or a federated domain.
            target = self.registry.find_workload(audience)
            if target is None:
                raise InvalidTargetError(f"audience {audience!r} is not a registered workload")
            # 6. The rules of a hop.
            child = derive_child_claims(
                parent,
                proof.thumbprint,
                HopRequest(
                    audience=target.id,
                    audience_jkt=target.key.kid,
                    scope=requested,
                    lifetime=lifetime,
                ),
                issuer=self.issuer,
                now=now,
                jti=uuid7(),
                max_depth=self.max_depth,
                # The task deadline needs no lookup: the first token's exp is within it and
                # every child's exp is within its parent's.
                default_lifetime=self.token_lifetime,
            )
        except AuthchainError as exc:
            if isinstance(exc, ScopeEscalationError):
                attrs["held_scope"] = list(pc.scope)
            raise self._refuse(exc, "hop.denied", trace, attrs=attrs, **base) from None
        base["scope"] = list(child.scope)
        base["chain"] = list(child.chain)
        # 7. Policy, at request time.
        decision = self._decide(
            "delegate",
            principal=_party(requester),
            resource=_party(target),
            txn=pc.txn,
            initiator=pc.sub,
            requested=child.scope,
            held=pc.scope,
            chain=child.chain,
            purpose=str(pc.tctx.get("purpose", "")),
            now=now,
            human_approval=human_approval,
        )
        if not decision.allowed:
            denied = PolicyDenied(_denial_message(decision), decision)
            raise self._refuse(
                denied, "hop.denied", trace, decision=decision.to_dict(), attrs=attrs, **base
            ) from None
        attrs.update({"jti": child.jti, "exp": child.exp, "depth": child.depth})
        # 8. Durable record, then 9. sign.
        index = self._record(
            "hop.granted",
            trace,
            decision=decision.to_dict(),
            outcome="allowed",
            attrs=attrs,
            **base,
        )
        return self._sign(child, decision, index)

    # ----------------------------------------------------------------------------------------------
    # Revocation.

    def _check_revocation(self, token: VerifiedTaskToken) -> None:
        claims = token.claims
        if claims.txn in self._revoked_tasks:
            raise RevokedError(
                f"task {claims.txn} was revoked or ended (log index {self._revoked_tasks[claims.txn]})"
            )
        if token.token_hash in self._revoked_tokens:
            raise RevokedError(
                f"this token was revoked (log index {self._revoked_tokens[token.token_hash]})"
            )
        if claims.txn in self._txns_with_revoked_tokens or self._revoked_unscoped:
            for ancestor in self._ancestors(claims):
                if ancestor in self._revoked_tokens:
                    raise RevokedError(
                        "an ancestor of this token was revoked "
                        f"(log index {self._revoked_tokens[ancestor]})"
                    )

    def _ancestors(self, claims: TaskTokenClaims) -> list[str]:
        """Ancestor token hashes by ``prev`` lineage, read from the issuance events in the log."""
        out: list[str] = []
        prev = claims.prev
        log_index = claims.log
        for _ in range(self.max_depth + 1):
            if prev is None:
                break
            out.append(prev)
            if log_index is None:
                break
            event = self.store.get(log_index)
            parent_log = (event.attrs or {}).get("parent_log")
            if not isinstance(parent_log, int):
                break
            parent_event = self.store.get(parent_log)
            prev = parent_event.parent_token if parent_event.kind == "hop.granted" else None
            log_index = parent_log
        return out

    def revoke(
        self,
        *,
        token_hash: str | None = None,
        txn: str | None = None,
        reason: str = "",
        by: str = "admin",
    ) -> int:
        """Revoke one token (and so every descendant) by its hash, or a whole task. Recorded."""
        if (token_hash is None) == (txn is None):
            raise MalformedError("revoke exactly one of a token hash or a task id")
        if len(reason) > _MAX_PURPOSE:
            raise MalformedError(f"reason is longer than {_MAX_PURPOSE} characters")
        with self._lock:
            if token_hash is not None:
                issued = self.store.find_by_token(token_hash)
                event_txn = issued[0][1].txn if issued else None
                index = self._record(
                    "token.revoked",
                    TraceContext.new(),
                    txn=event_txn,
                    token=token_hash,
                    actor=by,
                    outcome="succeeded",
                    attrs={"reason": reason},
                )
                self._revoked_tokens[token_hash] = index
                if event_txn:
                    self._txns_with_revoked_tokens.add(event_txn)
                else:
                    # A token never presented names no event by its hash: its issuance entry is
                    # written before it is signed, so it carries the jti, not the hash. Its task
                    # is unknown, yet its descendants must still be refused.
                    self._revoked_unscoped.add(token_hash)
            else:
                assert txn is not None
                index = self._record(
                    "task.revoked",
                    TraceContext.new(),
                    txn=txn,
                    actor=by,
                    outcome="succeeded",
                    attrs={"reason": reason},
                )
                self._revoked_tasks[txn] = index
            self._save_revocations()
            return index

    def end_task(self, txn: str, *, by: str = "admin") -> int:
        """End a task: late work under any of its tokens is refused and the refusal recorded."""
        with self._lock:
            index = self._record(
                "task.ended", TraceContext.new(), txn=txn, actor=by, outcome="succeeded"
            )
            self._revoked_tasks[txn] = index
            self._save_revocations()
            return index

    # ----------------------------------------------------------------------------------------------
    # Actions reported by resource servers.

    def record_action(
        self,
        *,
        executor: str,
        action: str,
        resource: str,
        token: str | None = None,
        proof: str | None = None,
        htm: str = "POST",
        htu: str | None = None,
        outcome: str = "succeeded",
        presenter: str | None = None,
        claimed_initiator: str | None = None,
        refusal: str | None = None,
        performed_at: int | None = None,
        traceparent: str | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an action a resource server performed (or refused) for a presented token.

        ``executor`` is the service itself (the caller must have authenticated it, e.g. the
        ``/events`` endpoint by its own DPoP proof). The presented token and proof are verified
        again here, at the time the action was performed, so a report cannot claim authority that
        the token did not carry; a proof ``jti`` reported twice is a replay. An action without a
        verifiable token is still recorded, as unattributed.
        """
        now = self.now()
        at = now if performed_at is None else performed_at
        if at > now + 60 or at < now - 7 * 24 * 3600:
            raise MalformedError("performed_at is outside the accepted window")
        trace = TraceContext.from_traceparent(traceparent)
        executor_record = self.registry.find_workload(executor)
        extra: dict[str, Any] = dict(attrs or {})
        if len(extra) > 16:
            raise MalformedError("at most 16 extra attributes may be reported")
        extra["executor"] = executor
        extra["executor_kind"] = str(executor_record.kind) if executor_record else "unknown"
        if htu:
            extra["htu"] = htu
        fields: dict[str, Any] = {"action": action, "resource": resource}
        if token is None:
            extra["unattributed"] = True
            if claimed_initiator:
                extra["claimed_initiator"] = claimed_initiator
            return self._record(
                "action.invoked",
                trace,
                actor=presenter or "unknown",
                outcome=outcome,
                attrs=extra,
                **fields,
            )
        token_hash = sha256_b64url(token)
        fields["token"] = token_hash
        try:
            presented = verify_presentation(
                token,
                proof or "",
                htm=htm,
                htu=htu or "",
                trust=self._trust,
                audience=self.trust_domain,
                now=at,
                replay_cache=None,
            )
        except AuthchainError as exc:
            return self._record_unverified_presentation(
                exc, token, trace, fields, extra, presenter, refusal, outcome
            )
        claims = presented.claims
        fields.update(
            {
                "txn": claims.txn,
                "initiator": claims.sub,
                "actor": claims.actor,
                "chain": list(claims.chain),
                "scope": list(claims.scope),
                "parent_token": claims.prev,
            }
        )
        extra.update(
            {
                "jti": claims.jti,
                "log": claims.log,
                "proof_jti": presented.proof.jti,
                "decision_id": (claims.authz or {}).get("id"),
            }
        )
        kind = "action.invoked"
        try:
            # A proof is single-use across every service of the domain: the same proof reported
            # twice (by one service or two) is a replay.
            self._presentations.check_and_store(
                f"{presented.proof.thumbprint}:{presented.proof.jti}", at + 300, now
            )
            self._check_revocation(presented.token)
            if refusal is not None:
                extra["error"] = refusal
                kind = "action.refused"
                outcome = "refused"
        except AuthchainError as exc:
            extra["error"] = exc.code
            extra["reason"] = exc.message[:500]
            kind = "action.refused" if outcome == "refused" or refusal else "action.invoked"
            if kind == "action.invoked":
                extra["unattributed"] = True
        return self._record(kind, trace, outcome=outcome, attrs=extra, **fields)

    def _record_unverified_presentation(
        self,
        exc: AuthchainError,
        token: str,
        trace: TraceContext,
        fields: dict[str, Any],
        extra: dict[str, Any],
        presenter: str | None,
        refusal: str | None,
        outcome: str,
    ) -> int:
        extra["error"] = refusal or exc.code
        extra["reason"] = exc.message[:500]
        # The token's signature may still verify though the presentation does not (another key
        # presented it: a replay). Then its claims are authentic and name the task and its holder.
        try:
            verified = verify_task_token(
                token, trust=self._trust, audience=self.trust_domain, now=self.now()
            )
        except AuthchainError:
            verified = None
        if verified is not None:
            c = verified.claims
            fields.update(
                {"txn": c.txn, "initiator": c.sub, "chain": list(c.chain), "scope": list(c.scope)}
            )
            extra["holder"] = c.actor
            extra["jti"] = c.jti
            extra["log"] = c.log
        fields["actor"] = presenter or "unknown"
        if refusal is not None or outcome == "refused":
            return self._record("action.refused", trace, outcome="refused", attrs=extra, **fields)
        extra["unattributed"] = True
        return self._record("action.invoked", trace, outcome=outcome, attrs=extra, **fields)


def _party(record: WorkloadRecord) -> Party:
    return Party(record.id, str(record.kind), record.trust_domain, record.scopes)  # type: ignore[arg-type]


def _denial_message(decision: Decision) -> str:
    if decision.errors:
        return "denied: policy evaluation failed (" + "; ".join(decision.errors)[:300] + ")"
    if decision.reasons:
        return "denied by policy: " + "; ".join(decision.reasons)[:300]
    return "denied by policy"
