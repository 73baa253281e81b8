"""The rules of a hop, as pure functions (docs/tokens.md).

A task token is bound to the actor that uses it; a hop hands authority to the next actor. Given a
verified parent token, the thumbprint of the key that signed the holder's DPoP proof, and the
request (the next actor and its registered key, the scope, the lifetime), :func:`derive_child_claims`
returns the claims of the child token or raises the precise reason it may not exist.
:func:`first_token_claims` makes the claims of the first token of a task.

Signing, policy and recording belong to the authority: it evaluates policy on these claims, records
the decision, fills ``authz`` and ``log`` with :func:`dataclasses.replace`, and only then signs.
Nothing here does I/O or reads the clock.

The rules, each enforced below with its source:

- the proof key is the parent's holder key (RFC 9449 section 6.1, ``cnf.jkt``);
- the child is bound to the next actor's registered key (``cnf.jkt``) and names it as the
  outermost ``act``, the parent's chain nested one level deeper (RFC 8693 section 4.1);
- ``scope`` is a subset of the parent's (RFC 8693 section 1.1, "down-scoping"), and within the
  scopes the next actor is registered to hold (:func:`receiver_scope`, which the authority applies
  first: a hop that names no scope is narrowed to what the receiver may hold, a scope beyond it is
  refused);
- ``exp`` is no later than the parent's nor the task deadline (Txn-Tokens section 6);
- ``txn``, ``sub``, ``aud``, ``tctx`` and ``rctx`` never change (Txn-Tokens section 9.2);
- the chain is bounded in depth and no actor appears twice unless policy allows it;
- ``prev`` is the hash of the parent token, which chains tokens without storing them.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from authchain.errors import (
    ChainCycleError,
    ChainDepthError,
    ClaimError,
    ConfigurationError,
    InvalidKeyError,
    KeyBindingError,
    LifetimeError,
    ScopeEscalationError,
)
from authchain.identity.spiffe import SpiffeId
from authchain.tokens.claims import MAX_CHAIN_DEPTH, TaskTokenClaims, act_from_chain, parse_scope
from authchain.tokens.task_token import VerifiedTaskToken

__all__ = [
    "TOKEN_EXCHANGE_GRANT_TYPE",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_HOP_LIFETIME",
    "HopRequest",
    "derive_child_claims",
    "first_token_claims",
    "receiver_scope",
]

# RFC 8693 section 2.1: the grant type of a token exchange, which is how a hop is requested.
TOKEN_EXCHANGE_GRANT_TYPE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
DEFAULT_MAX_DEPTH: Final = 8
DEFAULT_HOP_LIFETIME: Final = 300  # seconds; Txn-Tokens section 6: "on the order of minutes"

_THUMBPRINT_CHARS: Final = 43  # RFC 7638 section 3 with SHA-256, base64url without padding
_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class HopRequest:
    """What the holder of a task token asks for in a hop (RFC 8693 token exchange).

    ``audience`` is the next actor's SPIFFE ID and ``audience_jkt`` the RFC 7638 thumbprint of the
    key registered for it (the authority looks it up; the holder does not choose it). ``scope``
    ``None`` keeps the parent's scope; ``lifetime`` ``None`` takes the default, shortened to fit
    the parent and the task deadline, while an explicit lifetime that does not fit is refused.
    """

    audience: str
    audience_jkt: str
    scope: tuple[str, ...] | None = None
    lifetime: int | None = None


def receiver_scope(
    requested: tuple[str, ...] | None,
    *,
    available: Iterable[str],
    registered: Iterable[str],
    receiver: str,
) -> tuple[str, ...]:
    """The scope of a token issued to ``receiver``: its registered scopes are a ceiling.

    A token is always issued to a workload (the first actor of a task, or the next actor of a hop)
    and never carries more than that workload is registered to hold, whatever the initiator granted
    or the parent held. ``available`` is what could be handed on: the scopes granted to the
    initiator at a task start, the parent's scope in a hop.

    * ``requested`` ``None`` (nothing named): the available scopes the receiver may hold, in their
      order. Narrowing, never widening: leaving a scope out of a request cannot pass on more than
      the receiver was registered for.
    * an explicit request: returned unchanged if the receiver may hold every scope of it; whether
      it is *available* is judged by the rules that follow (down-scoping, policy).

    Raises:
        ScopeEscalationError: a requested scope is beyond the receiver's registration, or the
            narrowing leaves nothing the receiver may hold.
    """
    allowed = tuple(registered)
    allowed_set = frozenset(allowed)
    shown = " ".join(allowed) or "(none)"
    if requested is None:
        offered = tuple(available)
        scope = tuple(s for s in offered if s in allowed_set)
        if not scope:
            raise ScopeEscalationError(
                f"`{receiver}` is registered for none of the scopes `{' '.join(offered)}` "
                f"(it may hold `{shown}`)"
            )
        return scope
    for token in requested:
        if token not in allowed_set:
            raise ScopeEscalationError(
                f"scope `{token}` is beyond what `{receiver}` is registered to hold (`{shown}`)"
            )
    return requested


def derive_child_claims(
    parent: VerifiedTaskToken,
    proof_jkt: str,
    request: HopRequest,
    *,
    issuer: str,
    now: int,
    jti: str,
    max_depth: int = DEFAULT_MAX_DEPTH,
    task_deadline: int | None = None,
    allow_repeat_actor: bool = False,
    default_lifetime: int = DEFAULT_HOP_LIFETIME,
) -> TaskTokenClaims:
    """The claims of the token that hands ``parent``'s authority to ``request.audience``.

    ``parent`` must come from :func:`~authchain.tokens.task_token.verify_task_token` and
    ``proof_jkt`` from a verified DPoP proof of this request. ``authz`` and ``log`` of the result
    are ``None``, for the authority to fill once the decision is recorded.

    Raises:
        KeyBindingError: the DPoP proof was not made with the parent's holder key.
        InvalidSpiffeIdError: ``request.audience`` is not a SPIFFE ID.
        InvalidKeyError: ``request.audience_jkt`` is not a thumbprint.
        ClaimError, SizeLimitError: the requested scope or lifetime is malformed.
        ChainDepthError: the chain would exceed ``max_depth`` actors.
        ChainCycleError: the next actor is already in the chain.
        ScopeEscalationError: a requested scope token is not held by the parent.
        LifetimeError: the child would outlive the parent or the task deadline.
    """
    _check_config(max_depth, default_lifetime)
    held = parent.claims
    # 1. RFC 9449 6.1: only the holder of the parent's key may hand it on. Compared in constant
    #    time, though a thumbprint is not secret, so no timing question ever has to be asked.
    if not isinstance(proof_jkt, str) or not hmac.compare_digest(
        proof_jkt.encode(), held.cnf_jkt.encode()
    ):
        raise KeyBindingError(
            "the DPoP proof is not signed by the key the parent token is bound to"
        )
    # 2. The next actor is a workload, named by a valid SPIFFE ID, with a registered key.
    next_actor = str(SpiffeId.parse(request.audience))
    next_jkt = _thumbprint(request.audience_jkt, "the next actor's key thumbprint")
    # 3. The requested scope is well-formed (RFC 6749 3.3); None keeps the parent's.
    scope = held.scope if request.scope is None else parse_scope(request.scope)
    # 4. Chain depth: the child adds one actor.
    chain = held.chain
    if len(chain) + 1 > max_depth:
        raise ChainDepthError(
            f"delegation to `{next_actor}` would make the chain {len(chain) + 1} actors deep; "
            f"the limit is {max_depth}"
        )
    # 5. No actor twice in one chain (an actor may not delegate to itself in a cycle), unless policy explicitly allows it.
    if not allow_repeat_actor and next_actor in chain:
        position = chain.index(next_actor) + 1
        raise ChainCycleError(
            f"`{next_actor}` is already actor {position} of {len(chain)} in this chain; "
            "an actor may not appear twice"
        )
    # 6. RFC 8693 1.1 (down-scoping): every requested token must be held by the parent.
    held_scope = frozenset(held.scope)
    for token in scope:
        if token not in held_scope:
            raise ScopeEscalationError(
                f"scope `{token}` is not in the parent's scope `{held.scope_str}`"
            )
    # 7. Lifetime: never beyond the parent's ``exp`` nor the task deadline.
    exp = _child_exp(
        now=now,
        parent_exp=held.exp,
        task_deadline=task_deadline,
        requested=request.lifetime,
        default_lifetime=default_lifetime,
    )
    # 8. RFC 8693 4.1: the next actor outermost, the parent's chain nested one level deeper.
    #    Txn-Tokens 9.2: ``txn``, ``sub``, ``aud``, ``tctx`` and ``rctx`` are carried unchanged.
    child = TaskTokenClaims(
        iss=issuer,
        aud=held.aud,
        iat=now,
        exp=exp,
        jti=jti,
        txn=held.txn,
        sub=held.sub,
        act=act_from_chain((*chain, next_actor)),
        scope=scope,
        tctx=held.tctx,
        rctx=held.rctx,
        cnf_jkt=next_jkt,
        authz=None,
        prev=parent.token_hash,
        log=None,
    )
    # Read back through the strict parser, so the authority never signs what a verifier refuses.
    return TaskTokenClaims.from_payload(child.to_payload())


def first_token_claims(
    *,
    issuer: str,
    audience: str,
    initiator_sub: str,
    first_actor: str,
    first_actor_jkt: str,
    scope: str | Iterable[str],
    now: int,
    jti: str,
    txn: str,
    lifetime: int,
    tctx: Mapping[str, Any],
    rctx: Mapping[str, Any],
    task_deadline: int | None = None,
) -> TaskTokenClaims:
    """The claims of the first token of a task (docs/http-api.md).

    ``initiator_sub`` is the ``sub`` of the verified user assertion; ``first_actor`` the SPIFFE ID
    of the agent the user asked, and ``first_actor_jkt`` the thumbprint of its registered key (the
    key that signed the DPoP proof of the start request). ``audience`` is the trust domain.

    Raises:
        InvalidSpiffeIdError, InvalidKeyError: the first actor or its key thumbprint is malformed.
        ClaimError, SizeLimitError: a claim is malformed or over its limit.
        LifetimeError: the token would outlive the task deadline.
    """
    actor = str(SpiffeId.parse(first_actor))
    jkt = _thumbprint(first_actor_jkt, "the first actor's key thumbprint")
    if type(lifetime) is not int or lifetime <= 0:
        raise ClaimError("lifetime must be a positive whole number of seconds")
    exp = now + lifetime
    if task_deadline is not None and exp > task_deadline:
        raise LifetimeError(
            f"a lifetime of {lifetime}s ends at {exp}, after the task deadline {task_deadline}"
        )
    claims = TaskTokenClaims(
        iss=issuer,
        aud=audience,
        iat=now,
        exp=exp,
        jti=jti,
        txn=txn,
        sub=initiator_sub,
        act=act_from_chain((actor,)),
        scope=parse_scope(scope),
        tctx=dict(tctx),
        rctx=dict(rctx),
        cnf_jkt=jkt,
    )
    # Every claim is read back through the strict parser, so what the authority signs is exactly
    # what a verifier accepts (and the context objects come back frozen).
    return TaskTokenClaims.from_payload(claims.to_payload())


def _check_config(max_depth: int, default_lifetime: int) -> None:
    if type(max_depth) is not int or not 1 <= max_depth <= MAX_CHAIN_DEPTH:
        raise ConfigurationError(f"max_depth must be between 1 and {MAX_CHAIN_DEPTH}")
    if type(default_lifetime) is not int or default_lifetime <= 0:
        raise ConfigurationError("default_lifetime must be a positive number of seconds")


def _thumbprint(value: object, what: str) -> str:
    if (
        not isinstance(value, str)
        or len(value) != _THUMBPRINT_CHARS
        or not _B64URL.issuperset(value)
    ):
        raise InvalidKeyError(f"{what} is not an RFC 7638 SHA-256 thumbprint")
    return value


def _child_exp(
    *,
    now: int,
    parent_exp: int,
    task_deadline: int | None,
    requested: int | None,
    default_lifetime: int,
) -> int:
    ceiling = parent_exp if task_deadline is None else min(parent_exp, task_deadline)
    if ceiling <= now:
        if task_deadline is not None and task_deadline <= now:
            raise LifetimeError(f"the task deadline {task_deadline} has passed")
        raise LifetimeError(f"the parent token expires at {parent_exp}; nothing is left to hand on")
    if requested is None:
        # Nothing specific was asked for: the default, cut to what the parent still has.
        return min(now + default_lifetime, ceiling)
    if type(requested) is not int or requested <= 0:
        raise ClaimError("the requested lifetime must be a positive whole number of seconds")
    exp = now + requested
    if exp > parent_exp:
        raise LifetimeError(
            f"a lifetime of {requested}s ends at {exp}, after the parent token's expiry {parent_exp}"
        )
    if task_deadline is not None and exp > task_deadline:
        raise LifetimeError(
            f"a lifetime of {requested}s ends at {exp}, after the task deadline {task_deadline}"
        )
    return exp
