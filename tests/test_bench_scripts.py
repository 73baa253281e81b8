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
