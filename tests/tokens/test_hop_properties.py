"""Property tests: over random chains of hops with random requests, a granted hop never widens
scope or lifetime and never changes txn, sub, aud or the context; a refused one says why."""

from __future__ import annotations

import dataclasses

from _tasktoken_helpers import AUTHORITY_KEY, ISSUER, NOW, PLANNER, make_claims, mint_task_token
from hypothesis import given, settings
from hypothesis import strategies as st

from authchain._encoding import sha256_b64url
from authchain.errors import ClaimError, HopError, LifetimeError
from authchain.identity.keys import SigningKey
from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.hop import HopRequest, derive_child_claims
from authchain.tokens.task_token import VerifiedTaskToken

SCOPES = ["crm:read", "crm:write", "mail:send", "files:read", "admin:all"]
ACTORS = [f"spiffe://example.org/agent/a{i}" for i in range(6)] + [PLANNER]
KEYS = [SigningKey.from_ed25519_seed(bytes([i]) * 32).kid for i in range(1, 8)]


def _verified(claims: TaskTokenClaims) -> VerifiedTaskToken:
    # The hop function only reads claims and the hash; signing is exercised elsewhere, so the
    # hash of a minted token keeps the property test fast and realistic.
    token = mint_task_token(claims, AUTHORITY_KEY)
    return VerifiedTaskToken(claims=claims, token_hash=sha256_b64url(token), kid=AUTHORITY_KEY.kid)


hop_request = st.tuples(
    st.integers(0, len(ACTORS) - 1),
    st.none() | st.lists(st.sampled_from(SCOPES), min_size=1, max_size=4, unique=True),
    st.none() | st.integers(-10, 1000),
    st.integers(0, 400),  # seconds after the parent was issued
    st.none() | st.integers(0, 2000),  # task deadline, relative to the first token
)


@settings(max_examples=150, deadline=None)
@given(
    initial_scope=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=5, unique=True),
    lifetime=st.integers(1, 900),
    hops=st.lists(hop_request, min_size=1, max_size=10),
)
def test_a_hop_never_widens_scope_or_lifetime_and_never_changes_txn_or_sub(
    initial_scope: list[str], lifetime: int, hops: list[tuple]
) -> None:
    root = make_claims(scope=tuple(initial_scope), iat=NOW, exp=NOW + lifetime)
    parent = _verified(root)
    for actor_index, scope, requested_lifetime, delay, deadline in hops:
        held = parent.claims
        now = held.iat + delay
        task_deadline = None if deadline is None else NOW + deadline
        request = HopRequest(
            audience=ACTORS[actor_index],
            audience_jkt=KEYS[actor_index],
            scope=None if scope is None else tuple(scope),
            lifetime=requested_lifetime,
        )
        try:
            child = derive_child_claims(
                parent,
                held.cnf_jkt,
                request,
                issuer=ISSUER,
                now=now,
                jti=f"j{len(held.chain)}",
                task_deadline=task_deadline,
            )
        except HopError as exc:
            # A refusal is one of the documented hop errors; a LifetimeError only when the
            # requested or remaining lifetime really does not fit.
            if isinstance(exc, LifetimeError):
                ceiling = held.exp if task_deadline is None else min(held.exp, task_deadline)
                assert ceiling <= now or (
                    requested_lifetime is not None and now + requested_lifetime > ceiling
                )
            continue
        except ClaimError:
            # The only malformed request these strategies make: a non-positive lifetime. Any
            # other exception escapes and fails the test.
            assert requested_lifetime is not None and requested_lifetime <= 0
            continue
        # Scope never widens.
        assert set(child.scope) <= set(held.scope)
        # Lifetime never extends past the parent, nor the task deadline.
        assert child.exp <= held.exp
        assert task_deadline is None or child.exp <= task_deadline
        assert child.exp > now
        # The task and its initiator never change; nor do the audience and the context.
        assert (child.txn, child.sub, child.aud) == (root.txn, root.sub, root.aud)
        assert (child.tctx, child.rctx) == (root.tctx, root.rctx)
        # One actor more, the parent's chain kept as it was, bound to the next actor's key.
        assert child.chain == (*held.chain, request.audience)
        assert child.cnf_jkt == request.audience_jkt
        assert len(set(child.chain)) == len(child.chain)
        assert child.depth <= 8
        assert child.prev == parent.token_hash
        parent = _verified(dataclasses.replace(child))
