"""The public surface of the tokens package is pinned, so an accidental export (or removal) is
noticed; internals stay importable from their modules but out of the package's ``__all__``."""

from __future__ import annotations

import importlib

import pytest

import authchain.tokens as tokens

# Where each name a user calls lives: the package re-exports exactly these.
PUBLIC: dict[str, str] = {
    "TaskTokenClaims": "claims",
    "TrustList": "task_token",
    "VerifiedTaskToken": "task_token",
    "mint_task_token": "task_token",
    "verify_task_token": "task_token",
    "TXN_TOKEN_TYPE_URN": "task_token",
    "HopRequest": "hop",
    "derive_child_claims": "hop",
    "first_token_claims": "hop",
    "TOKEN_EXCHANGE_GRANT_TYPE": "hop",
    "DPoPProof": "dpop",
    "create_proof": "dpop",
    "verify_proof": "dpop",
    "normalize_htu": "htu",
    "ReplayCache": "replay",
    "NonceSource": "nonce",
    "Presentation": "presentation",
    "verify_presentation": "presentation",
    "LocalIdentityProvider": "id_token",
    "VerifiedAssertion": "id_token",
    "verify_id_token": "id_token",
    "ID_TOKEN_TYPE": "id_token",
}


def test_package_exports_exactly_what_users_call() -> None:
    assert sorted(tokens.__all__) == sorted(PUBLIC)
    assert len(tokens.__all__) == len(set(tokens.__all__))


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_each_public_name_is_its_modules_own_object(name: str) -> None:
    module = importlib.import_module(f"authchain.tokens.{PUBLIC[name]}")
    assert name in module.__all__
    assert getattr(tokens, name) is getattr(module, name)


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("jws", "parse_compact"),
        ("jws", "sign_compact"),
        ("jws", "MAX_TOKEN_BYTES"),
        ("jws", "MAX_SIGNATURE_CHARS"),
        ("claims", "act_from_chain"),
        ("claims", "chain_from_act"),
        ("claims", "parse_scope"),
        ("claims", "MAX_CHAIN_DEPTH"),
        ("task_token", "TXN_TOKEN_TYP"),
        ("task_token", "MAX_SKEW"),
        ("dpop", "DPOP_TYP"),
        ("dpop", "MAX_PROOF_BYTES"),
        ("hop", "DEFAULT_MAX_DEPTH"),
        ("_frozen", "FrozenDict"),
        ("_frozen", "freeze_json"),
    ],
)
def test_internals_stay_importable_from_their_modules_but_not_from_the_package(
    module: str, name: str
) -> None:
    assert hasattr(importlib.import_module(f"authchain.tokens.{module}"), name)
    assert name not in tokens.__all__


def test_the_second_revocation_implementation_is_gone() -> None:
    # The authority's revocation is the one; tokens/revocation.py was an unused twin.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("authchain.tokens.revocation")


def test_module_surfaces_are_pinned() -> None:
    from authchain.tokens import claims, hop, jws, task_token

    assert sorted(task_token.__all__) == [
        "MAX_SKEW",
        "TXN_TOKEN_TYP",
        "TXN_TOKEN_TYPE_URN",
        "TrustList",
        "VerifiedTaskToken",
        "mint_task_token",
        "verify_task_token",
    ]
    assert sorted(claims.__all__) == [
        "MAX_CHAIN_DEPTH",
        "TaskTokenClaims",
        "act_from_chain",
        "chain_from_act",
        "parse_scope",
    ]
    assert sorted(hop.__all__) == [
        "DEFAULT_HOP_LIFETIME",
        "DEFAULT_MAX_DEPTH",
        "HopRequest",
        "TOKEN_EXCHANGE_GRANT_TYPE",
        "derive_child_claims",
        "first_token_claims",
        "receiver_scope",
    ]
    assert sorted(jws.__all__) == [
        "MAX_HEADER_BYTES",
        "MAX_SIGNATURE_CHARS",
        "MAX_TOKEN_BYTES",
        "UnverifiedJWS",
        "parse_compact",
        "sign_compact",
    ]


def test_constants_have_their_protocol_values() -> None:
    from authchain.tokens.hop import DEFAULT_MAX_DEPTH
    from authchain.tokens.task_token import TXN_TOKEN_TYP

    assert TXN_TOKEN_TYP == "txntoken+jwt"
    assert tokens.TXN_TOKEN_TYPE_URN == "urn:ietf:params:oauth:token-type:txn_token"
    assert tokens.ID_TOKEN_TYPE == "urn:ietf:params:oauth:token-type:id_token"
    assert tokens.TOKEN_EXCHANGE_GRANT_TYPE == "urn:ietf:params:oauth:grant-type:token-exchange"
    assert DEFAULT_MAX_DEPTH == 8
