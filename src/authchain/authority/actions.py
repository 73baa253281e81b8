"""Action reports: what a resource server performed (or refused) for a presented task token.

The reporting service is the ``executor``, authenticated by its own key before this is called. A
report becomes evidence only when every step below holds; otherwise it is recorded as that
reporter's claim (``unattributed``, or a refusal without verified parties), and nothing the reporter
supplied is read as evidence. Step by step:

1. The presentation was made to the reporter: the URL the presenter's proof names (``htu``) falls
   under one of the reporter's registered endpoints. A service that registered none cannot report
   attributed actions, and a third workload cannot report (nor spend) another service's
   presentations.
2. The presented token verifies as of the time of the action, so ``performed_at`` lies within the
   token's validity (``iat`` to ``exp``) give or take :data:`SKEW` seconds.
3. The presenter's DPoP proof verifies for that request and that token, by the token's holder.
4. Neither the token, an ancestor nor its task was revoked.
5. The presentation is spent once, domain-wide, for as long as a report of it could be accepted:
   its claim is written in the action's own transaction (the audit log's single-use ledger), so a
   replay is recorded as one after a restart and across processes.

Only what those steps verified becomes the record's typed members; the walk keys (``log``,
``jti``, the parent token) come from the verified token alone. What the reporter says about the
action (the presenter it names, the initiator it claims, its refusal code, the scope it says the
call required, its attributes) is kept in the record's ``reported`` member.

A server-side failure (the store, the ledger) is never recorded as evidence against anyone: it
propagates (HTTP 503) so the reporter's outbox retries. Unverified reports are budgeted per
reporter (HTTP 429 beyond the budget), so junk cannot fill the log; the refusals are counted on
the reporter's next recorded claim (``rate_limited``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from authchain import jcs
from authchain._encoding import sha256_b64url
from authchain.audit.records import ActionInvoked, ActionRefused
from authchain.audit.store import Claim
from authchain.authority.keys import Signer
from authchain.authority.recorder import MAX_REASON, PRESENTATION, REPORT, Recorder
from authchain.authority.revocation import Revocations
from authchain.errors import (
    AuthchainError,
    DPoPURLError,
    DuplicateEventError,
    Input,
    KeyBindingError,
    MalformedError,
    RateLimitedError,
    ReplayError,
    VerificationError,
)
from authchain.identity.registry import Registry, WorkloadRecord
from authchain.tokens.dpop import verify_proof
from authchain.tokens.htu import normalize_htu
from authchain.tokens.task_token import verify_task_token
from authchain.tracecontext import TraceContext

__all__ = ["ActionReports"]

#: How far ahead of the authority's clock a report's ``performed_at`` may be: the clock skew between
#: a service and the authority that never turns honest work into false evidence.
MAX_AHEAD: Final = 60
#: How late a report may arrive (an outbox retries through an outage of the authority up to this).
#: Presentations and report ids are remembered this long past the last moment they were valid.
MAX_BEHIND: Final = 24 * 3600
#: The skew allowed around a presented token's validity (``iat`` .. ``exp``) at ``performed_at``.
SKEW: Final = 60
MAX_REPORTED_ATTRS: Final = 16
#: The largest number of refusals one summary report may say it stands for.
MAX_COUNT: Final = 1_000_000_000
#: Unverified reports a reporter may have recorded in a burst, and per second after it.
CLAIM_BURST: Final = 60
CLAIM_RATE: Final = 2.0


class _Budget:
    """A token bucket per reporter for reports the authority cannot verify. Bounded: reporters are
    authenticated workloads, and the table is reset if the registry ever outgrows it."""

    _MAX_REPORTERS: Final = 100_000

    def __init__(self, burst: int, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._buckets: dict[str, tuple[float, int, int]] = {}  # tokens, at, refused since
        self._lock = threading.Lock()

    def take(self, reporter: str, now: int) -> int:
        """Take one unit; return how many were refused since the last one taken. Raises
        :class:`RateLimitedError` when the reporter's budget is spent."""
        with self._lock:
            tokens, at, refused = self._buckets.get(reporter, (float(self.burst), now, 0))
            tokens = min(float(self.burst), tokens + max(0, now - at) * self.rate)
            if tokens < 1:
                self._buckets[reporter] = (tokens, now, refused + 1)
                wait = max(1, int((1 - tokens) / self.rate + 0.999)) if self.rate > 0 else 60
                raise RateLimitedError(
                    f"{reporter} sent more unverified action reports than its budget "
                    f"({self.burst}, then {self.rate:g} per second); retry later",
                    retry_after=wait,
                ).about(Input.REQUEST)
            if len(self._buckets) >= self._MAX_REPORTERS and reporter not in self._buckets:
                self._buckets.clear()
            self._buckets[reporter] = (tokens - 1, now, 0)
            return refused


