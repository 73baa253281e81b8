"""The benchmark scripts stay importable the way they are run (``python bench/NAME.py`` puts
``bench/`` first on ``sys.path``), so a renamed API or a module shadowing the standard library (a
``bench/http.py`` hides the ``http`` package) is caught here rather than on the next benchmark run.
The scripts' ``main`` is not run: tests never measure time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_named_by_the_issues_exists() -> None:
    names = {p.stem for p in SCRIPTS}
    assert {"tokens", "policy", "audit", "authority", "http_api"} <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_script_imports_as_it_runs(script: Path) -> None:
    code = (
        "import runpy, sys; "
        f"sys.path.insert(0, {str(BENCH)!r}); "
        f"runpy.run_path({str(script)!r}, run_name='bench_import_check')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_authority_benchmarks_synthetic_tasks_are_valid_and_trace_complete(
    tmp_path: Path,
) -> None:
    # The big logs of bench/authority.py are the recorded template task replicated with fresh ids;
    # if the event format moves on, the replicas must still be valid records with complete traces,
    # or the trace latency it reports is measured on broken paths.
    code = (
        "import sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(BENCH)!r}); "
        "import authority as b; "
        "from authchain.attribution import trace; "
        f"w = b.World(Path({str(tmp_path)!r})); "
        "t = b.task_template(w); first = w.store.size(); "
        "w.store.append_many(b.replicate(t, first)); "
        "r = trace(w.store, index=w.store.size() - 1); "
        "print(r.verdict, len(r.chain), [f.code for f in r.findings])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["complete", "4", "[]"], done.stdout
