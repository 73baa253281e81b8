"""Reload swaps the whole policy set atomically (issue 3, item 3)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from authchain.errors import PolicyLoadError
from authchain.policy import Decision, PolicyEngine, PolicyRequest, PolicySettings

Build = Callable[..., PolicyRequest]
Write = Callable[..., Path]

# Set A allows the hop, set B denies it. Each set's decision is fully determined by its hash, so
# any decision whose parts come from two sets is detectable.
SET_A = {
    "a.cedar": '@id("a-allows") @reason("set A allows")\n'
    'permit (principal, action == Action::"delegate", resource);\n'
}
SET_B = {
    "b.cedar": '@id("b-permits") @reason("set B permits")\n'
    'permit (principal, action == Action::"delegate", resource);\n'
    '@id("b-denies") @reason("set B denies")\n'
    'forbid (principal, action == Action::"delegate", resource);\n'
}


def summary(decision: Decision) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    return (decision.effect, decision.policies, decision.reasons, decision.errors)


def test_reload_replaces_the_set(write_policies: Write, delegate: Build) -> None:
    a, b = write_policies(SET_A), write_policies(SET_B)
    engine = PolicyEngine.from_directory(a)
    hash_a = engine.policy_set_hash
    assert engine.decide(delegate()).allowed

    assert engine.reload(b) == engine.policy_set_hash != hash_a
    decision = engine.decide(delegate())
    assert summary(decision) == ("deny", ("b-denies",), ("set B denies",), ())
    assert engine.policy_ids == ("b-denies", "b-permits")
    assert engine.source == str(b)


def test_reload_without_a_directory_rereads_the_same_one(
    write_policies: Write, delegate: Build
) -> None:
    directory = write_policies(SET_A)
    engine = PolicyEngine.from_directory(directory)
    before = engine.policy_set_hash
    (directory / "b.cedar").write_text(SET_B["b.cedar"].replace("b-permits", "b-also"))
    assert engine.reload() != before
    assert "b-denies" in engine.decide(delegate()).policies


def test_reload_without_arguments_keeps_explicit_settings(
    write_policies: Write, delegate: Build
) -> None:
    directory = write_policies(SET_A)
    (directory / "settings.json").write_text('{"max_depth": 7}')
    engine = PolicyEngine.from_directory(directory, settings=PolicySettings(max_depth=3))
    engine.reload()
    assert engine.settings.max_depth == 3
    engine.reload(directory)  # a directory given without settings: its settings.json
    assert engine.settings.max_depth == 7


def test_failed_reload_keeps_the_current_set_in_force(
    write_policies: Write, delegate: Build
) -> None:
    engine = PolicyEngine.from_directory(write_policies(SET_A))
    before = engine.policy_set_hash
    broken = write_policies({"x.cedar": '@id("x") @reason("r") permit (principal, action'})
    with pytest.raises(PolicyLoadError, match="x.cedar"):
        engine.reload(broken)
    assert engine.policy_set_hash == before
    decision = engine.decide(delegate())
    assert decision.allowed and decision.policy_set_hash == before


def test_concurrent_reload_never_yields_a_mixed_decision(
    write_policies: Write, delegate: Build
) -> None:
    a, b = write_policies(SET_A), write_policies(SET_B)
    engine = PolicyEngine.from_directory(a)
    request = delegate()
    expected = {engine.policy_set_hash: summary(engine.decide(request))}
    engine.reload(b)
    expected[engine.policy_set_hash] = summary(engine.decide(request))
    engine.reload(a)
    assert len(expected) == 2 and len(set(expected.values())) == 2

    stop = threading.Event()
    seen: dict[str, int] = {}
    mixed: list[Decision] = []
    failures: list[BaseException] = []

    def decide_repeatedly() -> None:
        try:
            while not stop.is_set():
                decision = engine.decide(request)
                if expected.get(decision.policy_set_hash) != summary(decision):
                    mixed.append(decision)
                seen[decision.policy_set_hash] = seen.get(decision.policy_set_hash, 0) + 1
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread below
            failures.append(exc)

    deciders = [threading.Thread(target=decide_repeatedly) for _ in range(3)]
    # A short switch interval makes threads interleave far more often (more chances to catch a
    # torn read) and keeps the reloading thread from waiting out long GIL turns of the deciders.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for thread in deciders:
            thread.start()
        for i in range(80):
            engine.reload(b if i % 2 == 0 else a)
    finally:
        stop.set()
        for thread in deciders:
            thread.join()
        sys.setswitchinterval(interval)

    assert not failures
    assert not mixed, mixed[:3]
    # Both sets were in force while decisions were being made, so the check above had teeth.
    assert set(seen) == set(expected)
