"""A log written by release 0.1 (version 1 events, one ``attrs`` object) still verifies, traces and
yields the same findings as it did then.

The fixture (tests/fixtures/v1_log/) is the demo's log as release 0.1 wrote it, with what release
0.1 printed for it: ``audit verify --json`` (verify.json), ``trace --json`` of every index
(traces.json), ``findings --json`` (findings.json) and every entry as JSON (entries.jsonl). The
database is copied before it is opened: SQLite may write beside a file it opens, and the fixture
must stay the bytes release 0.1 wrote.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from authchain._ids import uuid7
from authchain.attribution import findings, trace
from authchain.audit.records import ActionInvoked, HopGranted, TaskStarted, read
from authchain.audit.store import LogStore, open_store
from authchain.cli import main

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "v1_log"

# What this release adds to a trace report: the event's reported claims. Nothing else may differ.
ADDED_REPORT_KEYS = {"claims", "presenter", "refusal"}


def _stored(name: str) -> Any:
    return json.loads((FIXTURE / name).read_text(encoding="utf-8"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    copy = tmp_path / "demo.db"
    shutil.copyfile(FIXTURE / "demo.db", copy)
    return copy


@pytest.fixture
def store(db: Path) -> Any:
    opened = open_store(str(db), create=False)
    try:
        yield opened
    finally:
        opened.close()


def test_the_fixture_holds_only_version_1_events(store: LogStore) -> None:
    entries = [json.loads(line) for line in (FIXTURE / "entries.jsonl").read_text().splitlines()]
    assert store.size() == len(entries) == 18
    for row in entries:
        event = store.get(row["index"])
        assert event.to_dict() == row["event"]
        assert event.v is None and event.detail is None and event.reported is None
        assert read(event, row["index"]).version == 1


def test_a_release_0_1_log_verifies_as_it_did(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == _stored("verify.json")


def test_every_trace_of_a_release_0_1_log_is_what_release_0_1_printed(store: LogStore) -> None:
    expected: dict[str, dict[str, Any]] = _stored("traces.json")
    assert sorted(int(i) for i in expected) == list(range(store.size()))
    for index, then in expected.items():
        now = trace(store, index=int(index)).to_dict()
        assert set(now) - set(then) == ADDED_REPORT_KEYS, index
        assert {k: v for k, v in now.items() if k not in ADDED_REPORT_KEYS} == then, index


def test_the_trace_command_prints_what_release_0_1_printed(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    then = _stored("traces.json")["17"]
    assert main(["trace", "--index", "17", "--db", str(db), "--json"]) == 0
    now = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in now.items() if k not in ADDED_REPORT_KEYS} == then


def test_the_findings_of_a_release_0_1_log_are_what_release_0_1_printed(
    store: LogStore, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = _stored("findings.json")
    assert [f.to_dict() for f in findings(store)] == expected
    assert main(["findings", "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_a_version_1_claim_is_reported_as_a_claim_and_stays_out_of_the_record(
    store: LogStore,
) -> None:
    # Entry 13: the legacy sync job's write, which its service said was on behalf of Alice.
    record = read(store.get(13), 13)
    assert isinstance(record, ActionInvoked)
    assert record.reported == {"claimed_initiator": "alice@example.org"}
    assert record.unattributed is True and record.initiator is None
    assert trace(store, index=13).claims == {"claimed_initiator": "alice@example.org"}


def test_version_1_issuances_read_as_typed_records(store: LogStore) -> None:
    started = read(store.get(9), 9)
    assert isinstance(started, TaskStarted)
    assert (started.initiator, started.initiator_kind, started.depth) == (
        "alice@example.org",
        "user",
        1,
    )
    parent, granted = read(store.get(11), 11), read(store.get(16), 16)
    assert isinstance(parent, HopGranted) and isinstance(granted, HopGranted)
    assert (granted.parent_log, granted.parent_jti) == (11, parent.jti)
    assert granted.holder == "spiffe://example.org/tool/crm-updater"
    assert granted.reported is None


def _forge_v1(store: LogStore, like: int, **attrs: Any) -> int:
    """Append a copy of version 1 entry ``like`` with ``attrs`` changed, as a forger would."""
    event = store.get(like)
    return store.append(
        dataclasses.replace(event, id=uuid7(), attrs={**(event.attrs or {}), **attrs})
    )


def test_a_version_1_link_that_is_not_an_index_is_still_a_chain_gap(store: LogStore) -> None:
    forged = _forge_v1(store, 17, log="16")
    report = trace(store, index=forged)
    assert report.verdict == "broken" and report.chain == ()
    assert [(f.code, f.message) for f in report.findings] == [
        ("CHAIN_GAP", "the token names no issuance entry in the log"),
        ("UNATTRIBUTED_ACTION", "the action has no verifiable authority path"),
    ]
    assert report.claims == {"log": "16"}  # kept, as what the entry says, and nothing more


def test_a_version_1_link_to_a_registration_is_still_a_chain_gap(store: LogStore) -> None:
    forged = _forge_v1(store, 17, log=3)
    report = trace(store, index=forged)
    assert report.verdict == "broken"
    gap = next(f for f in report.findings if f.code == "CHAIN_GAP")
    assert gap.evidence == (3, forged)
