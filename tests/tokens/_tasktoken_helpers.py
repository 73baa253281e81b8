"""Shared builders for the task-token and hop tests (imported by module name)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from authchain._encoding import b64url_encode
from authchain.identity.keys import JWKS, SigningKey
from authchain.tokens.claims import TaskTokenClaims, act_from_chain
from authchain.tokens.task_token import (
    TrustList,
    VerifiedTaskToken,
    mint_task_token,
    verify_task_token,
)

NOW = 1_800_000_000
ISSUER = "https://authority.example.org"
TRUST_DOMAIN = "example.org"
PLANNER = "spiffe://example.org/agent/planner"
RESEARCHER = "spiffe://example.org/agent/researcher"
CRM = "spiffe://example.org/tool/crm"
MAILER = "spiffe://example.org/service/mailer"

# Fixed keys so that failures reproduce; generated once per test session.
AUTHORITY_KEY = SigningKey.from_ed25519_seed(bytes(range(32)))
PLANNER_KEY = SigningKey.from_ed25519_seed(bytes(range(1, 33)))
CRM_KEY = SigningKey.from_ed25519_seed(bytes(range(2, 34)))
HASH_A = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
# A policy set hash is lowercase hex SHA-256 (what `authchain policy check` prints).
POLICY_HASH = "90a3cae6acf155669ab40f7f00b45e0ba8ea37bd5cf3ed3c470bc1c1aadaa4b89"[:64]


def trust_for(*keys: SigningKey, issuer: str = ISSUER) -> TrustList:
    return TrustList({issuer: JWKS([k.public for k in keys])})


def make_claims(**overrides: Any) -> TaskTokenClaims:
    claims = TaskTokenClaims(
        iss=ISSUER,
        aud=TRUST_DOMAIN,
        iat=NOW,
        exp=NOW + 300,
        jti="0190c6a4-8b6e-7c1a-9a2b-3c4d5e6f7a8b",
        txn="0190c6a4-8b6e-7c1a-9a2b-3c4d5e6f7a8c",
        sub="alice@example.org",
        act=act_from_chain([PLANNER]),
        scope=("crm:read", "crm:write", "mail:send"),
        tctx={"purpose": "quarterly report"},
        rctx={"channel": "chat", "authn": "pwd"},
        cnf_jkt=PLANNER_KEY.kid,
    )
    return dataclasses.replace(claims, **overrides)


def mint(claims: TaskTokenClaims | None = None, key: SigningKey = AUTHORITY_KEY) -> str:
    return mint_task_token(claims or make_claims(), key)


def verify(
    token: str, *, trust: TrustList | None = None, now: int = NOW + 10, **kw: Any
) -> VerifiedTaskToken:
    return verify_task_token(
        token,
        trust=trust if trust is not None else trust_for(AUTHORITY_KEY),
        audience=kw.pop("audience", TRUST_DOMAIN),
        now=now,
        **kw,
    )


def sign_raw(
    header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes, key: SigningKey
) -> str:
    """A compact JWS over exactly the given header and payload bytes, without any checks: the
    way an attacker holding ``key`` (or a buggy issuer) would make one."""
    h = header if isinstance(header, bytes) else orjson.dumps(header)
    p = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    signing_input = b64url_encode(h) + "." + b64url_encode(p)
    return signing_input + "." + b64url_encode(key.sign(signing_input.encode("ascii")))


def task_header(key: SigningKey = AUTHORITY_KEY, **extra: Any) -> dict[str, Any]:
    return {"typ": "txntoken+jwt", "alg": key.alg, "kid": key.kid, **extra}
