"""The multi-process example runs: authority, two agents and a tool as separate processes on
loopback, ending with the complete trace of the tool's action."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from authchain.sdk import Outbox

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi_process" / "run.py"


@pytest.mark.slow
def test_multi_process_example_ends_with_the_complete_trace_of_the_tools_action(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--workdir", str(tmp_path), "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "planner: delegation refused: invalid_scope" in out
    assert "Who initiated it?            alice@example.org (user)" in out
    assert "Which identity executed it?  spiffe://example.org/tool/crm-updater (tool)" in out
    assert "1. spiffe://example.org/agent/planner" in out
    assert "2. spiffe://example.org/agent/crm" in out
    assert "verdict: complete" in out
    # The services flushed their outboxes when they were stopped: every report reached the log.
    for name in ("tool", "crm_agent"):
        outbox = Outbox(tmp_path / f"{name}.outbox.db")
        assert outbox.pending() == 0 and outbox.dead() == [], name
        outbox.close()
