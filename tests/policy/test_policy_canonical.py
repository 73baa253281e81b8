"""A policy set travels as its canonical document (the exact bytes its ``policy_set_hash`` covers):
a tool evaluates ``invoke`` with the authority's current set, an investigator re-evaluates a
recorded decision. What is rebuilt decides exactly as the original; anything else is refused."""

from __future__ import annotations

import orjson
import pytest
from conftest import delegate_request

from authchain.errors import ConfigurationError, PolicyLoadError
from authchain.policy import PolicyEngine


def test_the_canonical_document_rebuilds_a_set_that_decides_the_same(
    default_engine: PolicyEngine,
) -> None:
    rebuilt = PolicyEngine.from_canonical(
        default_engine.canonical_policy_set(), expected_hash=default_engine.policy_set_hash
    )
    assert rebuilt.policy_set_hash == default_engine.policy_set_hash
    assert rebuilt.policy_ids == default_engine.policy_ids
    for request in (
        delegate_request(),
        delegate_request(requested_scopes=("crm:admin",)),
        delegate_request(depth=99),
    ):
        a, b = default_engine.decide(request), rebuilt.decide(request)
        assert (a.effect, a.policies, a.reasons, a.policy_set_hash) == (
            b.effect,
            b.policies,
            b.reasons,
            b.policy_set_hash,
        )


def test_a_document_that_is_not_the_expected_set_is_refused(default_engine: PolicyEngine) -> None:
    document = orjson.loads(default_engine.canonical_policy_set())
    document["policies"][0]["annotations"]["reason"] = "rewritten after the fact"
    edited = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    with pytest.raises(PolicyLoadError, match="not the expected"):
        PolicyEngine.from_canonical(edited, expected_hash=default_engine.policy_set_hash)


def test_a_document_that_is_not_canonical_is_refused(default_engine: PolicyEngine) -> None:
    document = orjson.loads(default_engine.canonical_policy_set())
    spaced = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    with pytest.raises(PolicyLoadError, match="canonical"):
        PolicyEngine.from_canonical(spaced)


def test_a_policy_that_does_not_validate_against_the_schema_is_refused(
    default_engine: PolicyEngine,
) -> None:
    document = orjson.loads(default_engine.canonical_policy_set())
    document["policies"][0]["conditions"] = [
        {
            "kind": "when",
            "body": {
                "==": {
                    "left": {".": {"left": {"Var": "context"}, "attr": "nope"}},
                    "right": {"Value": 1},
                }
            },
        }
    ]
    with pytest.raises(PolicyLoadError, match="validate"):
        PolicyEngine.from_canonical(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


@pytest.mark.parametrize("junk", [b"", b"[]", b'{"format": "other"}', b"\xff"])
def test_junk_is_not_a_policy_set(junk: bytes) -> None:
    with pytest.raises(PolicyLoadError):
        PolicyEngine.from_canonical(junk)


def test_a_set_built_from_its_document_cannot_reload_from_nowhere(
    default_engine: PolicyEngine,
) -> None:
    rebuilt = PolicyEngine.from_canonical(default_engine.canonical_policy_set())
    with pytest.raises(ConfigurationError):
        rebuilt.reload()
