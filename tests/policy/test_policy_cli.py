"""``authchain policy check`` and ``authchain policy explain`` (issue 3, item 5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from authchain.cli import main
from authchain.policy import PolicyEngine, PolicyRequest, default_policy_directory

Build = Callable[..., PolicyRequest]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_default_pack_prints_hash_and_ids(capsys: pytest.CaptureFixture[str]) -> None:
    engine = PolicyEngine.default()
    code, out, err = run(capsys, "policy", "check", str(default_policy_directory()))
    assert code == 0, err
    assert engine.policy_set_hash in out
    for policy_id in engine.policy_ids:
        assert policy_id in out


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check", str(default_policy_directory()), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["policy_set_hash"] == PolicyEngine.default().policy_set_hash
    assert [p["id"] for p in report["policies"]] == list(PolicyEngine.default().policy_ids)
    assert all(p["reason"] and p["file"].endswith(".cedar") for p in report["policies"])
    assert report["settings"]["max_depth"] == 8


def test_check_refuses_an_invalid_set_in_one_line_naming_the_file(
    capsys: pytest.CaptureFixture[str], write_policies: Callable[..., Path]
) -> None:
    directory = write_policies(
        {"bad.cedar": '@id("b") @reason("r") permit (principal, action, resource) when { x };'}
    )
    code, out, err = run(capsys, "policy", "check", str(directory))
    assert code == 6  # the PolicyError family
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "policy_invalid" in err and str(directory / "bad.cedar") in err


def test_check_takes_a_settings_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    settings = tmp_path / "strict.json"
    settings.write_text('{"max_depth": 2}')
    code, out, _ = run(
        capsys, "policy", "check", str(default_policy_directory()), "--settings", str(settings)
    )
    assert code == 0
    assert (
        json.loads(
            run(
                capsys,
                "policy",
                "check",
                str(default_policy_directory()),
                "--json",
                "--settings",
                str(settings),
            )[1]
        )["settings"]["max_depth"]
        == 2
    )


def write_request(tmp_path: Path, request: PolicyRequest) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request.to_dict()))
    return path


def test_explain_an_allowed_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, delegate: Build
) -> None:
    path = write_request(tmp_path, delegate())
    code, out, _ = run(capsys, "policy", "explain", "--request", str(path))
    assert code == 0
    assert "effect: allow" in out
    assert "delegate-held-scopes: an actor may delegate scopes it holds" in out


def test_explain_a_denied_request_as_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, delegate: Build
) -> None:
    path = write_request(tmp_path, delegate(requested_scopes=("payments:write",)))
    code, out, _ = run(capsys, "policy", "explain", "--request", str(path), "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["effect"] == "deny"
    assert decision["policies"] == ["delegate-unheld-scopes", "sensitive-scope-needs-approval"]
    assert decision["reasons"][1] == "a scope marked sensitive needs a recorded human approval"
    assert decision["policy_set_hash"] == PolicyEngine.default().policy_set_hash


def test_explain_shows_evaluation_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, start_task: Build, delegate: Build
) -> None:
    path = write_request(tmp_path, start_task(resource=delegate().resource))
    code, out, _ = run(capsys, "policy", "explain", "--request", str(path))
    assert code == 0
    assert "effect: deny" in out
    assert "fail closed" in out
    assert "errors:" in out and "not valid for" in out


def test_explain_against_another_policy_directory(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    delegate: Build,
    write_policies: Callable[..., Path],
) -> None:
    directory = write_policies(
        {"f.cedar": '@id("no-hops") @reason("no hops today") forbid (principal, action, resource);'}
    )
    path = write_request(tmp_path, delegate())
    code, out, _ = run(
        capsys, "policy", "explain", "--request", str(path), "--policies", str(directory), "--json"
    )
    assert code == 0
    assert json.loads(out)["policies"] == ["no-hops"]


@pytest.mark.parametrize(
    ("content", "code", "complaint"),
    [
        ("{", 1, "malformed"),
        ('{"action": "delegate"}', 1, "malformed"),
        (None, 3, "cannot read request"),
    ],
)
def test_explain_refuses_a_bad_request_file_in_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str | None,
    code: int,
    complaint: str,
) -> None:
    path = tmp_path / "request.json"
    if content is not None:
        path.write_text(content)
    exit_code, out, err = run(capsys, "policy", "explain", "--request", str(path))
    assert exit_code == code
    assert out == ""
    assert err.count("\n") == 1 and complaint in err and str(path) in err
