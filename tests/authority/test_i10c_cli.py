"""The command line against hostile log text, and ``findings --fail-on`` for CI.

A registered service reports actions with text built to lie on a terminal: rich markup that crashes
or hides (``[/]``, ``[conceal]``), emoji codes, terminal escapes that clear the screen or recolour,
bidi controls that reverse a line, a newline that forges a line of the report. The log refuses
control and format characters in an event's own fields (an action name), so those arrive in what
the reporter claims (the presenter it names, the initiator it claims), which every report shows.
Every command prints them visibly escaped, and still exactly (the escape of each character).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _authority_world import ALICE, LEGACY, SCHEDULER, World, sqlite_file

from authchain.cli import main

HOSTILE = {
    "markup-close": ("crm.[/]sync", "crm.[/]sync"),
    "markup-conceal": ("crm.[conceal]hidden[/conceal]", "crm.[conceal]hidden[/conceal]"),
    "emoji-code": ("crm.:warning:sync", "crm.:warning:sync"),
    "ansi-clear": ("crm.\x1b[2J\x1b[31msync", "crm.\\x1b[2J\\x1b[31msync"),
    "osc-link": ("crm.\x1b]8;;https://evil\x07x", "crm.\\x1b]8;;https://evil\\x07x"),
    "bidi-override": ("crm.\u202eetadpu", "crm.\\u202eetadpu"),
    "bidi-isolate": ("crm.\u2066x\u2069", "crm.\\u2066x\\u2069"),
    "zero-width": ("crm.up\u200bdate", "crm.up\\u200bdate"),
    "forged-line": ("crm.sync\nVerdict complete", "crm.sync\\nVerdict complete"),
    "carriage-return": ("crm.sync\rall clear", "crm.sync\\rall clear"),
}
_RAW = ("\x1b", "\u202e", "\u2066", "\u200b", "\r", "\x07")


def _no_raw_controls(out: str) -> None:
    for char in _RAW:
        assert char not in out, repr(char)


def _hostile_report(world: World, text: str) -> int:
    """A token-less report whose presenter and claimed initiator are ``text``; the action name
    carries it too when the log accepts it there (markup and emoji codes)."""
    printable = text.isprintable()
    return world.act(
        text,
        None,
        executor=LEGACY,
        action=f"crm.{text}" if printable else "crm.sync",
        claimed_initiator=f"{text}@example.org",
    )


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")


@pytest.mark.parametrize(("name", "shown"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_trace_prints_hostile_text_escaped(
    world: World, capsys: pytest.CaptureFixture[str], name: str, shown: str
) -> None:
    index = _hostile_report(world, name)
    db = str(sqlite_file(world.store))
    assert main(["trace", "--index", str(index), "--db", db]) == 1
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert f"requested by {shown} (claimed by the reporter)" in out
    assert f"{shown}@example.org (claimed)" in out
    assert "crm.sync\n" not in out  # no forged line


@pytest.mark.parametrize(("name", "shown"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_findings_prints_hostile_text_escaped(
    world: World, capsys: pytest.CaptureFixture[str], name: str, shown: str
) -> None:
    _hostile_report(world, name)
    assert main(["findings", "--db", str(sqlite_file(world.store))]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert f"requested by {shown} (claimed by the reporter)" in out
    assert f"(claimed to be on behalf of {shown}@example.org)" in out


@pytest.mark.parametrize(("name", "shown"), list(HOSTILE.values()), ids=list(HOSTILE))
def test_json_output_escapes_hostile_text_and_keeps_its_value(
    world: World, capsys: pytest.CaptureFixture[str], name: str, shown: str
) -> None:
    index = _hostile_report(world, name)
    db = str(sqlite_file(world.store))
    assert main(["trace", "--index", str(index), "--db", db, "--json"]) == 1
    traced = capsys.readouterr().out
    assert main(["findings", "--db", db, "--json"]) == 0
    listed = capsys.readouterr().out
    for out in (traced, listed):
        _no_raw_controls(out)
    # The JSON value is exactly what the log holds.
    assert name in json.loads(listed)[0]["message"]
    assert json.loads(traced)["claims"]["presenter"] == name


def test_demo_prints_a_hostile_log_path_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo\x1b[2J\u202e.db"
    assert main(["demo", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert "demo\\x1b[2J\\u202e.db" in out


def test_an_error_message_quoting_hostile_text_is_one_escaped_line(
    tmp_path: Path, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "cp\x1b[31m\u202e\nforged"
    db = str(sqlite_file(world.store))
    assert main(["audit", "verify", "--db", db, "--trusted-checkpoint", str(missing)]) == 3
    err = capsys.readouterr().err
    _no_raw_controls(err)
    assert err.count("\n") == 1 and "cp\\x1b[31m\\u202e\\nforged" in err


def test_audit_commands_print_store_text_escaped(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _hostile_report(world, HOSTILE["ansi-clear"][0])
    db = str(sqlite_file(world.store))
    for command in (["audit", "verify", "--db", db], ["audit", "checkpoint", "--db", db]):
        assert main(command) == 0
        _no_raw_controls(capsys.readouterr().out)
    assert main(["audit", "verify", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True


def test_plain_and_json_text_escape_every_unprintable_character() -> None:
    from authchain.cli._text import json_text, plain

    assert plain("a\u00a0b\u2028c\ud800d\U000e0001") == "a\\xa0b\\u2028c\\ud800d\\U000e0001"
    assert plain("two\nlines\x1b", lines=True) == "two\nlines\\x1b"
    assert plain("alice@example.org") == "alice@example.org"
    value = {"name": "x\u202e\x7f\u0085\U000e0001y", "é": "ü"}
    text = json_text(value)
    assert json.loads(text) == value
    assert "\\u202e" in text and "\\u007f" in text and "\\udb40\\udc01" in text and "ü" in text


# --------------------------------------------------------------------------------------------------
# findings --fail-on


def test_findings_fail_on_exits_1_when_a_finding_reaches_the_severity(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.act(LEGACY, None, action="crm.bulk_sync", claimed_initiator=ALICE)  # HIGH
    db = str(sqlite_file(world.store))
    assert main(["findings", "--db", db, "--fail-on", "high"]) == 1
    assert "UNATTRIBUTED_ACTION" in capsys.readouterr().out  # still printed
    assert main(["findings", "--db", db, "--fail-on", "HIGH", "--json"]) == 1
    assert [f["code"] for f in json.loads(capsys.readouterr().out)] == ["UNATTRIBUTED_ACTION"]
    assert main(["findings", "--db", db, "--fail-on", "medium"]) == 1
    assert main(["findings", "--db", db, "--fail-on", "critical"]) == 0
    assert main(["findings", "--db", db]) == 0  # without --fail-on, findings are not failure


def test_findings_fail_on_passes_a_clean_log_and_counts_info(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.clean_task()
    db = str(sqlite_file(world.store))
    assert main(["findings", "--db", db, "--fail-on", "info"]) == 0
    # An autonomous task is an INFO finding: only --fail-on info fails on it.
    world.authority.register_principal(SCHEDULER, kind="service", scopes=["crm:read"])
    world.start(initiator=SCHEDULER, scope="crm:read")
    assert main(["findings", "--db", db, "--fail-on", "low"]) == 0
    assert main(["findings", "--db", db, "--fail-on", "info"]) == 1
    capsys.readouterr()


def test_findings_fail_on_an_unknown_severity_is_a_usage_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(sqlite_file(world.store))
    assert main(["findings", "--db", db, "--fail-on", "severe"]) == 2
    capsys.readouterr()