def _serves(workload: WorkloadRecord, htu: str) -> bool:
    """Whether ``htu`` falls under one of the URL prefixes the workload registered as its endpoints
    (:meth:`WorkloadRecord.serves` where the registry provides it). No endpoints, no URL served."""
    serves = getattr(workload, "serves", None)
    if callable(serves):
        return bool(serves(htu))
    try:
        target = normalize_htu(htu)
    except AuthchainError:
        return False
    for endpoint in getattr(workload, "endpoints", ()):
        try:
            base = normalize_htu(endpoint).rstrip("/")
        except AuthchainError:
            continue
        # A prefix ends at a path segment: https://crm.example.org/api serves /api/x, not /apix.
        if target == base or target.startswith(base + "/"):
            return True
    return False


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
        claim_burst: int = CLAIM_BURST,
        claim_rate: float = CLAIM_RATE,
    ) -> None:
        self._recorder = recorder
        self._signer = signer
        self._revocations = revocations
        self._registry = registry
        self._now = clock
        self._trust_domain = trust_domain
        self._budget = _Budget(claim_burst, claim_rate)

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
        required_scope: str | None = None,
        count: int | None = None,
        report_id: str | None = None,
        performed_at: int | None = None,
        traceparent: str | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> int:
        """Record an action and return its log index. An action without a verified presentation is
        still recorded, as the reporter's claim.

        Raises:
            MalformedError: the report is out of bounds (``performed_at``, ``count``, attributes).
            ReplayError: ``report_id`` was recorded before for this same report (a retry); its
                ``first_index`` is the entry that records it.
            DuplicateEventError: ``report_id`` was used before for another report.
            RateLimitedError: the reporter's budget of unverified reports is spent (retry later).
            StorageError: nothing was recorded; retry later.
        """
        now = self._now()
        at = now if performed_at is None else performed_at
        if at > now + MAX_AHEAD or at < now - MAX_BEHIND:
            raise MalformedError("performed_at is outside the accepted window").about(Input.REQUEST)
        if attrs is not None and len(attrs) > MAX_REPORTED_ATTRS:
            raise MalformedError(
                f"at most {MAX_REPORTED_ATTRS} extra attributes may be reported"
            ).about(Input.REQUEST)
        if count is not None and (type(count) is not int or not 1 <= count <= MAX_COUNT):
            raise MalformedError(f"count must be an integer from 1 to {MAX_COUNT}").about(
                Input.REQUEST
            )
        reported = {
            k: v
            for k, v in {
                "presenter": presenter,
                "claimed_initiator": claimed_initiator,
                "refusal": refusal,
                "required_scope": required_scope,
                "count": count,
                "report_id": report_id,
                "attrs": dict(attrs) if attrs else None,
            }.items()
            if v is not None
        }
        once: list[Claim] = []
        if report_id is not None:
            # The report id first: a retry is answered before anything is verified again, and in
            # the append its conflict is found before the presentation's (a retry is not a replay).
            digest = _report_digest(
                action, resource, token, proof, htm, htu, outcome, performed_at, reported
            )
            once.append(Claim(REPORT, f"{executor} {report_id}", at + MAX_BEHIND, digest))
            try:
                self._recorder.check_unspent(REPORT, once[0].key)
            except ReplayError as exc:
                raise _duplicate(exc, report_id, digest) from None
        executor_record = self._registry().find_workload(executor)
        fields: dict[str, Any] = {
            "action": action,
            "resource": resource,
            "outcome": outcome,
            "executor": executor,
            "executor_kind": str(executor_record.kind) if executor_record else "unknown",
            "htu": htu or None,
            "reported": reported or None,
        }
        report = _Report(fields, once, refusal, TraceContext.from_traceparent(traceparent))
        if token is None:
            return self._claim(report, executor, now)
        fields["token"] = sha256_b64url(token)
        # 1. The presentation was made to the reporter.
        if executor_record is None or not _serves(executor_record, htu or ""):
            not_served = DPoPURLError(
                f"the presentation names {(htu or '')[:200]!r}, which {executor} did not register "
                "as an endpoint it serves; the report is its claim"
            )
            fields.update(error=not_served.code, reason=not_served.message[:MAX_REASON])
            return self._claim(report, executor, now)
        # The presentation is verified in its steps here rather than with verify_presentation,
        # because what held before a step failed is evidence (a replayed token's claims, the key
        # that presented it), and nothing is verified twice to recover it.
        # 2. The token, as of the time of the action.
        try:
            verified = verify_task_token(
                token, trust=self._signer.trust, audience=self._trust_domain, now=at, skew=SKEW
            )
        except VerificationError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON])
            return self._claim(report, executor, now)
        claims = verified.claims
        fields.update(
            txn=claims.txn,
            initiator=claims.sub,
            chain=tuple(claims.chain),
            scope=tuple(claims.scope),
            jti=claims.jti,
            log=claims.log,
        )
        # 3. The proof, for this request and this token, by the token's holder.
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
        except VerificationError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON], holder=claims.actor)
            # Another registered workload's verified proof names who presented the token.
            jkt = exc.presenter_jkt if isinstance(exc, KeyBindingError) else None
            signer = self._registry().workload_by_jkt(jkt) if jkt else None
            if signer is not None:
                fields["actor"] = signer.id
            return self._claim(report, executor, now)
        fields.update(
            actor=claims.actor,
            parent_token=claims.prev,
            proof_jti=dpop.jti,
            decision_id=(claims.authz or {}).get("id"),
        )
        # 4. Revocation.
        try:
            self._revocations.check(verified)
        except VerificationError as exc:
            fields.update(error=exc.code, reason=exc.message[:MAX_REASON])
            return self._claim(report, executor, now)
        # 5. Single use, spent in the action's own transaction.
        presentation = Claim(
            PRESENTATION, f"{dpop.thumbprint}:{dpop.jti}", claims.exp + SKEW + MAX_BEHIND
        )
        if refusal is not None:
            fields["outcome"] = "refused"
        kind = ActionRefused if refusal is not None else ActionInvoked
        try:
            return self._recorder.record(
                kind(**fields), report.trace, once=[*report.once, presentation]
            )
        except ReplayError as exc:
            if exc.scope == REPORT:
                raise _duplicate(exc, report_id or "", report.once[0].value) from None
            if exc.scope != PRESENTATION:
                raise
            fields.update(
                error=exc.code,
                reason=f"this presentation was already reported (log entry {exc.first_index})",
                replay_of=exc.first_index,
            )
            return self._claim(report, executor, now)

    def _claim(self, report: _Report, executor: str, now: int) -> int:
        """Record what could not be verified as the reporter's claim, within its budget."""
        fields = report.fields
        limited = self._budget.take(executor, now)
        if limited:
            fields["rate_limited"] = limited
        try:
            if report.refusal is not None or fields["outcome"] == "refused":
                fields["outcome"] = "refused"
                return self._recorder.record(
                    ActionRefused(**fields), report.trace, once=report.once
                )
            return self._recorder.record(
                ActionInvoked(unattributed=True, **fields), report.trace, once=report.once
            )
        except ReplayError as exc:
            if exc.scope == REPORT and report.once:
                report_id = report.once[0].key.split(" ", 1)[1]
                raise _duplicate(exc, report_id, report.once[0].value) from None
            raise


