"""``authchain trace`` and ``authchain findings`` (issue 5, "CLI"), and a chain rebuilt by a fresh
process that has nothing but the store file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _authority_world import LEGACY, RESEARCH, UPDATER, World, sqlite_file

from authchain.attribution import findings, trace
from authchain.cli import main
from authchain.errors import ScopeEscalationError


def _authchain(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``authchain`` script in a new interpreter: no state shared with this one."""
    script = Path(sys.executable).with_name("authchain")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "authchain.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_fresh_process_rebuilds_the_chain_from_the_store_alone(world: World) -> None:
    root, crm, tool, action = world.clean_task()
    expected = trace(world.store, index=action).to_dict()
    db = str(sqlite_file(world.store))
    world.store.close()  # nothing of this process's authority or store is left to lean on

    by_index = _authchain("trace", "--index", str(action), "--db", db, "--json")
    assert by_index.returncode == 0, by_index.stderr
    report = json.loads(by_index.stdout)
    assert report == expected
    assert [c["index"] for c in report["chain"]] == [root.log_index, crm.log_index, tool.log_index]
    assert report["initiator"]["id"] == root.claims.sub
    assert report["verdict"] == "complete"

    by_id = _authchain("trace", report["event"]["id"], "--db", db, "--json")
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(by_id.stdout) == expected


def test_fresh_process_reports_a_broken_path_with_exit_1(world: World) -> None:
    world.clean_task()
    unattributed = world.act(LEGACY, None, action="crm.bulk_sync")
    db = str(sqlite_file(world.store))
    done = _authchain("trace", "--index", str(unattributed), "--db", db, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["verdict"] == "broken"
    assert [f["code"] for f in report["findings"]] == ["UNATTRIBUTED_ACTION"]


def test_findings_command_lists_the_logs_findings_and_scopes_to_a_task(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    root, _, _, _ = world.clean_task()
    research = world.hop("spiffe://example.org/agent/planner", root, RESEARCH, "research:read")
    with pytest.raises(ScopeEscalationError) as caught:
        world.hop(RESEARCH, research, UPDATER, "crm:write")
    legacy = world.act(LEGACY, None, action="crm.bulk_sync")
    db = str(sqlite_file(world.store))

    assert main(["findings", "--db", db, "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    assert everything == [f.to_dict() for f in findings(world.store)]
    assert [(f["code"], f["evidence"]) for f in everything] == [
        ("SCOPE_ESCALATION", [caught.value.log_index]),
        ("UNATTRIBUTED_ACTION", [legacy]),
    ]

    assert main(["findings", "--task", root.txn, "--db", db, "--json"]) == 0
    scoped = json.loads(capsys.readouterr().out)
    assert [f["code"] for f in scoped] == ["SCOPE_ESCALATION"]

    assert main(["findings", "--db", db]) == 0
    readable = capsys.readouterr().out
    assert "SCOPE_ESCALATION" in readable and "UNATTRIBUTED_ACTION" in readable


def test_trace_of_a_missing_event_is_a_one_line_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(sqlite_file(world.store))
    assert main(["trace", "--index", "100000", "--db", db]) == 4
    err = capsys.readouterr().err
    assert err.startswith("authchain: error: not_found:") and err.count("\n") == 1
    assert main(["trace", "01a22400-0000-7000-8000-000000000000", "--db", db]) == 4
    assert "Traceback" not in capsys.readouterr().err


def test_trace_of_a_missing_store_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.db"
    assert main(["trace", "--index", "0", "--db", str(missing)]) == 3
    assert not missing.exists()  # reading never creates an empty log
    assert "authchain: error:" in capsys.readouterr().err


def test_trace_without_an_event_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--db", "unused.db"]) == 2
    assert "exactly one" in capsys.readouterr().err
