"""Decisions per second of the policy engine, against raw cedarpy on pre-parsed sets (issue 3).

Two policy sets: the default pack (9 policies) and the default pack plus 1,000 generated policies.
For each, the same mix of four requests (an allowed hop, a denied scope escalation, a task start
and an invocation) is decided by:

- ``decide``: ``PolicyEngine.decide(PolicyRequest)``, everything a caller pays: mapping the request
  to Cedar, evaluating, and building the ``Decision`` (UUIDv7 id, policies, reasons, hash);
- the floor, raw cedarpy: ``cedarpy.is_authorized`` with the same pre-parsed ``PolicySet``,
  ``Schema`` and base ``Entities`` handles and the request's Cedar inputs already serialised, so
  the floor is exactly the cedarpy work of one decision with none of the engine's Python.

The two alternate pass by pass in the same process (see ``measure``); the ratio is the median of
the per-round ratios, which the noise of a shared machine moves much less than either rate. For scale,
the figures also show raw cedarpy re-parsing policies, schema and entities on every request.

Run from the repository root: ``.venv/bin/python bench/policy.py`` (about half a minute).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cedarpy

from _harness import ops_per_second, write_results
from authchain.policy import (
    Party,
    PolicyEngine,
    PolicyRequest,
    default_policy_directory,
    schema_text,
)
from authchain.policy import engine as engine_module

ROUNDS = 7
PLANNER = "spiffe://example.org/agent/planner"
CRM = "spiffe://example.org/tool/crm"
NOW = 1_767_225_600


def requests() -> list[PolicyRequest]:
    planner = Party(PLANNER, "agent", "example.org", ("crm:read", "crm:write"))
    crm = Party(CRM, "tool", "example.org", ("crm:read", "crm:write"))
    alice = Party("alice@example.org", "user", "example.org", ("crm:read", "crm:write"))
    common: dict[str, Any] = {
        "task": "0190a000-0000-7000-8000-000000000001",
        "initiator": "alice@example.org",
        "purpose": "summarise the open deals",
        "time": NOW,
    }
    return [
        PolicyRequest(  # an allowed hop
            action="delegate",
            principal=planner,
            resource=crm,
            requested_scopes=("crm:read",),
            held_scopes=("crm:read", "crm:write"),
            chain=(PLANNER, CRM),
            depth=2,
            **common,
        ),
        PolicyRequest(  # a denied scope escalation that also needs approval
            action="delegate",
            principal=planner,
            resource=crm,
            requested_scopes=("crm:read", "crm:delete"),
            held_scopes=("crm:read",),
            chain=(PLANNER, CRM),
            depth=2,
            **common,
        ),
        PolicyRequest(  # a task start
            action="start_task",
            principal=alice,
            resource=Party(common["task"], "task", "example.org"),
            requested_scopes=("crm:read", "crm:write"),
            held_scopes=("crm:read", "crm:write"),
            chain=(PLANNER,),
            depth=1,
            **common,
        ),
        PolicyRequest(  # an invocation
            action="invoke",
            principal=planner,
            resource=crm,
            requested_scopes=("crm:read",),
            held_scopes=("crm:read",),
            chain=(PLANNER,),
            depth=1,
            **common,
        ),
    ]


def generated_policies(count: int) -> dict[str, str]:
    """``count`` schema-valid policies of the shapes operators write, in files of 100."""
    files: dict[str, list[str]] = {}
    for i in range(count):
        if i % 4 == 0:
            text = (
                f'@id("gen-invoke-{i}")\n@reason("service {i} may be read for its purpose")\n'
                'permit (principal is Agent, action == Action::"invoke", resource is Tool)\n'
                f'when {{ context.purpose == "purpose-{i}" && '
                f'context.requested_scopes.contains("svc{i}:read") }};\n'
            )
        elif i % 4 == 1:
            text = (
                f'@id("gen-block-{i}")\n@reason("initiator {i} is suspended")\n'
                "forbid (principal, action, resource)\n"
                f'when {{ context.initiator == "suspended-{i}@example.org" }};\n'
            )
        elif i % 4 == 2:
            text = (
                f'@id("gen-hop-{i}")\n@reason("team {i} may hand its scope on")\n'
                'permit (principal is Agent, action == Action::"delegate", resource)\n'
                f'when {{ context.held_scopes.contains("team{i}:work") && '
                f'context.requested_scopes.containsAll(["team{i}:work"]) }};\n'
            )
        else:
            text = (
                f'@id("gen-window-{i}")\n@reason("maintenance window {i}")\n'
                'forbid (principal, action == Action::"start_task", resource)\n'
                f"when {{ context.time >= {NOW + 86_400 * (i + 1)} && "
                f"context.time < {NOW + 86_400 * (i + 1) + 3_600} }};\n"
            )
        files.setdefault(f"generated_{i // 100:02d}.cedar", []).append(text)
    return {name: "\n".join(texts) for name, texts in files.items()}


def measure(
    engine: PolicyEngine, batch: list[PolicyRequest], *, number: int
) -> tuple[float, float, list[float]]:
    """Decide rate, floor rate (decisions/s, medians over rounds), and the per-round ratios.

    Within a round, one pass of the batch through ``decide`` and one through the floor alternate
    ``number`` times (which goes first alternates too), so both see the same machine: the same
    neighbours' load, the same cache and allocator state. Timing each side in its own long loop
    instead lets the floor, a tight loop over prepared inputs, keep caches warmer than any real
    caller would, and lets a neighbour's burst land on one side only.
    """
    loaded = engine._loaded
    prepared = [engine_module._cedar_inputs(r) for r in batch]
    policies, schema, base = loaded.cedar_policies, loaded.cedar_schema, loaded.base_entities
    # Both sides must reach the same verdicts, or the comparison is meaningless.
    for request, (cedar_request, delta) in zip(batch, prepared, strict=True):
        raw = cedarpy.is_authorized(
            cedar_request, policies, base.with_added_json_str(delta), schema
        )
        assert raw.allowed == engine.decide(request).allowed, request

    def decide_all() -> None:
        for request in batch:
            engine.decide(request)

    def raw_all() -> None:
        for cedar_request, delta in prepared:
            cedarpy.is_authorized(cedar_request, policies, base.with_added_json_str(delta), schema)

    for _ in range(max(1, number // 10)):  # warm up both paths
        decide_all()
        raw_all()
    clock = time.perf_counter_ns
    decisions = number * len(batch)
    decide_rates, raw_rates, ratios = [], [], []
    for _ in range(ROUNDS):
        decide_ns = raw_ns = 0
        for i in range(number):
            if i % 2:
                t0 = clock()
                decide_all()
                t1 = clock()
                raw_all()
                t2 = clock()
                decide_ns += t1 - t0
                raw_ns += t2 - t1
            else:
                t0 = clock()
                raw_all()
                t1 = clock()
                decide_all()
                t2 = clock()
                raw_ns += t1 - t0
                decide_ns += t2 - t1
        decide_rates.append(decisions / decide_ns * 1e9)
        raw_rates.append(decisions / raw_ns * 1e9)
        ratios.append(raw_ns / decide_ns)
    return statistics.median(decide_rates), statistics.median(raw_rates), ratios


def reparse_rate(engine: PolicyEngine, batch: list[PolicyRequest], *, number: int) -> float:
    """Raw cedarpy handed text every time: policy set, schema and entities re-parsed per request."""
    text = str(engine._loaded.cedar_policies)
    schema = schema_text()
    settings = engine._loaded.base_entities
    prepared = []
    for request in batch:
        cedar_request, delta = engine_module._cedar_inputs(request)
        entities = str(settings.with_added_json_str(delta))
        prepared.append((cedar_request, entities))

    def raw_text_all() -> None:
        for cedar_request, entities in prepared:
            cedarpy.is_authorized(cedar_request, text, entities, schema)

    return ops_per_second(raw_text_all, number=number, repeat=3) * len(batch)


def main() -> int:
    started = time.perf_counter()
    batch = requests()
    figures: dict[str, float] = {}
    ratios: dict[str, float] = {}

    default = PolicyEngine.default()
    decide, raw, per_round = measure(default, batch, number=200)
    figures["default_pack.policies"] = len(default.policy_ids)
    figures["default_pack.decide_per_s"] = decide
    figures["default_pack.raw_cedar_per_s"] = raw
    figures["default_pack.raw_cedar_reparse_per_s"] = reparse_rate(default, batch, number=40)
    ratios["decide_vs_raw_cedar.default_pack"] = statistics.median(per_round)
    ratios["raw_preparsed_vs_reparse.default_pack"] = (
        raw / figures["default_pack.raw_cedar_reparse_per_s"]
    )

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for entry in default_policy_directory().iterdir():
            if entry.name.endswith(".cedar"):
                (directory / entry.name).write_text(entry.read_text(encoding="utf-8"))
        for name, text in generated_policies(1000).items():
            (directory / name).write_text(text)
        load_start = time.perf_counter()
        large = PolicyEngine.from_directory(directory)
        figures["generated.load_and_validate_s"] = time.perf_counter() - load_start
    decide_l, raw_l, per_round_l = measure(large, batch, number=25)
    figures["generated.policies"] = len(large.policy_ids)
    figures["generated.decide_per_s"] = decide_l
    figures["generated.raw_cedar_per_s"] = raw_l
    ratios["decide_vs_raw_cedar.generated_1000"] = statistics.median(per_round_l)

    # The headline is the worse of the two: the engine's overhead weighs most on a small set.
    ratios["decide_vs_raw_cedar"] = min(
        ratios["decide_vs_raw_cedar.default_pack"], ratios["decide_vs_raw_cedar.generated_1000"]
    )
    figures["bench_seconds"] = time.perf_counter() - started
    write_results("policy", figures, ratios)
    return 0


if __name__ == "__main__":
    sys.exit(main())
