"""Tokens: task tokens and the rules of a hop, DPoP proofs, presentations, and ID tokens.

What a user calls is exported here. The modules, one per job:

- ``claims``: :class:`TaskTokenClaims`, the claim set of a task token, and its strict reader;
- ``task_token``: :func:`mint_task_token`, :func:`verify_task_token` and the :class:`TrustList`;
- ``hop``: the rules of a hop (:func:`derive_child_claims`, :func:`first_token_claims`);
- ``dpop``: DPoP proofs (:func:`create_proof`, :func:`verify_proof`), configured with
  ``htu`` (:func:`normalize_htu`), ``replay`` (:class:`ReplayCache`) and ``nonce``
  (:class:`NonceSource`);
- ``presentation``: :func:`verify_presentation`, a token and its proof as a resource server gets them;
- ``id_token``: the initiator's ID token (:func:`verify_id_token`, :class:`LocalIdentityProvider`);
- ``jws``: the one compact-JWS parser and signer under all of them (internal, as is ``_frozen``).
"""

from __future__ import annotations

from authchain.tokens.claims import TaskTokenClaims
from authchain.tokens.dpop import DPoPProof, create_proof, verify_proof
from authchain.tokens.hop import (
    TOKEN_EXCHANGE_GRANT_TYPE,
    HopRequest,
    derive_child_claims,
    first_token_claims,
)
from authchain.tokens.htu import normalize_htu
from authchain.tokens.id_token import (
    ID_TOKEN_TYPE,
    LocalIdentityProvider,
    VerifiedAssertion,
    verify_id_token,
)
from authchain.tokens.nonce import NonceSource
from authchain.tokens.presentation import Presentation, verify_presentation
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import (
    TXN_TOKEN_TYPE_URN,
    TrustList,
    VerifiedTaskToken,
    mint_task_token,
    verify_task_token,
)

__all__ = [
    # task tokens
    "TaskTokenClaims",
    "TrustList",
    "VerifiedTaskToken",
    "mint_task_token",
    "verify_task_token",
    # hops
    "HopRequest",
    "derive_child_claims",
    "first_token_claims",
    # DPoP
    "DPoPProof",
    "NonceSource",
    "ReplayCache",
    "create_proof",
    "normalize_htu",
    "verify_proof",
    # presentations
    "Presentation",
    "verify_presentation",
    # ID tokens
    "LocalIdentityProvider",
    "VerifiedAssertion",
    "verify_id_token",
    # RFC 8693 identifiers
    "ID_TOKEN_TYPE",
    "TOKEN_EXCHANGE_GRANT_TYPE",
    "TXN_TOKEN_TYPE_URN",
]
