"""The engine keeps the Cedar entities of recently seen parties (hops repeat the same workloads);
the cache must never change a decision, must stay bounded, and must not outlive a reload."""

from __future__ import annotations

from pathlib import Path

from conftest import delegate_request

from authchain.policy import Party, PolicyEngine, default_policy_directory
from authchain.policy import _loading as loading_module


def test_repeated_parties_give_the_same_decisions_as_fresh_ones() -> None:
    engine = PolicyEngine.default()
    allowed = delegate_request()
    # Same parties, but the principal no longer holds what it delegates: the cached entities of
    # the first request must not carry its answer over.
    widened = delegate_request(requested_scopes=("crm:delete",))
    other_scopes = delegate_request(
        principal=Party(allowed.principal.id, "agent", "example.org", ("crm:read",)),
        requested_scopes=("crm:write",),
        held_scopes=("crm:read",),
    )
    first = [engine.decide(r).effect for r in (allowed, widened, other_scopes)]
    again = [engine.decide(r).effect for r in (allowed, widened, other_scopes)]
    fresh = [PolicyEngine.default().decide(r).effect for r in (allowed, widened, other_scopes)]
    assert first == again == fresh == ["allow", "deny", "deny"]


def test_the_cache_is_bounded() -> None:
    engine = PolicyEngine.default()
    limit = loading_module._ENTITIES_CACHE_SIZE
    for n in range(limit + 10):
        request = delegate_request(
            resource=Party(f"spiffe://example.org/tool/t{n}", "tool", "example.org", ("crm:read",))
        )
        assert engine.decide(request).allowed
    assert 0 < len(engine._loaded.entities_cache) <= limit


def test_a_reload_starts_with_an_empty_cache(tmp_path: Path) -> None:
    engine = PolicyEngine.from_directory(default_policy_directory())
    engine.decide(delegate_request())
    assert engine._loaded.entities_cache
    engine.reload()
    assert not engine._loaded.entities_cache
    assert engine.decide(delegate_request()).allowed
