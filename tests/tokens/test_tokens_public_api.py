"""The public surface of the tokens package is pinned, so an accidental export is noticed."""

from __future__ import annotations

import authchain.tokens as tokens
from authchain.tokens import hop, task_token


def test_task_token_module_exports() -> None:
    assert sorted(task_token.__all__) == [
        "FrozenDict",
        "FrozenList",
        "MAX_CHAIN_DEPTH",
        "MAX_SKEW",
        "TXN_TOKEN_TYP",
        "TXN_TOKEN_TYPE_URN",
        "TaskTokenClaims",
        "TrustList",
        "VerifiedTaskToken",
        "act_from_chain",
        "chain_from_act",
        "freeze_json",
        "mint_task_token",
        "parse_scope",
        "verify_task_token",
    ]


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
    from authchain.tokens import dpop, htu, id_token, jws, nonce, replay

    expected = set()
    for module in (task_token, hop, dpop, htu, replay, nonce, id_token, jws):
        expected |= set(module.__all__)
        for name in module.__all__:
            assert getattr(tokens, name) is getattr(module, name)
    assert set(tokens.__all__) == expected
    assert len(tokens.__all__) == len(expected)


def test_constants_have_their_protocol_values() -> None:
    assert tokens.TXN_TOKEN_TYP == "txntoken+jwt"
    assert tokens.TXN_TOKEN_TYPE_URN == "urn:ietf:params:oauth:token-type:txn_token"
    assert tokens.DEFAULT_MAX_DEPTH == 8
