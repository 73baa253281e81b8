"""Editing the log behind the authority's back (issue 5, "Tests"): one hop's stored event changed in
the SQLite file turns the trace of every action under it to ``broken`` with ``LOG_INTEGRITY``, and
``authchain trace`` exits 1. The edits are made the way an insider with file access would: an SQL
UPDATE of the stored leaf bytes (``entries.leaf``), leaving the stored hashes alone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from _authority_world import LEGACY, World, sqlite_file

from authchain.attribution import findings, trace
from authchain.cli import main


def _edit_leaf(path: Path, index: int, old: bytes, new: bytes) -> None:
    conn = sqlite3.connect(path)
    try:
        (leaf,) = conn.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        edited = bytes(leaf).replace(old, new)
        assert edited != bytes(leaf), "the edit must change the stored event"
        conn.execute("UPDATE entries SET leaf = ? WHERE idx = ?", (edited, index))
        conn.commit()
    finally:
        conn.close()


def test_editing_a_hops_policy_turns_the_trace_broken_with_log_integrity(world: World) -> None:
    _, crm, _, action = world.clean_task()
    assert trace(world.store, index=action).verdict == "complete"

    # The insider rewrites which policy allowed the planner -> CRM agent hop. The edit keeps the
    # event canonical, so the entry still parses: only the Merkle proof can tell.
    _edit_leaf(
        sqlite_file(world.store),
        crm.log_index,
        b'"delegate-held-scopes"',
        b'"delegate-held-scopez"',
    )
    report = trace(world.store, index=action)
    assert report.verdict == "broken"
    assert [(f.code, f.evidence) for f in report.findings] == [("LOG_INTEGRITY", (crm.log_index,))]
    assert report.chain[1].index == crm.log_index  # the path is still shown, flagged


def test_editing_a_hop_is_found_by_findings_over_the_log(world: World) -> None:
    _, crm, _, _ = world.clean_task()
    _edit_leaf(sqlite_file(world.store), crm.log_index, b'"crm:read"', b'"crm:reaD"')
    got = [(f.code, list(f.evidence)) for f in findings(world.store)]
    assert got == [("LOG_INTEGRITY", [crm.log_index])]


def test_editing_an_unrelated_entry_leaves_other_traces_complete(world: World) -> None:
    _, _, _, action = world.clean_task()
    legacy = world.act(LEGACY, None, action="crm.bulk_sync")
    _edit_leaf(sqlite_file(world.store), legacy, b"crm.bulk_sync", b"crm.bulk_sink")
    # The action's path does not include the edited entry, so its own trace still verifies...
    assert trace(world.store, index=action).verdict == "complete"
    # ...while the log as a whole does not.
    assert ("LOG_INTEGRITY", (legacy,)) in [(f.code, f.evidence) for f in findings(world.store)]


def test_hop_edited_into_garbage_is_log_integrity_and_other_findings_survive(
    world: World,
) -> None:
    _, crm, tool, action = world.clean_task()
    unattributed = world.act(LEGACY, None, action="crm.bulk_sync")
    conn = sqlite3.connect(sqlite_file(world.store))
    conn.execute(
        "UPDATE entries SET leaf = ? WHERE idx = ?", (b'{"not":"an event"}', crm.log_index)
    )
    conn.commit()
    conn.close()

    report = trace(world.store, index=action)
    assert report.verdict == "broken"
    assert ("LOG_INTEGRITY", (crm.log_index,)) in [(f.code, f.evidence) for f in report.findings]
    got = [(f.code, list(f.evidence)) for f in findings(world.store)]
    # The next hop's parent issuance is gone with the edited entry: a gap, found by the scan too.
    assert got == [
        ("LOG_INTEGRITY", [crm.log_index]),
        ("CHAIN_GAP", [tool.log_index]),
        ("UNATTRIBUTED_ACTION", [unattributed]),
    ]


def test_forged_checkpoint_signature_breaks_every_trace(world: World) -> None:
    _, _, _, action = world.clean_task()
    conn = sqlite3.connect(sqlite_file(world.store))
    size, note = conn.execute(
        "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"
    ).fetchone()
    body, _, signature = note.rpartition("— ")
    name, _, sig = signature.partition(" ")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    conn.execute(
        "UPDATE checkpoints SET note = ? WHERE size = ?", (f"{body}— {name} {flipped}", size)
    )
    conn.commit()
    conn.close()
    report = trace(world.store, index=action)
    assert report.verdict == "broken"
    assert [f.code for f in report.findings] == ["LOG_INTEGRITY"]
    assert report.log["checkpoint"] is None  # no checkpoint vouches for this report
    # What the log claims is still shown, for the investigator to weigh.
    assert report.initiator is not None and len(report.chain) == 3
    # A forged checkpoint is LOG_INTEGRITY over the whole log too.
    assert "LOG_INTEGRITY" in [f.code for f in findings(world.store)]


def test_trace_command_exits_1_on_a_broken_path_and_0_on_a_complete_one(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _, crm, _, action = world.clean_task()
    db = str(sqlite_file(world.store))
    assert main(["trace", "--index", str(action), "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "complete"

    _edit_leaf(sqlite_file(world.store), crm.log_index, b'"crm:write"', b'"crm:wrote"')
    assert main(["trace", "--index", str(action), "--db", db, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "broken"
    assert [f["code"] for f in out["findings"]] == ["LOG_INTEGRITY"]
    assert out["findings"][0]["evidence"] == [crm.log_index]
    # The human-readable form exits 1 too.
    assert main(["trace", "--index", str(action), "--db", db]) == 1
    assert "broken" in capsys.readouterr().out
