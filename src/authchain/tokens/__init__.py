"""Tokens: task tokens, the rules of a hop, DPoP proofs (with URL normalisation, the replay cache
and server nonces), presentations of a token with its proof, ID tokens, and compact JWS."""

from __future__ import annotations

from authchain.tokens.claims import (
    MAX_CHAIN_DEPTH,
    TaskTokenClaims,
    act_from_chain,
    chain_from_act,
    parse_scope,
)
from authchain.tokens.dpop import (
    DPOP_TYP,
    MAX_PROOF_BYTES,
    DPoPProof,
    create_proof,
    verify_proof,
)
from authchain.tokens.hop import (
    DEFAULT_HOP_LIFETIME,
    DEFAULT_MAX_DEPTH,
    TOKEN_EXCHANGE_GRANT_TYPE,
    HopRequest,
    derive_child_claims,
    first_token_claims,
)
from authchain.tokens.htu import MAX_HTU_LENGTH, normalize_htu
from authchain.tokens.id_token import (
    ID_TOKEN_TYPE,
    LocalIdentityProvider,
    VerifiedAssertion,
    verify_id_token,
)
from authchain.tokens.jws import (
    MAX_HEADER_BYTES,
    MAX_SIGNATURE_CHARS,
    MAX_TOKEN_BYTES,
    UnverifiedJWS,
    parse_compact,
    sign_compact,
)
from authchain.tokens.nonce import NonceSource
from authchain.tokens.presentation import Presentation, verify_presentation
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import (
    MAX_SKEW,
    TXN_TOKEN_TYP,
    TXN_TOKEN_TYPE_URN,
    TrustList,
    VerifiedTaskToken,
    mint_task_token,
    verify_task_token,
)

__all__ = [
    # task tokens
    "TXN_TOKEN_TYP",
    "TXN_TOKEN_TYPE_URN",
    "MAX_CHAIN_DEPTH",
    "MAX_SKEW",
    "TaskTokenClaims",
    "VerifiedTaskToken",
    "TrustList",
    "mint_task_token",
    "verify_task_token",
    "act_from_chain",
    "chain_from_act",
    "parse_scope",
    # hops
    "DEFAULT_HOP_LIFETIME",
    "TOKEN_EXCHANGE_GRANT_TYPE",
    "DEFAULT_MAX_DEPTH",
    "HopRequest",
    "derive_child_claims",
    "first_token_claims",
    # DPoP
    "DPOP_TYP",
    "MAX_PROOF_BYTES",
    "MAX_HTU_LENGTH",
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
    "ID_TOKEN_TYPE",
    "LocalIdentityProvider",
    "VerifiedAssertion",
    "verify_id_token",
    # compact JWS
    "MAX_HEADER_BYTES",
    "MAX_SIGNATURE_CHARS",
    "MAX_TOKEN_BYTES",
    "UnverifiedJWS",
    "parse_compact",
    "sign_compact",
]
