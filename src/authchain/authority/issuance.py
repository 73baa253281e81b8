"""Issuance: starting a task and delegating a hop (RFC 8693 token exchange).

Each request is verified step by step, every step naming the input it judges when it refuses
(:class:`authchain.errors.Input`); then the rules of a hop apply, policy decides at request time,
the decision is recorded durably, and only then is the token signed. Every refusal is recorded too,
with its machine code and the input that failed: denials are evidence. What a refused request said
that the log cannot hold as it is (a control character, an audience of three thousand characters)
is kept escaped, cut and hashed in the refusal's ``reported`` member (:mod:`._untrusted`).

The receiving workload's registered scopes are a ceiling on every token (:func:`receiver_scope`):
the first actor's at a task start, the next actor's in a hop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from authchain._encoding import json_loads_strict, sha256_b64url
from authchain._ids import uuid7
from authchain.audit.records import HopDenied, HopGranted, TaskDenied, TaskStarted
from authchain.audit.store import Claim
from authchain.authority._untrusted import kept, loggable, recordable
from authchain.authority.keys import Signer
from authchain.authority.recorder import ID_TOKEN, Recorder, refusal_fields
from authchain.authority.requester import Authenticator
from authchain.authority.revocation import Revocations
from authchain.errors import (
    AuthchainError,
    ChainCycleError,
    ClaimError,
    ConfigurationError,
    DPoPNonceError,
    Input,
    InvalidSpiffeIdError,
    InvalidTargetError,
    KeyBindingError,
    MalformedError,
    PolicyDenied,
    ScopeEscalationError,
)
from authchain.identity.registry import Registry, WorkloadRecord
from authchain.identity.spiffe import SpiffeId
from authchain.policy import Decision, Party, PolicyEngine, PolicyRequest
from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.hop import (
    HopRequest,
    derive_child_claims,
    first_token_claims,
    receiver_scope,
)
from authchain.tokens.id_token import DEFAULT_ID_TOKEN_MAX_AGE, verify_id_token
from authchain.tokens.task_token import TXN_TOKEN_TYPE_URN, verify_task_token
from authchain.tracecontext import TraceContext

__all__ = ["IssuedToken", "Issuance"]

MAX_PURPOSE: Final = 512
MAX_REQUEST_DETAILS: Final = 4096
MAX_SCOPE_TOKENS: Final = 64
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), at most 128 here.
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")


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


def split_scope(scope: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """A requested scope as distinct tokens in the order given; None when nothing was asked.

    Raises MalformedError (about the scope) unless every token is an RFC 6749 section 3.3
    scope-token within the limits a task token accepts, so a refusal can always be recorded.
    """
    if scope is None:
        return None
    parts = scope.split(" ") if isinstance(scope, str) else list(scope)
    parts = [p for p in parts if p != ""]
    if len(parts) > MAX_SCOPE_TOKENS or not all(
        isinstance(p, str) and _SCOPE_TOKEN.fullmatch(p) for p in parts
    ):
        raise MalformedError(
            f"scope must be at most {MAX_SCOPE_TOKENS} space-separated RFC 6749 scope tokens of "
            "1 to 128 visible ASCII characters, without a double quote or backslash"
        ).about(Input.SCOPE)
    return tuple(dict.fromkeys(parts)) if parts else None


def task_context(details: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """``request_details`` as the task context (``tctx``); raises MalformedError when unusable."""
    if details is None:
        return {"purpose": ""}
    if isinstance(details, str):
        if len(details) > MAX_REQUEST_DETAILS:
            raise MalformedError(f"request_details is longer than {MAX_REQUEST_DETAILS} bytes")
        details = json_loads_strict(details, max_len=MAX_REQUEST_DETAILS)
    if not isinstance(details, Mapping):
        raise MalformedError("request_details must be a JSON object")
    try:
        encoded = orjson.dumps(dict(details))
    except (TypeError, orjson.JSONEncodeError) as exc:
        # A library caller's dict may hold what JSON cannot carry (an integer beyond 64 bits).
        raise MalformedError("request_details is not a JSON object of JSON values") from exc
    if len(encoded) > MAX_REQUEST_DETAILS:
        raise MalformedError(f"request_details is longer than {MAX_REQUEST_DETAILS} bytes")
    purpose = details.get("purpose", "")
    if not isinstance(purpose, str) or len(purpose) > MAX_PURPOSE:
        raise MalformedError(f"purpose must be a string of at most {MAX_PURPOSE} characters")
    if not loggable(TaskDenied, purpose=purpose):
        # The purpose is recorded with the task; a raw token or a lone surrogate in it would make
        # the record (and so the task) impossible, so it is refused here, where it can be recorded.
        raise MalformedError("purpose holds text the audit log cannot record")
    return dict(details)


def _party(record: WorkloadRecord) -> Party:
    return Party(record.id, str(record.kind), record.trust_domain, record.scopes)  # type: ignore[arg-type]


def _denial(decision: Decision) -> PolicyDenied:
    if decision.errors:
        message = "denied: policy evaluation failed (" + "; ".join(decision.errors)[:300] + ")"
    elif decision.reasons:
        message = "denied by policy: " + "; ".join(decision.reasons)[:300]
    else:
        message = "denied by policy"
    return PolicyDenied(message, decision).about(Input.POLICY)


class Issuance:
    """Task starts and hops for one issuer. Thread-safe: the store group-commits the records."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        signer: Signer,
        authenticator: Authenticator,
        revocations: Revocations,
        registry: Callable[[], Registry],
        policy: Callable[[], PolicyEngine],
        clock: Callable[[], int],
        issuer: str,
        trust_domain: str,
        token_endpoint: str,
        token_lifetime: int,
        task_lifetime: int,
        max_depth: int,
        id_token_max_age: int = DEFAULT_ID_TOKEN_MAX_AGE,
    ) -> None:
        if type(id_token_max_age) is not int or not 0 < id_token_max_age <= 24 * 3600:
            raise ConfigurationError("id_token_max_age must be 1 to 86400 seconds")
        self._recorder = recorder
        self._signer = signer
        self._auth = authenticator
        self._revocations = revocations
        self._registry = registry
        self._policy = policy
        self._now = clock
        self.issuer = issuer
        self.trust_domain = trust_domain
        self.token_endpoint = token_endpoint
        self.token_lifetime = token_lifetime
        self.task_lifetime = task_lifetime
        self.max_depth = max_depth
        self.id_token_max_age = id_token_max_age

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
        now = self._now()
        trace = TraceContext.from_traceparent(traceparent)
        txn = uuid7()
        denied: dict[str, Any] = {
            "txn": txn,
            "parent_token": sha256_b64url(subject_token)
            if isinstance(subject_token, str)
            else None,
            "human_approval": True if human_approval else None,
        }

        def refuse(exc: AuthchainError, **more: Any) -> AuthchainError:
            record = recordable(TaskDenied, {**denied, **more, **refusal_fields(exc)})
            return self._recorder.refuse(exc, record, trace)

        # 1. request_details becomes the immutable task context; the scope asked for is well formed.
        try:
            tctx = task_context(request_details)
        except AuthchainError as exc:
            raise refuse(exc.about(Input.REQUEST_DETAILS)) from None
        try:
            requested = split_scope(scope)
        except AuthchainError as exc:
            raise refuse(exc, reported=_scope_kept(scope)) from None
        # 2. The first actor: the registered workload whose key signed the DPoP proof.
        actor = self._requester(dpop_proof, htm, htu, now, refuse)
        proof, workload = actor
        denied.update(actor=workload.id, chain=(workload.id,))
        # 3. The initiator's assertion: an ID token of a trusted issuer, for this authority, recent.
        try:
            assertion = verify_id_token(
                subject_token,
                issuers=self._registry().issuers,
                audience=self.issuer,
                now=now,
                max_age=self.id_token_max_age,
            )
            # One task per ID token: the task.started record spends it (a refusal does not), and
            # it stays spent while verify_id_token would accept it (its exp plus 60 s of skew).
            self._recorder.expect(
                Claim(ID_TOKEN, assertion.token_hash, assertion.expires_at + 60),
                spent_by=TaskStarted,
            )
        except AuthchainError as exc:
            raise refuse(exc.about(Input.SUBJECT_TOKEN)) from None
        principal = self._registry().find_principal(assertion.subject)
        initiator_kind = str(principal.kind) if principal else "user"
        granted = principal.scopes if principal else ()
        purpose = str(tctx.get("purpose", ""))
        denied.update(
            initiator=assertion.subject,
            scope=requested,
            initiator_kind=initiator_kind,
            assertion_issuer=assertion.issuer,
            purpose=purpose,
        )
        # 4. The first actor receives the token, so its registration is the ceiling: nothing named
        #    narrows the granted scopes to what it may hold; a scope beyond that is refused.
        try:
            scopes = receiver_scope(
                requested, available=granted, registered=workload.scopes, receiver=workload.id
            )
        except AuthchainError as exc:
            raise refuse(exc.about(Input.SCOPE), allowed_scope=workload.scopes) from None
        denied["scope"] = scopes
        # 5. Policy, at request time.
        decision = self._policy().decide(
            PolicyRequest(
                action="start_task",
                principal=Party(assertion.subject, initiator_kind, self.trust_domain, granted),  # type: ignore[arg-type]
                resource=Party(txn, "task", self.trust_domain),
                task=txn,
                initiator=assertion.subject,
                requested_scopes=scopes,
                held_scopes=granted,
                chain=(workload.id,),
                depth=1,
                purpose=purpose,
                time=now,
                human_approval=human_approval,
            )
        )
        if not decision.allowed:
            raise refuse(_denial(decision), decision=decision.to_dict()) from None
        deadline = now + self.task_lifetime
        claims = first_token_claims(
            issuer=self.issuer,
            audience=self.trust_domain,
            initiator_sub=assertion.subject,
            first_actor=workload.id,
            first_actor_jkt=proof.thumbprint,
            scope=scopes,
            now=now,
            jti=uuid7(),
            txn=txn,
            lifetime=self.token_lifetime,
            tctx=tctx,
            rctx={"req_ip": None, "authn": assertion.issuer, "trace_id": trace.trace_id},
            task_deadline=deadline,
        )
        # 6. Fail closed: the issuance is durable before the token exists; 7. sign.
        index = self._recorder.record(
            TaskStarted(
                txn=txn,
                initiator=assertion.subject,
                actor=workload.id,
                chain=(workload.id,),
                scope=tuple(scopes),
                decision=decision.to_dict(),
                parent_token=denied["parent_token"],
                jti=claims.jti,
                exp=claims.exp,
                depth=1,
                deadline=deadline,
                initiator_kind=initiator_kind,
                assertion_issuer=assertion.issuer,
                purpose=purpose,
                human_approval=denied["human_approval"],
            ),
            trace,
        )
        return self._issue(claims, decision, index)

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
        now = self._now()
        trace = TraceContext.from_traceparent(traceparent)
        denied: dict[str, Any] = {
            "parent_token": sha256_b64url(subject_token)
            if isinstance(subject_token, str)
            else None,
            "resource": audience if isinstance(audience, str) else None,
            "human_approval": True if human_approval else None,
        }

        def refuse(exc: AuthchainError, **more: Any) -> AuthchainError:
            record = recordable(HopDenied, {**denied, **more, **refusal_fields(exc)})
            return self._recorder.refuse(exc, record, trace)

        try:
            requested = split_scope(scope)
        except AuthchainError as exc:
            raise refuse(exc, reported=_scope_kept(scope)) from None
        denied["scope"] = requested
        # 1. The requester: the registered workload whose key signed the DPoP proof (RFC 9449 5).
        proof, requester = self._requester(dpop_proof, htm, htu, now, refuse)
        denied["actor"] = requester.id
        # 2. The subject token: a task token of this trust domain, signed by this authority.
        try:
            parent = verify_task_token(
                subject_token, trust=self._signer.trust, audience=self.trust_domain, now=now
            )
        except AuthchainError as exc:
            raise refuse(exc.about(Input.SUBJECT_TOKEN)) from None
        pc = parent.claims
        if pc.log is None:
            missing = ClaimError("the subject token names no issuance entry (log)")
            raise refuse(missing.about(Input.SUBJECT_TOKEN)) from None
        parent_log: int = pc.log
        denied.update(
            txn=pc.txn,
            initiator=pc.sub,
            chain=tuple(pc.chain),
            parent_jti=pc.jti,
            parent_log=pc.log,
        )
        # Revocation is held off from the check (4) to the durable record (8): a revocation of the
        # parent or its task lands either before the check, which then refuses, or after the record.
        with self._revocations.issuing():
            target: WorkloadRecord | None = None
            try:
                # 3. Only the holder may delegate: the proof's key is the token's cnf.jkt.
                if proof.thumbprint != pc.cnf_jkt:
                    raise KeyBindingError(
                        f"the subject token is bound to another key than the one that signed the "
                        f"DPoP proof (presented by {requester.id}, held by {pc.actor})"
                    ).about(Input.SUBJECT_TOKEN)
                # 4. Revocation of the token, an ancestor, or the task; the holder's key replaced.
                try:
                    self._revocations.check(parent)
                except AuthchainError as exc:
                    raise exc.about(Input.SUBJECT_TOKEN) from None
                # 5. The audience is a registered workload, whose registration is the ceiling of
                #    what it receives: nothing named narrows the parent's scope to what it may hold.
                target = self._registry().find_workload(audience)
                if target is None:
                    raise InvalidTargetError(
                        f"audience {audience!r} is not a registered workload"
                    ).about(Input.AUDIENCE)
                try:
                    narrowed = receiver_scope(
                        requested, available=pc.scope, registered=target.scopes, receiver=target.id
                    )
                except AuthchainError as exc:
                    raise exc.about(Input.SCOPE) from None
                # 6. The rules of a hop. The task deadline needs no lookup: the first token's exp
                # is within it and every child's exp is within its parent's.
                try:
                    child = derive_child_claims(
                        parent,
                        proof.thumbprint,
                        HopRequest(
                            audience=target.id,
                            audience_jkt=target.key.kid,
                            scope=narrowed,
                            lifetime=lifetime,
                        ),
                        issuer=self.issuer,
                        now=now,
                        jti=uuid7(),
                        max_depth=self.max_depth,
                        default_lifetime=self.token_lifetime,
                    )
                except (ChainCycleError, InvalidSpiffeIdError) as exc:
                    raise exc.about(Input.AUDIENCE) from None
                except AuthchainError as exc:
                    raise exc.about(Input.SCOPE) from None
            except AuthchainError as exc:
                escalation = isinstance(exc, ScopeEscalationError)
                raise refuse(
                    exc,
                    held_scope=tuple(pc.scope) if escalation else None,
                    allowed_scope=target.scopes if escalation and target else None,
                ) from None
            denied.update(scope=tuple(child.scope), chain=tuple(child.chain))
            # 7. Policy, at request time.
            decision = self._policy().decide(
                PolicyRequest(
                    action="delegate",
                    principal=_party(requester),
                    resource=_party(target),
                    task=pc.txn,
                    initiator=pc.sub,
                    requested_scopes=child.scope,
                    held_scopes=pc.scope,
                    chain=child.chain,
                    depth=len(child.chain),
                    purpose=str(pc.tctx.get("purpose", "")),
                    time=now,
                    human_approval=human_approval,
                )
            )
            if not decision.allowed:
                raise refuse(_denial(decision), decision=decision.to_dict()) from None
            # 8. Durable record, then 9. sign.
            index = self._recorder.record(
                HopGranted(
                    txn=pc.txn,
                    initiator=pc.sub,
                    actor=requester.id,
                    chain=tuple(child.chain),
                    scope=tuple(child.scope),
                    decision=decision.to_dict(),
                    parent_token=parent.token_hash,
                    resource=target.id,
                    jti=child.jti,
                    exp=child.exp,
                    depth=child.depth,
                    parent_jti=pc.jti,
                    parent_log=parent_log,
                    human_approval=denied["human_approval"],
                ),
                trace,
            )
        return self._issue(child, decision, index)

    # ----------------------------------------------------------------------------------------------
    # Refusals before a decision.

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
        audience as the record's resource only if it is a valid SPIFFE ID, otherwise escaped, cut and
        hashed in ``reported``."""
        fields: dict[str, Any] = refusal_fields(exc)
        if isinstance(subject_token, str) and subject_token:
            fields["parent_token"] = sha256_b64url(subject_token)
        if isinstance(audience, str):
            try:
                fields["resource"] = str(SpiffeId.parse(audience))
            except AuthchainError:
                fields["reported"] = {"audience": kept(audience)}
        trace = TraceContext.from_traceparent(traceparent)
        record: TaskDenied | HopDenied
        if action == "start_task":
            record = recordable(TaskDenied, fields)
        else:
            record = recordable(
                HopDenied, {**fields, "action": "delegate" if action == "delegate" else None}
            )
        return self._recorder.refuse(exc, record, trace)

    # ----------------------------------------------------------------------------------------------

    def _requester(
        self,
        dpop_proof: str | None,
        htm: str,
        htu: str | None,
        now: int,
        refuse: Callable[[AuthchainError], AuthchainError],
    ) -> tuple[Any, WorkloadRecord]:
        try:
            return self._auth.authenticate(
                dpop_proof, htm=htm, htu=htu or self.token_endpoint, now=now
            )
        except DPoPNonceError:
            # RFC 9449 section 8: asking for a fresh nonce is a protocol round trip, not a
            # decision about authority, so it is not an audit event.
            raise
        except AuthchainError as exc:
            raise refuse(exc) from None

    def _issue(self, claims: TaskTokenClaims, decision: Decision, index: int) -> IssuedToken:
        token, token_hash, signed = self._signer.sign(claims, decision, index)
        return IssuedToken(token, token_hash, signed, decision, index)


def _scope_kept(scope: object) -> dict[str, Any] | None:
    """A malformed scope as its refusal keeps it (escaped, cut, hashed), when it was one string."""
    return {"scope": kept(scope)} if isinstance(scope, str) else None
