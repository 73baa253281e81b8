"""Crash safety: SIGKILL at any moment during appends leaves a log that verifies and holds every
acknowledged entry (DESIGN.md: an append is acknowledged only once it is durable)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from authchain.audit.store.sqlite import SQLiteStore

CHILD = Path(__file__).parent / "_audit_crash_child.py"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_during_appends_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    rng = random.Random(8785)
    acknowledged: dict[int, str] = {}
    for _round in range(6):
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        # Let it run for a random number of acknowledgements, then kill it mid-stream.
        for _ in range(rng.randrange(20, 400)):
            index, event_id = child.stdout.readline().split()
            acknowledged[int(index)] = event_id
        child.send_signal(signal.SIGKILL)
        # Acknowledgements already written before the kill count too.
        for line in child.stdout:
            index, event_id = line.split()
            acknowledged[int(index)] = event_id
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL

        with SQLiteStore(db, create=False) as store:
            result = store.verify()
            assert result.size >= max(acknowledged) + 1
            for index, event_id in acknowledged.items():
                assert store.get(index).id == event_id
