"""Issue 10: a participant with a valid key lies, over real HTTP, and the evidence must hold.

Every test is one attack against ``authchain serve``; each must end refused or flagged, and no
honest action may be recorded as false evidence. The investigator's view is the log alone."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
import subprocess
import time
from typing import Any

import httpx
import orjson
import pytest
from conftest import ADMIN, ALICE, AUTHCHAIN, Actor, Authority, _free_port

from authchain.audit.records import ActionInvoked, ActionRefused, HopDenied, TaskDenied
from authchain.errors import RemoteError
from authchain.identity.keys import SigningKey
from authchain.tokens.dpop import create_proof

TOOL_URL = "https://crm-api.example.org"


def _names(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def _present(holder: Actor, token: str, url: str, *, method: str = "POST") -> str:
    return create_proof(holder.key, htm=method, htu=url, now=int(time.time()), access_token=token)


def _report(
    reporter: Actor,
    *,
    token: str | None,
    proof: str | None,
    url: str = TOOL_URL + "/accounts/acme",
    method: str = "POST",
    **extra: Any,
) -> int:
    body: dict[str, Any] = {
        "action": "crm.update",
        "resource": "crm://accounts/acme",
        "htm": method,
        "htu": url,
        "outcome": "succeeded",
        "performed_at": int(time.time()),
    }
    if token is not None:
        body["token"] = token
        body["proof"] = proof
    body.update(extra)
    return reporter.client.report(body)


def _mentions_as_proven(finding: Any, who: str) -> bool:
    """Does the finding name ``who`` without saying it is only a claim?"""
    text: str = finding.message
    at = text.find(who)
    while at != -1:
        after = text[at + len(who) : at + len(who) + 40]
        if "claim" not in after:
            return True
        at = text.find(who, at + 1)
    return False


# --------------------------------------------------------------------------------------------------
# 1. Registered scopes are a ceiling.


def test_an_omitted_scope_cannot_widen_a_hop_beyond_the_receivers_registration(
    authority: Authority,
) -> None:
    planner = authority.register(
        _names("planner"), "agent", ["research:read", "crm:read", "crm:write"]
    )
    research = authority.register(_names("research"), "agent", ["research:read"])
    root = planner.client.start_task(authority.id_token(), scope="research:read crm:read crm:write")
    handed = planner.client.delegate(root, to=research.id)  # no scope named
    assert set(handed.scope) <= {"research:read"}
    with pytest.raises(RemoteError) as caught:
        planner.client.delegate(root, to=research.id, scope="crm:write")
    assert caught.value.error == "invalid_scope" and caught.value.log_index is not None
    denied = authority.record(caught.value.log_index)
    assert isinstance(denied, HopDenied) and denied.error == "scope_escalation"
    codes = {(f.code, tuple(f.evidence)) for f in authority.findings()}
    assert ("SCOPE_ESCALATION", (caught.value.log_index,)) in codes


def test_an_agent_cannot_start_its_own_task_with_scope_beyond_its_registration(
    authority: Authority,
) -> None:
    research = authority.register(_names("research"), "agent", ["research:read"])
    started = research.client.start_task(authority.id_token())  # the user grants more
    assert set(started.scope) <= {"research:read"}
    with pytest.raises(RemoteError) as caught:
        research.client.start_task(authority.id_token(), scope="crm:read crm:write")
    assert caught.value.error == "invalid_scope" and caught.value.log_index is not None


# --------------------------------------------------------------------------------------------------
# 2 and 3. Nothing a reporter supplies is evidence.


def test_a_fabricated_action_with_a_forged_log_link_does_not_trace_complete(
    authority: Authority,
) -> None:
    planner = authority.register(_names("planner"), "agent", ["crm:read", "crm:write"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    root = planner.client.start_task(authority.id_token(), scope="crm:write")
    assert root.log_index is not None
    index = _report(
        tool,
        token="not.a.token",
        proof=_present(planner, "not.a.token", TOOL_URL + "/accounts/acme"),
        attrs={"log": root.log_index, "jti": "forged"},
    )
    report = authority.trace(index)
    assert report.verdict == "broken"
    assert report.initiator is None or report.initiator.get("id") != ALICE
    assert any(index in f.evidence for f in authority.findings())


def test_a_token_less_report_cannot_frame_another_agent(authority: Authority) -> None:
    victim = authority.register(_names("victim"), "agent", ["crm:read"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    index = _report(
        tool,
        token=None,
        proof=None,
        presenter=victim.id,
        attrs={
            "error": "key_binding_mismatch",
            "holder": victim.id,
            "claimed_initiator": ALICE,
            "held_scope": ["crm:read"],
        },
    )
    record = authority.record(index)
    assert record.actor is None and record.error is None
    for finding in authority.findings():
        if index in finding.evidence:
            assert finding.code not in ("TOKEN_REPLAY", "SCOPE_ESCALATION"), finding.message
            assert not _mentions_as_proven(finding, victim.id), finding.message


# --------------------------------------------------------------------------------------------------
# 4 and 7. Reports only about presentations made to the reporter, while the token could be used.


def test_a_third_workload_reporting_a_tools_presentation_first_cannot_frame_the_tool(
    authority: Authority,
) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:write"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    nosy = authority.register(
        _names("nosy"), "service", ["crm:write"], endpoints=["https://nosy.example.org"]
    )
    token = agent.client.start_task(authority.id_token(), scope="crm:write").access_token
    url = TOOL_URL + "/accounts/acme"
    proof = _present(agent, token, url)
    first = _report(nosy, token=token, proof=proof, url=url)
    honest = _report(tool, token=token, proof=proof, url=url)
    assert authority.record(first).actor is None  # not a presentation made to it
    record = authority.record(honest)
    assert isinstance(record, ActionInvoked)
    assert (record.actor, record.unattributed) == (agent.id, None)
    assert authority.trace(honest).verdict == "complete"
    for finding in authority.findings():
        assert not (honest in finding.evidence and finding.severity in ("critical", "high"))


def test_an_honest_tool_whose_clock_runs_ahead_is_still_attributed(authority: Authority) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:write"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    token = agent.client.start_task(authority.id_token(), scope="crm:write").access_token
    for ahead in (1, 30):
        url = TOOL_URL + f"/accounts/{ahead}"
        index = _report(
            tool,
            token=token,
            proof=_present(agent, token, url),
            url=url,
            performed_at=int(time.time()) + ahead,
        )
        record = authority.record(index)
        assert (record.actor, record.unattributed) == (agent.id, None), ahead


# --------------------------------------------------------------------------------------------------
# 5. Single use survives a restart; the report's body is bound to the reporter's proof.


def test_a_token_endpoint_proof_replayed_after_a_restart_is_refused(authority: Authority) -> None:
    planner = authority.register(_names("planner"), "agent", ["crm:read"])
    proof = create_proof(
        planner.key, htm="POST", htu=authority.url + "/token", now=int(time.time())
    )
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
        "scope": "crm:read",
    }
    first = httpx.post(
        authority.url + "/token",
        data={**form, "subject_token": authority.id_token()},
        headers={"DPoP": proof},
    )
    assert first.status_code == 200, first.text
    authority.restart()
    again = httpx.post(
        authority.url + "/token",
        data={**form, "subject_token": authority.id_token()},
        headers={"DPoP": proof},
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_dpop_proof"
    assert isinstance(again.json().get("log_index"), int)


def test_an_acknowledged_report_retried_after_a_restart_is_recorded_once(
    authority: Authority,
) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:write"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    token = agent.client.start_task(authority.id_token(), scope="crm:write").access_token
    url = TOOL_URL + "/accounts/retry"
    body = {
        "action": "crm.update",
        "resource": "crm://accounts/retry",
        "token": token,
        "proof": _present(agent, token, url),
        "htm": "POST",
        "htu": url,
        "outcome": "succeeded",
        "performed_at": int(time.time()),
        "report_id": _names("report"),
    }
    first = tool.client.report(body)
    size = authority.size()
    authority.restart()
    assert tool.client.report(body) == first
    assert authority.size() == size
    with pytest.raises(RemoteError) as conflict:
        tool.client.report({**body, "action": "crm.delete"})
    assert conflict.value.status == 409


def test_a_report_body_that_is_not_the_one_the_proof_signed_is_refused(
    authority: Authority,
) -> None:
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    signed = orjson.dumps({"action": "crm.read", "resource": "crm://a", "outcome": "succeeded"})
    swapped = orjson.dumps({"action": "crm.delete", "resource": "crm://a", "outcome": "succeeded"})

    def digest(body: bytes) -> str:
        return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"

    url = authority.url + "/events"
    for header_body, proof_body in ((signed, signed), (swapped, signed)):
        proof = create_proof(
            tool.key,
            htm="POST",
            htu=url,
            now=int(time.time()),
            content_digest=digest(proof_body),
        )
        response = httpx.post(
            url,
            content=swapped,
            headers={
                "DPoP": proof,
                "Content-Digest": digest(header_body),
                "Content-Type": "application/json",
            },
        )
        assert 400 <= response.status_code < 500, response.text


# --------------------------------------------------------------------------------------------------
# 8. ID tokens: one task each, and fresh.


def test_an_id_token_starts_one_task_only(authority: Authority) -> None:
    a = authority.register(_names("a"), "agent", ["crm:read"])
    b = authority.register(_names("b"), "agent", ["crm:read"])
    id_token = authority.id_token()
    a.client.start_task(id_token, scope="crm:read")
    for client in (a.client, b.client):
        with pytest.raises(RemoteError) as caught:
            client.start_task(id_token, scope="crm:read")
        assert caught.value.error == "invalid_grant" and caught.value.log_index is not None
        assert isinstance(authority.record(caught.value.log_index), TaskDenied)


def test_an_id_token_older_than_ten_minutes_is_refused(authority: Authority) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:read"])
    stale = authority.idp.issue(ALICE, audience=authority.url, now=int(time.time()) - 1800)
    with pytest.raises(RemoteError) as caught:
        agent.client.start_task(stale, scope="crm:read")
    assert caught.value.error == "invalid_grant" and caught.value.log_index is not None


# --------------------------------------------------------------------------------------------------
# 10. Every refusal at /token is recorded, hostile strings included.


@pytest.mark.parametrize(
    "audience",
    ["spiffe://example.org/agent/x\x07y", "spiffe://example.org/agent/" + "x" * 3000, "a\u202eb"],
)
def test_a_refusal_for_a_hostile_audience_is_recorded(authority: Authority, audience: str) -> None:
    planner = authority.register(_names("planner"), "agent", ["crm:read"])
    root = planner.client.start_task(authority.id_token(), scope="crm:read")
    with pytest.raises(RemoteError) as caught:
        planner.client.delegate(root, to=audience, scope="crm:read")
    assert caught.value.log_index is not None
    assert isinstance(authority.record(caught.value.log_index), HopDenied)


@pytest.mark.parametrize("sub", ["alice\u202e@example.org", "alice@example.org\nadmin"])
def test_a_refusal_for_an_id_token_with_a_hostile_subject_is_recorded(
    authority: Authority, sub: str
) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:read"])
    with pytest.raises(RemoteError) as caught:
        agent.client.start_task(authority.id_token(sub), scope="crm:read")
    assert caught.value.log_index is not None
    assert isinstance(authority.record(caught.value.log_index), TaskDenied)


# --------------------------------------------------------------------------------------------------
# 11. A key re-registered ends what was bound to the old one.


def test_a_token_bound_to_a_replaced_key_is_not_attributed(authority: Authority) -> None:
    name = _names("agent")
    agent = authority.register(name, "agent", ["crm:write"])
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    token = agent.client.start_task(authority.id_token(), scope="crm:write").access_token
    authority.register(name, "agent", ["crm:write"], key=SigningKey.generate())
    url = TOOL_URL + "/accounts/old-key"
    index = _report(tool, token=token, proof=_present(agent, token, url), url=url)
    record = authority.record(index)
    assert record.unattributed is True or isinstance(record, ActionRefused)
    assert record.error == "revoked"


# --------------------------------------------------------------------------------------------------
# 13. Registry rules.


def test_a_workload_of_another_trust_domain_cannot_be_registered_locally(
    authority: Authority,
) -> None:
    body = {
        "id": "spiffe://evil.org/agent/planner",
        "kind": "agent",
        "jwk": SigningKey.generate().public.to_jwk(),
        "scopes": ["crm:read"],
    }
    response = authority.admin("/admin/workloads", body)
    assert response.status_code == 400, response.text


def test_an_issuer_without_keys_is_refused(authority: Authority) -> None:
    response = authority.admin(
        "/admin/issuers", {"issuer": "https://empty.example.org", "jwks": {"keys": []}}
    )
    assert response.status_code == 400, response.text


# --------------------------------------------------------------------------------------------------
# 15. Bad input is a 4xx and a clean message.


@pytest.mark.parametrize(
    "details",
    ['{"purpose": "\\ud800"}', '{"purpose": "x", "n": 18446744073709551617}'],
)
def test_hostile_request_details_are_a_client_error(authority: Authority, details: str) -> None:
    agent = authority.register(_names("agent"), "agent", ["crm:read"])
    response = httpx.post(
        authority.url + "/token",
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": authority.id_token(),
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "scope": "crm:read",
            "request_details": details,
        },
        headers={
            "DPoP": create_proof(
                agent.key, htm="POST", htu=authority.url + "/token", now=int(time.time())
            )
        },
    )
    assert 400 <= response.status_code < 500, response.text


def test_findings_fail_on_gates_ci_and_hostile_names_do_not_break_the_report(
    authority: Authority,
) -> None:
    tool = authority.register(_names("tool"), "service", ["crm:write"], endpoints=[TOOL_URL])
    _report(
        tool,
        token=None,
        proof=None,
        action="[/][conceal]crm.sync",
        presenter="[bold]spiffe://example.org/agent/\x1b[31mred",
    )
    done = subprocess.run(
        [*AUTHCHAIN, "findings", "--db", str(authority.db), "--fail-on", "high"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "[conceal]" in done.stdout or "conceal" in done.stdout
    as_json = subprocess.run(
        [*AUTHCHAIN, "findings", "--db", str(authority.db), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert as_json.returncode == 0
    assert isinstance(json.loads(as_json.stdout), list)


# --------------------------------------------------------------------------------------------------
# 14. The server will not append on top of a log that fails verification.


def test_the_server_refuses_to_start_on_a_tampered_log(authority: Authority, tmp_path: Any) -> None:
    copy = tmp_path / "tampered.db"
    authority.stop()
    try:
        for suffix in ("", "-wal", "-shm"):
            source = authority.db.with_name(authority.db.name + suffix)
            if source.exists():
                shutil.copy(source, copy.with_name(copy.name + suffix))
    finally:
        authority.start()
    with sqlite3.connect(copy) as db:
        (leaf,) = db.execute("SELECT leaf FROM entries WHERE idx = 1").fetchone()
        db.execute(
            "UPDATE entries SET leaf = ? WHERE idx = 1",
            (bytes(leaf).replace(b"alice", b"alicf"),),
        )
    done = subprocess.run(
        [*AUTHCHAIN, "serve", "--db", str(copy), "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"AUTHCHAIN_ADMIN_TOKEN": ADMIN, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "log" in done.stderr.lower()
