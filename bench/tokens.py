"""Benchmark: task tokens and DPoP proofs on the paths that run on every request.

    .venv/bin/python bench/tokens.py            (about 15 s; writes bench/results/tokens.json)

Measured, as operations per second (median of five rounds; each round times every path once):

* ``mint``: sign a task token (what the authority does on every task start and hop).
* ``verify_path``: what every tool service runs on every request: ``verify_task_token`` and then
  ``verify_proof`` bound to that token (``ath``, ``cnf.jkt``, a fresh ``jti`` through the replay
  cache, ``htm``/``htu``).
* ``hop_rules``: ``derive_child_claims``, the hop rules the authority applies before policy, and
  ``hop_rules_and_mint``: the rules and the signing of the child token (policy, the audit log and
  the HTTP exchange are measured by their own benchmarks).

Floors, measured in the same run because the machines are shared and noisy:

* ``floor_two_raw_verifies``: the two Ed25519 signature checks the verify path cannot avoid, done
  with raw PyNaCl ``VerifyKey.verify`` (libsodium; the fastest Ed25519 available here; the
  ``cryptography`` rate is reported beside it) on the same messages.
* ``pyjwt_two_decodes``: the same two verifications done with PyJWT: ``jwt.decode`` of the task token
  (signature, ``exp``, ``iat``, ``aud``) and of the DPoP proof under the key from its own header.
  This does less than Authchain's path (no ``ath``, ``cnf.jkt``, replay, ``htu`` or claim-form
  checks), so the ratio against it is conservative.

Ratios: ``verify_vs_floor`` = verify_path / floor_two_raw_verifies (aim >= 0.67);
``verify_vs_pyjwt`` = verify_path / pyjwt_two_decodes (aim >= 1.8).
"""

from __future__ import annotations

import hashlib
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any

import jwt
import nacl.signing
from cryptography.hazmat.primitives.asymmetric import ed25519

from _harness import latencies_us, ops_per_second, percentile, write_results
from authchain._encoding import b64url_decode, sha256_b64url
from authchain.identity.keys import JWKS, SigningKey
from authchain.tokens.claims import TaskTokenClaims, act_from_chain
from authchain.tokens.dpop import create_proof, verify_proof
from authchain.tokens.hop import HopRequest, derive_child_claims
from authchain.tokens.replay import ReplayCache
from authchain.tokens.task_token import (
    TrustList,
    VerifiedTaskToken,
    mint_task_token,
    verify_task_token,
)

# Each timed run is 2000 calls (0.1 to 0.7 s here); the whole script takes about 15 s.
NUMBER = 2000
REPEAT = 5

ISSUER = "https://authority.example.org"
AUDIENCE = "example.org"
HTM = "POST"
HTU = "https://crm.example.org/tools/lookup"
CHAIN = (
    "spiffe://example.org/agent/planner",
    "spiffe://example.org/agent/researcher",
    "spiffe://example.org/tool/crm-lookup",
)


def _claims(now: int, holder: SigningKey) -> TaskTokenClaims:
    """A realistic third-hop token: three actors, a purpose, a decision, a parent hash."""
    return TaskTokenClaims(
        iss=ISSUER,
        aud=AUDIENCE,
        iat=now,
        exp=now + 300,
        jti="01936d3e-7a2b-7c3d-8e4f-5a6b7c8d9e0f",
        txn="01936d3e-0000-7000-8000-000000000001",
        sub="user:alice@example.org",
        act=act_from_chain(CHAIN),
        scope=("crm:read", "crm:contacts:read"),
        tctx={"purpose": "prepare the quarterly account review for ACME"},
        rctx={"channel": "chat", "authn": "oidc"},
        cnf_jkt=holder.kid,
        authz={
            "id": "01936d3e-1111-7000-8000-000000000002",
            "policies": ["delegate-read-to-tools"],
            "policy_set_hash": hashlib.sha256(b"policy set").hexdigest(),
        },
        prev=sha256_b64url(b"parent token"),
        log=41,
    )


