"""Shared by the benchmark scripts: timing with medians, and the results file and table.

Every benchmark measures its floor (raw signature verify, raw SQLite insert, ...) in the same run and
reports ratios against it, because the machines are shared and noisy: absolute numbers move from run
to run, ratios much less. Each script writes ``bench/results/NAME.json`` as
``{"figures": {...}, "ratios": {...}}`` and prints a readable table.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def ops_per_second(
    fn: Callable[[], Any], *, number: int, repeat: int = 5, warmup: int = 1
) -> float:
    """Median rate over ``repeat`` runs of ``number`` calls each."""
    for _ in range(warmup):
        for _ in range(max(1, number // 10)):
            fn()
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        rates.append(number / elapsed)
    return statistics.median(rates)


def latencies_us(fn: Callable[[], Any], *, number: int) -> list[float]:
    """Per-call latencies in microseconds, sorted."""
    out = []
    for _ in range(number):
        start = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - start) / 1000)
    out.sort()
    return out


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def write_results(name: str, figures: dict[str, float], ratios: dict[str, float]) -> Path:
    """Write ``bench/results/NAME.json`` and print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    clean_f = {k: round(v, 3) for k, v in figures.items()}
    clean_r = {k: round(v, 3) for k, v in ratios.items()}
    path.write_text(json.dumps({"figures": clean_f, "ratios": clean_r}, indent=2) + "\n")
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"bench/{name}")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for k, v in clean_f.items():
            table.add_row(k, f"{v:,.3f}")
        for k, v in clean_r.items():
            table.add_row(f"ratio {k}", f"{v:.3f}")
        Console().print(table)
    except ImportError:  # pragma: no cover
        print(json.dumps({"figures": clean_f, "ratios": clean_r}, indent=2))
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path
