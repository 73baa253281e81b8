"""Action reports: what a resource server performed (or refused) for a presented task token.

The reporting service is the ``executor``, authenticated by its own key before this is called. The
presented token and proof are verified again here, as of the time the action was performed, so a
report cannot claim authority the token did not carry; a proof reported twice is a replay. Only what
that verification proves becomes the record's evidence; everything the reporter says about the
action (the presenter it names, the initiator it claims, its own refusal code, its attributes) is
kept in the record's ``reported`` member, which nothing reads as evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from authchain._encoding import sha256_b64url
from authchain.audit.records import ActionInvoked, ActionRefused
from authchain.authority.keys import Signer
from authchain.authority.recorder import MAX_REASON, Recorder
from authchain.authority.revocation import Revocations
from authchain.errors import AuthchainError, Input, KeyBindingError, MalformedError
from authchain.identity.registry import Registry
from authchain.tokens.dpop import verify_proof
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import verify_task_token
from authchain.tracecontext import TraceContext

__all__ = ["ActionReports"]

#: How far ahead of the authority's clock a report's ``performed_at`` may be, and how far behind.
MAX_AHEAD: Final = 60
MAX_BEHIND: Final = 7 * 24 * 3600
MAX_REPORTED_ATTRS: Final = 16
#: How long a presented proof's jti is remembered (the proof acceptance window).
_PRESENTATION_WINDOW: Final = 300


class ActionReports:
    """Records actions reported by the services of one trust domain."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        signer: Signer,
        revocations: Revocations,
        registry: Callable[[], Registry],
        clock: Callable[[], int],
        trust_domain: str,
    ) -> None:
        self._recorder = recorder
        self._signer = signer
        self._revocations = revocations
        self._registry = registry
        self._now = clock
        self._trust_domain = trust_domain
        # A proof is single-use across every service of the domain: the same presentation reported
        # twice (by one service or two) is a replay.
        self._presentations = ReplayCache()

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
        report_id: str | None = None,
        performed_at: int | None = None,
        traceparent: str | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an action and return its log index. An action without a verifiable token is still
        recorded, as unattributed; raises :class:`MalformedError` for a report out of bounds."""
        now = self._now()
        at = now if performed_at is None else performed_at
        if at > now + MAX_AHEAD or at < now - MAX_BEHIND:
            raise MalformedError("performed_at is outside the accepted window").about(Input.REQUEST)
        if attrs is not None and len(attrs) > MAX_REPORTED_ATTRS:
            raise MalformedError(
                f"at most {MAX_REPORTED_ATTRS} extra attributes may be reported"
            ).about(Input.REQUEST)
        trace = TraceContext.from_traceparent(traceparent)
        executor_record = self._registry().find_workload(executor)
        fields: dict[str, Any] = {
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "executor": executor,
            "executor_kind": str(executor_record.kind) if executor_record else "unknown",
            "htu": htu or None,
        }
        reported = {
            k: v
            for k, v in {
                "presenter": presenter,
                "claimed_initiator": claimed_initiator,
                "refusal": refusal,
                "report_id": report_id,
                "attrs": dict(attrs) if attrs else None,
            }.items()
            if v is not None
        }
        fields["reported"] = reported or None
        if token is None:
            return self._recorder.record(ActionInvoked(unattributed=True, **fields), trace)
        fields["token"] = sha256_b64url(token)
        # The presentation is verified in its two steps here rather than with
        # verify_presentation, because what held before a step failed is evidence (a replayed
        # token's claims, the key that presented it), and nothing is verified twice to recover it.
        # 1. The token, as of the time of the action.
        try:
            verified = verify_task_token(
                token, trust=self._signer.trust, audience=self._trust_domain, now=at
            )
        except AuthchainError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON])
            return self._refused_or_unattributed(fields, refusal, trace)
        claims = verified.claims
        fields.update(
            txn=claims.txn,
            initiator=claims.sub,
            chain=tuple(claims.chain),
            scope=tuple(claims.scope),
            jti=claims.jti,
            log=claims.log,
        )
        # 2. The proof, for this request and this token, by the token's holder.
        try:
            dpop = verify_proof(
                proof or "",
                htm=htm,
                htu=htu or "",
                now=at,
                replay_cache=None,
                access_token=token,
                expected_jkt=claims.cnf_jkt,
            )
        except AuthchainError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON], holder=claims.actor)
            # Another registered workload's verified proof names who presented the token.
            jkt = exc.presenter_jkt if isinstance(exc, KeyBindingError) else None
            signer = self._registry().workload_by_jkt(jkt) if jkt else None
            if signer is not None:
                fields["actor"] = signer.id
            return self._refused_or_unattributed(fields, refusal, trace)
        fields.update(
            actor=claims.actor,
            parent_token=claims.prev,
            proof_jti=dpop.jti,
            decision_id=(claims.authz or {}).get("id"),
        )
        # 3. Single use across every service of the domain, and revocation.
        try:
            self._presentations.check_and_store(
                f"{dpop.thumbprint}:{dpop.jti}", at + _PRESENTATION_WINDOW, now
            )
            self._revocations.check(verified)
        except AuthchainError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON])
            return self._refused_or_unattributed(fields, refusal, trace)
        if refusal is not None:
            fields["outcome"] = "refused"
            return self._recorder.record(ActionRefused(**fields), trace)
        return self._recorder.record(ActionInvoked(**fields), trace)

    def _refused_or_unattributed(
        self, fields: dict[str, Any], refusal: str | None, trace: TraceContext
    ) -> int:
        if refusal is not None or fields["outcome"] == "refused":
            fields["outcome"] = "refused"
            return self._recorder.record(ActionRefused(**fields), trace)
        return self._recorder.record(ActionInvoked(unattributed=True, **fields), trace)