def _interleaved_rates(paths: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Median rate of each path over REPEAT rounds, every round timing every path once, so that a
    change in the machine's load during the run moves a path and its floor together."""
    for fn in paths.values():  # warm-up
        ops_per_second(fn, number=NUMBER // 10, repeat=1, warmup=0)
    rounds: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(REPEAT):
        for name, fn in paths.items():
            rounds[name].append(ops_per_second(fn, number=NUMBER, repeat=1, warmup=0))
    return {name: statistics.median(rates) for name, rates in rounds.items()}


def main() -> None:
    now = int(time.time())
    issuer = SigningKey.generate("EdDSA")
    holder = SigningKey.generate("EdDSA")
    trust = TrustList({ISSUER: JWKS([issuer.public])})
    claims = _claims(now, holder)
    token = mint_task_token(claims, issuer)

    # Every request carries a fresh proof (a new jti), so the replay cache does real work. Enough
    # proofs for every timed call (warm-up included) plus the latency sample.
    calls = NUMBER * REPEAT + NUMBER // 10 + NUMBER + 1  # + 1: the sanity check below
    proofs = [
        create_proof(holder, htm=HTM, htu=HTU, now=now, access_token=token) for _ in range(calls)
    ]
    proof_iter = iter(proofs)
    replay = ReplayCache()

    def verify_path() -> None:
        verified = verify_task_token(token, trust=trust, audience=AUDIENCE, now=now)
        verify_proof(
            next(proof_iter),
            htm=HTM,
            htu=HTU,
            now=now,
            replay_cache=replay,
            access_token=token,
            expected_jkt=verified.claims.cnf_jkt,
        )

    # Floor 1: two raw Ed25519 verifications of exactly these messages.
    def split(jws: str) -> tuple[bytes, bytes]:
        signing_input, signature = jws.rsplit(".", 1)
        return signing_input.encode("ascii"), b64url_decode(signature)

    token_msg, token_sig = split(token)
    proof_msg, proof_sig = split(proofs[0])
    issuer_vk = nacl.signing.VerifyKey(b64url_decode(issuer.public.to_jwk()["x"]))
    holder_vk = nacl.signing.VerifyKey(b64url_decode(holder.public.to_jwk()["x"]))

    def two_raw_verifies_nacl() -> None:
        issuer_vk.verify(token_msg, token_sig)
        holder_vk.verify(proof_msg, proof_sig)

    issuer_ck = ed25519.Ed25519PublicKey.from_public_bytes(bytes(issuer_vk))
    holder_ck = ed25519.Ed25519PublicKey.from_public_bytes(bytes(holder_vk))

    def two_raw_verifies_cryptography() -> None:
        issuer_ck.verify(token_sig, token_msg)
        holder_ck.verify(proof_sig, proof_msg)

    # Floor 2: PyJWT doing the two verifications (proofs are re-used: PyJWT has no replay cache).
    pyjwt_proofs = itertools.cycle(proofs[:64])

    def pyjwt_two_decodes() -> None:
        jwt.decode(token, issuer_ck, algorithms=["EdDSA"], audience=AUDIENCE)
        proof = next(pyjwt_proofs)
        header = jwt.get_unverified_header(proof)
        jwt.decode(proof, jwt.PyJWK(header["jwk"], algorithm="EdDSA"), algorithms=["EdDSA"])

    # Sanity: every path accepts what it is timed on.
    verify_path()
    two_raw_verifies_nacl()
    two_raw_verifies_cryptography()
    pyjwt_two_decodes()

    paths: dict[str, Callable[[], Any]] = {
        "mint_ops": lambda: mint_task_token(claims, issuer),
        "verify_path_ops": verify_path,
        "floor_two_raw_verifies_nacl_ops": two_raw_verifies_nacl,
        "two_raw_verifies_cryptography_ops": two_raw_verifies_cryptography,
        "pyjwt_two_decodes_ops": pyjwt_two_decodes,
        "verify_task_token_ops": lambda: verify_task_token(
            token, trust=trust, audience=AUDIENCE, now=now
        ),
        "verify_proof_no_replay_ops": lambda: verify_proof(
            next(verify_proof_only),
            htm=HTM,
            htu=HTU,
            now=now,
            replay_cache=None,
            access_token=token,
            expected_jkt=holder.kid,
        ),
        "create_proof_ops": lambda: create_proof(
            holder, htm=HTM, htu=HTU, now=now, access_token=token
        ),
    }
    verify_proof_only = itertools.cycle(proofs[:64])
    parent = verify_task_token(token, trust=trust, audience=AUDIENCE, now=now)
    paths["hop_rules_ops"], paths["hop_rules_and_mint_ops"] = _hop_rules(
        parent, holder, issuer, now
    )
    figures = _interleaved_rates(paths)

    lat = latencies_us(verify_path, number=NUMBER)
    figures["verify_path_p50_us"] = percentile(lat, 50)
    figures["verify_path_p99_us"] = percentile(lat, 99)

    ratios = {
        "verify_vs_floor": figures["verify_path_ops"] / figures["floor_two_raw_verifies_nacl_ops"],
        "verify_vs_pyjwt": figures["verify_path_ops"] / figures["pyjwt_two_decodes_ops"],
    }
    write_results("tokens", figures, ratios)


def _hop_rules(
    parent: VerifiedTaskToken, holder: SigningKey, issuer: SigningKey, now: int
) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The hop rules alone, and the whole signing side of a hop minus policy and the audit log
    (derive the child claims, sign them)."""
    next_key = SigningKey.generate("EdDSA")
    request = HopRequest(
        audience="spiffe://example.org/tool/crm-export",
        audience_jkt=next_key.kid,
        scope=("crm:read",),
    )

    def hop_rules() -> TaskTokenClaims:
        return derive_child_claims(
            parent, holder.kid, request, issuer=ISSUER, now=now, jti="01936d3e-2222-7000-8000-3"
        )

    def hop_rules_and_mint() -> str:
        return mint_task_token(hop_rules(), issuer)

    return hop_rules, hop_rules_and_mint


if __name__ == "__main__":
    main()
