"""The one exception tree of Authchain.

Every error has a stable machine ``code`` (``snake_case``) that the HTTP layer maps to RFC 9457
problem details and OAuth error codes, and that the CLI maps to a one-line message and an exit code.
Codes are part of the public contract: never rename one, add a new class instead.

Cryptographic failures are opaque on purpose ("signature invalid"): the message must not help an
attacker tell which check failed first. Policy and hop-rule failures are precise, because the policy is
not secret and an operator needs to know exactly why authority did not pass.

Where the cause of a refusal is known, the code that knows it names the request input that failed in
:attr:`AuthchainError.input` (one of :class:`Input`): the subject token, the DPoP proof, the actor its
key identifies, the requested scope... The HTTP layer picks its OAuth error from that name and the
code with one table lookup, and nothing is verified a second time to find out who was wrong.

The tree::

    AuthchainError
    ├── ConfigurationError
    ├── NotFoundError
    ├── HttpError                        a malformed HTTP request, refused at the edge
    ├── CapacityError                    a bounded resource is full: retry later (503)
    │   ├── ReplayCacheFullError
    │   └── RateLimitedError             a reporter sent more claims than its budget (429)
    ├── StorageError                     the store failed; nothing was acknowledged (503)
    ├── PolicyError
    │   └── PolicyLoadError
    ├── PolicyDenied
    ├── RemoteError
    │   └── RemoteUnavailableError
    └── VerificationError                hostile or invalid input; never retry the same input
        ├── MalformedError
        │   ├── SizeLimitError
        │   ├── CanonicalizationError
        │   └── RawTokenError
        ├── AlgorithmError, SignatureError, TokenTypeError, UntrustedIssuerError, AudienceError
        ├── ExpiredError, NotYetValidError, IssuedInFutureError, ClaimError
        ├── KeyBindingError, ReplayError, RevokedError
        ├── DPoPError
        │   ├── DPoPMethodError, DPoPURLError, DPoPNonceError
        │   └── DPoPAccessTokenHashError
        ├── InvalidSpiffeIdError, InvalidKeyError, InvalidPrincipalError, InvalidTargetError
        ├── HopError
        │   └── ScopeEscalationError, LifetimeError, ChainDepthError, ChainCycleError
        ├── DuplicateEventError
        └── LogIntegrityError
            ├── ProofError
            └── CheckpointError
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

__all__ = [
    "Input",
    "AuthchainError",
    "ConfigurationError",
    "NotFoundError",
    "HttpError",
    "CapacityError",
    "ReplayCacheFullError",
    "RateLimitedError",
    "StorageError",
    "VerificationError",
    "MalformedError",
    "SizeLimitError",
    "CanonicalizationError",
    "RawTokenError",
    "AlgorithmError",
    "SignatureError",
    "TokenTypeError",
    "UntrustedIssuerError",
    "AudienceError",
    "ExpiredError",
    "NotYetValidError",
    "IssuedInFutureError",
    "ClaimError",
    "KeyBindingError",
    "ReplayError",
    "DPoPError",
    "DPoPMethodError",
    "DPoPURLError",
    "DPoPNonceError",
    "DPoPAccessTokenHashError",
    "InvalidSpiffeIdError",
    "InvalidKeyError",
    "InvalidPrincipalError",
    "InvalidTargetError",
    "HopError",
    "ScopeEscalationError",
    "LifetimeError",
    "ChainDepthError",
    "ChainCycleError",
    "RevokedError",
    "DuplicateEventError",
    "LogIntegrityError",
    "ProofError",
    "CheckpointError",
    "PolicyError",
    "PolicyLoadError",
    "PolicyDenied",
    "RemoteError",
    "RemoteUnavailableError",
]


class Input(StrEnum):
    """The request input a refusal is about, named where the cause is known."""

    #: The ``subject_token`` of a token exchange: the parent task token, or the initiator's ID token.
    SUBJECT_TOKEN = "subject_token"
    #: The requester's ``DPoP`` proof (RFC 9449 section 4): its form, signature, method, URL, nonce.
    DPOP_PROOF = "dpop_proof"
    #: The workload the proof's key identifies: unregistered, or not the holder of the token.
    ACTOR = "actor"
    #: The ``audience`` (next actor) of a hop.
    AUDIENCE = "audience"
    #: The requested ``scope`` or lifetime, judged by the rules of a hop.
    SCOPE = "scope"
    #: ``request_details`` of a task start (the purpose, which becomes ``tctx``).
    REQUEST_DETAILS = "request_details"
    #: The policy decision (a deny, or an evaluation that failed closed).
    POLICY = "policy"
    #: A token presented to a resource server and reported at ``/events``.
    PRESENTED_TOKEN = "presented_token"
    #: The presenter's DPoP proof reported at ``/events``.
    PRESENTED_PROOF = "presented_proof"
    #: Any other member of a request body (a report, an admin call).
    REQUEST = "request"


_E = TypeVar("_E", bound="AuthchainError")


class AuthchainError(Exception):
    """Root of every error Authchain raises on purpose."""

    code: str = "authchain_error"
    # Set by the authority when it recorded this refusal in the audit log: denials are evidence too,
    # and a caller (the HTTP layer, an investigator) can point at the entry.
    log_index: int | None = None
    # The request input the refusal is about, set where the cause is known (see :meth:`about`).
    input: Input | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def about(self: _E, what: Input) -> _E:
        """Name the input this error is about, unless a more precise step already did; returns
        ``self`` so a caller writes ``raise exc.about(Input.SUBJECT_TOKEN)``."""
        if self.input is None:
            self.input = what
        return self


class ConfigurationError(AuthchainError):
    """The operator's configuration is wrong (missing key, unreadable policy directory, bad URL)."""

    code = "configuration_error"


