"""The public surface of the tokens package is pinned, so an accidental export is noticed."""

from __future__ import annotations

import authchain.tokens as tokens
from authchain.tokens import claims, hop, task_token


def test_task_token_and_claims_module_exports() -> None:
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


def test_frozen_containers_are_private() -> None:
    from authchain.tokens import _frozen

    for name in ("FrozenDict", "FrozenList", "freeze_json"):
        assert hasattr(_frozen, name)
        assert name not in tokens.__all__


def test_hop_module_exports() -> None:
    assert sorted(hop.__all__) == [
        "DEFAULT_HOP_LIFETIME",
        "DEFAULT_MAX_DEPTH",
        "HopRequest",
        "TOKEN_EXCHANGE_GRANT_TYPE",
        "derive_child_claims",
        "first_token_claims",
    ]


def test_package_reexports_every_public_name_of_its_modules() -> None:
    from authchain.tokens import dpop, htu, id_token, jws, nonce, presentation, replay

    expected = set()
    for module in (claims, task_token, hop, dpop, htu, replay, nonce, presentation, id_token, jws):
        expected |= set(module.__all__)
        for name in module.__all__:
            assert getattr(tokens, name) is getattr(module, name)
    assert set(tokens.__all__) == expected
    assert len(tokens.__all__) == len(expected)


def test_constants_have_their_protocol_values() -> None:
    assert tokens.TXN_TOKEN_TYP == "txntoken+jwt"
    assert tokens.TXN_TOKEN_TYPE_URN == "urn:ietf:params:oauth:token-type:txn_token"
    assert tokens.DEFAULT_MAX_DEPTH == 8