class _Report:
    """A report being recorded: its record's members, the report id's claim, the reporter's refusal
    code and the trace context."""

    __slots__ = ("fields", "once", "refusal", "trace")

    def __init__(
        self, fields: dict[str, Any], once: list[Claim], refusal: str | None, trace: TraceContext
    ) -> None:
        self.fields = fields
        self.once = once
        self.refusal = refusal
        self.trace = trace


def _report_digest(
    action: str,
    resource: str,
    token: str | None,
    proof: str | None,
    htm: str,
    htu: str | None,
    outcome: str,
    performed_at: int | None,
    reported: Mapping[str, Any],
) -> str:
    """What a report says, hashed canonically, so a retry can be told from another report under the
    same id. The trace context is left out: a retry may travel in another span."""
    body = {
        "action": action,
        "resource": resource,
        "token": sha256_b64url(token) if token is not None else None,
        "proof": sha256_b64url(proof) if proof is not None else None,
        "htm": htm,
        "htu": htu,
        "outcome": outcome,
        "performed_at": performed_at,
        "reported": dict(reported),
    }
    try:
        return sha256_b64url(jcs.canonicalize(body))
    except AuthchainError as exc:
        raise MalformedError(f"the report cannot be recorded: {exc.message}").about(
            Input.REQUEST
        ) from None


def _duplicate(exc: ReplayError, report_id: str, digest: str | None) -> AuthchainError:
    """The answer to a report id seen before: the retry of the same report (a ReplayError carrying
    the first entry), or another report under a used id (DuplicateEventError)."""
    if exc.first_value is not None and exc.first_value == digest:
        return ReplayError(
            f"report {report_id[:64]!r} was recorded at log entry {exc.first_index}",
            scope=REPORT,
            first_index=exc.first_index,
            first_value=exc.first_value,
        ).about(Input.REQUEST)
    return DuplicateEventError(
        f"report id {report_id[:64]!r} was already used for another report "
        f"(log entry {exc.first_index})"
    ).about(Input.REQUEST)