class NotFoundError(AuthchainError):
    """A named thing (event, index, workload, task) does not exist."""

    code = "not_found"


class HttpError(AuthchainError):
    """An HTTP request the server refuses before any core code sees it: a wrong media type, a body
    that is not a form or a JSON object, a missing parameter, a missing credential. ``code`` is the
    machine code on the wire (an OAuth error at ``/token``), ``status`` the HTTP status."""

    code = "invalid_request"

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.headers: Mapping[str, str] = dict(headers or {})

    @property
    def detail(self) -> str:
        return self.message


class CapacityError(AuthchainError):
    """A bounded resource is full (a replay cache, a queue). Nothing was decided or recorded about
    the input: the same request may succeed shortly (HTTP 503 with ``Retry-After``)."""

    code = "capacity"


class ReplayCacheFullError(CapacityError):
    """The replay cache holds its maximum of unexpired ``jti`` values. The proof is refused rather
    than a live ``jti`` forgotten (fail closed); the HTTP layer answers 503 with ``Retry-After``."""

    code = "replay_cache_full"


class RateLimitedError(CapacityError):
    """A caller sent more of some kind of request than its budget allows (unverified action reports,
    say); nothing was recorded, and the same request may succeed after ``retry_after`` seconds
    (HTTP 429 with ``Retry-After``)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --------------------------------------------------------------------------------------------------
# Hostile or invalid input.


class VerificationError(AuthchainError):
    """Input failed verification. Never retry with the same input."""

    code = "verification_failed"


class MalformedError(VerificationError):
    """Input does not parse: bad base64url, bad JSON, duplicate members, wrong segment count."""

    code = "malformed"


class SizeLimitError(MalformedError):
    """An untrusted field or document is larger than its limit."""

    code = "size_limit"


class CanonicalizationError(MalformedError):
    """A value cannot be encoded canonically (RFC 8785): floats, unsafe integers, lone surrogates."""

    code = "not_canonical"


class AlgorithmError(VerificationError):
    """The algorithm is not on the allow-list or does not match the key (``none``, HS256, mismatch)."""

    code = "algorithm_refused"


class SignatureError(VerificationError):
    """The signature does not verify. Deliberately says nothing more."""

    code = "signature_invalid"


class TokenTypeError(VerificationError):
    """The JOSE ``typ`` header is not the one this verifier accepts."""

    code = "wrong_type"


class UntrustedIssuerError(VerificationError):
    """``iss`` is not in the configured trust list, or no trusted key has the token's ``kid``."""

    code = "untrusted_issuer"


class AudienceError(VerificationError):
    """``aud`` is not this trust domain / authority."""

    code = "wrong_audience"


class ExpiredError(VerificationError):
    """``exp`` has passed (beyond the allowed skew)."""

    code = "expired"


class NotYetValidError(VerificationError):
    """``nbf`` is in the future (beyond the allowed skew)."""

    code = "not_yet_valid"


class IssuedInFutureError(VerificationError):
    """``iat`` is in the future (beyond the allowed skew)."""

    code = "issued_in_future"


class ClaimError(VerificationError):
    """A required claim is missing or has the wrong type or form."""

    code = "invalid_claim"


class KeyBindingError(VerificationError):
    """The presenter's key is not the key the token is bound to (``cnf.jkt``).

    ``presenter_jkt`` is the thumbprint of the key that did sign, when a verified proof showed it
    (a proof that passed every other check): evidence of who presented someone else's token.
    """

    code = "key_binding_mismatch"

    def __init__(self, message: str, presenter_jkt: str | None = None) -> None:
        super().__init__(message)
        self.presenter_jkt = presenter_jkt


