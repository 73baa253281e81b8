"""The RFC 9449 example proofs (tests/vectors/rfc9449_examples.json) verify, and are refused with the
specific error when presented with a request they were not made for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authchain import errors
from authchain.identity.keys import PublicKey
from authchain.tokens.dpop import DPOP_TYP, verify_proof
from authchain.tokens.htu import normalize_htu
from authchain.tokens.jws import parse_compact
from authchain.tokens.replay import ReplayCache

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "rfc9449_examples.json").read_text()
)


def _verify(case: dict[str, Any]) -> Any:
    return verify_proof(
        VECTORS["proofs"][case["proof"]],
        htm=case["htm"],
        htu=case["htu"],
        now=case["now"],
        replay_cache=ReplayCache(),
        access_token=case["access_token"],
        expected_jkt=case["expected_jkt"],
    )


def test_rfc9449_example_key_has_the_thumbprint_of_section_6_1() -> None:
    assert PublicKey.from_jwk(VECTORS["jwk"]).thumbprint == VECTORS["jkt"]


@pytest.mark.parametrize("name", sorted(VECTORS["proofs"]))
def test_rfc9449_example_proofs_are_structured_as_section_4_2_requires(name: str) -> None:
    jws = parse_compact(VECTORS["proofs"][name])
    assert jws.unverified_header == {"typ": DPOP_TYP, "alg": "ES256", "jwk": VECTORS["jwk"]}
    claims = jws.unverified_claims()
    assert {"jti", "htm", "htu", "iat"} <= set(claims)
    # Section 4.2: htu is sent without query and fragment, so it is already in normal form.
    assert normalize_htu(claims["htu"]) == claims["htu"]


def test_rfc9449_section_7_1_ath_is_the_hash_of_the_example_access_token() -> None:
    from authchain._encoding import sha256_b64url

    assert sha256_b64url(VECTORS["access_token"]) == VECTORS["ath"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_rfc9449_example_proof_verifies(case: dict[str, Any]) -> None:
    proof = _verify(case)
    assert proof.thumbprint == VECTORS["jkt"]
    assert proof.jwk.alg == "ES256"
    for claim, value in case["claims"].items():
        assert getattr(proof, claim) == value


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_rfc9449_example_proof_for_another_request_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(getattr(errors, case["error"])):
        _verify(case)
