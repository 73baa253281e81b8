"""The one exception tree of Authchain.

Every error has a stable machine ``code`` (``snake_case``) that the HTTP layer maps to RFC 9457
problem details and OAuth error codes, and that the CLI maps to a one-line message and an exit code.
Codes are part of the public contract: never rename one, add a new class instead.

Cryptographic failures are opaque on purpose ("signature invalid"): the message must not help an
attacker tell which check failed first. Policy and hop-rule failures are precise, because the policy is
not secret and an operator needs to know exactly why authority did not pass.
"""

from __future__ import annotations

__all__ = [
    "AuthchainError",
    "ConfigurationError",
    "VerificationError",
    "MalformedError",
    "SizeLimitError",
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
    "InvalidSpiffeIdError",
    "InvalidKeyError",
    "HopError",
    "ScopeEscalationError",
    "LifetimeError",
    "ChainDepthError",
    "ChainCycleError",
    "RevokedError",
    "LogIntegrityError",
    "ProofError",
    "CanonicalizationError",
    "PolicyError",
    "PolicyLoadError",
    "PolicyDenied",
    "StorageError",
    "NotFoundError",
    "InvalidPrincipalError",
    "DPoPAccessTokenHashError",
    "ReplayCacheFullError",
    "RawTokenError",
    "DuplicateEventError",
    "CheckpointError",
    "InvalidTargetError",
    "RemoteError",
    "RemoteUnavailableError",
]


class AuthchainError(Exception):
    """Root of every error Authchain raises on purpose."""

    code: str = "authchain_error"
    # Set by the authority when it recorded this refusal in the audit log: denials are evidence too,
    # and a caller (the HTTP layer, an investigator) can point at the entry.
    log_index: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(AuthchainError):
    """The operator's configuration is wrong (missing key, unreadable policy directory, bad URL)."""

    code = "configuration_error"


class NotFoundError(AuthchainError):
    """A named thing (event, index, workload, task) does not exist."""

    code = "not_found"


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
    """The presenter's key is not the key the token is bound to (``cnf.jkt``)."""

    code = "key_binding_mismatch"


class ReplayError(VerificationError):
    """A one-time value (DPoP ``jti``) was seen before."""

    code = "replay"


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
    """A hop (delegation) breaks one of the rules of DESIGN.md, section "Tokens"."""

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


# --------------------------------------------------------------------------------------------------
# Appended (identity): principals.


class InvalidPrincipalError(VerificationError):
    """A principal is malformed: unknown kind, a user id that is not a usable ``sub``, a workload
    whose kind cannot be derived, or a trust domain that does not match the id."""

    code = "invalid_principal"


# --------------------------------------------------------------------------------------------------
# Appended (tokens): DPoP.


class DPoPAccessTokenHashError(DPoPError):
    """The proof's ``ath`` is not the hash of the presented token (RFC 9449 section 4.3 (12),
    section 9): the proof was made for another token."""

    code = "dpop_ath_mismatch"


class ReplayCacheFullError(ReplayError):
    """The replay cache holds its maximum of unexpired ``jti`` values. The proof is refused rather
    than a live ``jti`` forgotten (fail closed); the HTTP layer answers 503 with ``Retry-After``."""

    code = "replay_cache_full"


# --------------------------------------------------------------------------------------------------
# Appended (audit): the log.


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


# --------------------------------------------------------------------------------------------------
# Appended (server, sdk): targets and remote refusals.


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