class ReplayError(VerificationError):
    """A one-time value (a DPoP ``jti``, a presentation, a report id, an ID token) was seen before.

    When the audit log's single-use ledger refused it, ``scope`` names the kind of value and
    ``first_index`` is the log entry that claimed it first, with ``first_value`` what that claim
    stored (a report's digest, so a retry can be told from another report under the same id).
    """

    code = "replay"

    def __init__(
        self,
        message: str,
        *,
        scope: str | None = None,
        first_index: int | None = None,
        first_value: str | None = None,
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.first_index = first_index
        self.first_value = first_value


class DPoPError(VerificationError):
    """A DPoP proof is invalid (RFC 9449 section 4.3)."""

    code = "invalid_dpop_proof"


class DPoPMethodError(DPoPError):
    """The proof's ``htm`` is not the request's method."""

    code = "dpop_method_mismatch"


class DPoPURLError(DPoPError):
    """The proof's ``htu`` is not the request's URL after normalisation."""

    code = "dpop_url_mismatch"


class DPoPNonceError(DPoPError):
    """The server requires a nonce and the proof has none or a stale one (RFC 9449 section 8)."""

    code = "use_dpop_nonce"

    def __init__(self, message: str, nonce: str | None = None) -> None:
        super().__init__(message)
        self.nonce = nonce


class InvalidSpiffeIdError(VerificationError):
    """A string is not a valid SPIFFE ID (SPIFFE-ID standard, section 2)."""

    code = "invalid_spiffe_id"


class InvalidKeyError(VerificationError):
    """A key or JWK is malformed, of an unsupported type, or carries private members where it must not."""

    code = "invalid_key"


class HopError(VerificationError):
    """A hop (delegation) breaks one of the rules of a hop (docs/tokens.md)."""

    code = "hop_refused"


class ScopeEscalationError(HopError):
    """The requested scope is not a subset of the held scope."""

    code = "scope_escalation"


class LifetimeError(HopError):
    """The requested lifetime outlives the parent token or the task deadline."""

    code = "lifetime_exceeded"


class ChainDepthError(HopError):
    """The delegation chain would exceed its depth limit."""

    code = "chain_too_deep"


class ChainCycleError(HopError):
    """An actor would appear twice in one delegation chain."""

    code = "chain_cycle"


class RevokedError(VerificationError):
    """The token, one of its ancestors, or its task has been revoked."""

    code = "revoked"


class LogIntegrityError(VerificationError):
    """The audit log does not verify: edited, removed, reordered or truncated entries, bad checkpoint."""

    code = "log_integrity"

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ProofError(LogIntegrityError):
    """An inclusion or consistency proof does not verify."""

    code = "proof_invalid"


# --------------------------------------------------------------------------------------------------
# Policy.


class PolicyError(AuthchainError):
    """Policy could not be evaluated or loaded."""

    code = "policy_error"


class PolicyLoadError(PolicyError):
    """A policy file does not parse or does not validate against the schema."""

    code = "policy_invalid"


class PolicyDenied(AuthchainError):
    """Policy denied the request. Carries the decision so callers can record and explain it."""

    code = "policy_denied"

    def __init__(self, message: str, decision: object | None = None) -> None:
        super().__init__(message)
        self.decision = decision


# --------------------------------------------------------------------------------------------------
# Storage.


class StorageError(AuthchainError):
    """The store failed; nothing was acknowledged."""

    code = "storage_error"


class InvalidPrincipalError(VerificationError):
    """A principal is malformed: unknown kind, a user id that is not a usable ``sub``, a workload
    whose kind cannot be derived, or a trust domain that does not match the id."""

    code = "invalid_principal"


class DPoPAccessTokenHashError(DPoPError):
    """The proof's ``ath`` is not the hash of the presented token (RFC 9449 section 4.3 (12),
    section 9): the proof was made for another token."""

    code = "dpop_ath_mismatch"


class RawTokenError(MalformedError):
    """An audit event contains what looks like a raw JWT. Only token hashes may be logged."""

    code = "raw_token_in_event"


class DuplicateEventError(VerificationError):
    """An event with this id is already in the log, or twice in one batch; it was not appended."""

    code = "duplicate_event"


class CheckpointError(LogIntegrityError):
    """A stored or trusted checkpoint is malformed, not signed by the log's key, out of order, or
    does not match the log's entries. ``size`` is the checkpoint's tree size when known."""

    code = "checkpoint_invalid"

    def __init__(self, message: str, index: int | None = None, size: int | None = None) -> None:
        super().__init__(message, index)
        self.size = size


class InvalidTargetError(VerificationError):
    """The requested audience of a hop is unknown, not a workload, or refused (RFC 8693 section
    2.2.2 ``invalid_target``)."""

    code = "invalid_target"


class RemoteError(AuthchainError):
    """An Authchain service (the authority, a tool) refused a request over HTTP, or could not be
    reached. ``error`` is the OAuth error or problem code it answered with, ``status`` the HTTP
    status (0 when it could not be reached), ``log_index`` the entry recording the refusal."""

    code = "remote_error"

    def __init__(
        self,
        message: str,
        *,
        error: str = "remote_error",
        status: int = 0,
        log_index: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error = error
        self.status = status
        self.log_index = log_index
        self.retry_after = retry_after


class RemoteUnavailableError(RemoteError):
    """The remote service could not be reached, timed out, or answered 5xx/429: try again later."""

    code = "remote_unavailable"
