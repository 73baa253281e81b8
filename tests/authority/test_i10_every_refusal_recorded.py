"""Issue 10, point 10: every refusal at the token endpoint is recorded.

A thief probing stolen tokens sent an audience or a scope with a control character, a 3,000-character
audience, or an ID token whose ``sub`` held U+202E or a newline: the refusal record itself broke the
log's rules, so nothing was recorded. Now a value the log cannot hold leaves the envelope and is kept
in ``reported``, escaped, cut and hashed; an ID token with such a ``sub`` is refused as such. Played
against the authority and over the real HTTP app; the log must verify afterwards.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from _authority_world import ALICE, CRM_AGENT, ISSUER, PLANNER, RAW_JWT, World

from authchain._encoding import sha256_b64url
from authchain.audit.records import HopDenied, TaskDenied
from authchain.authority._untrusted import TEXT_LIMIT, escaped, kept
from authchain.errors import (
    ClaimError,
    Input,
    InvalidTargetError,
    MalformedError,
    VerificationError,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

import _http_world as http  # noqa: E402

# Characters the log refuses in a principal id or resource, as an attacker would send them.
HOSTILE_TEXT = [
    "\x00",
    "\n",
    "\x1b[31m",
    "\x7f",
    "\x85",
    "\u202e",  # RIGHT-TO-LEFT OVERRIDE
    "\u2066",  # LEFT-TO-RIGHT ISOLATE
    "\u200b",  # ZERO WIDTH SPACE
    "\u2028",  # LINE SEPARATOR
    "\ufeff",
    "\U000e0041",  # TAG LATIN CAPITAL LETTER A
]


def _assert_verifies(world: World) -> None:
    assert world.store.verify().size == world.store.size()


def _kept_matches(entry: dict[str, Any], value: str) -> None:
    assert entry["sha256"] == sha256_b64url(value)
    assert entry["length"] == len(value)
    assert entry["text"] == escaped(value)
    assert len(entry["text"]) <= TEXT_LIMIT
    assert entry["text"].isprintable()


# --------------------------------------------------------------------------------------------------
# The audience of a hop.


@pytest.mark.parametrize("bad", HOSTILE_TEXT, ids=[f"U+{ord(c[0]):04X}" for c in HOSTILE_TEXT])
def test_hop_to_an_audience_with_a_control_or_format_character_is_refused_and_recorded(
    world: World, bad: str
) -> None:
    root = world.start()
    audience = f"spiffe://example.org/agent/crm{bad}"
    with pytest.raises(InvalidTargetError) as caught:
        world.hop(PLANNER, root, audience, "crm:read")
    assert caught.value.log_index is not None
    record = world.record(caught.value.log_index)
    assert isinstance(record, HopDenied)
    assert record.resource is None
    assert record.reported is not None
    _kept_matches(record.reported["audience"], audience)
    assert record.txn == root.txn and record.actor == PLANNER
    _assert_verifies(world)


def test_hop_to_a_three_thousand_character_audience_is_refused_and_recorded(world: World) -> None:
    root = world.start()
    audience = "spiffe://example.org/agent/" + "a" * 3000
    with pytest.raises(VerificationError) as caught:
        world.hop(PLANNER, root, audience, "crm:read")
    record = world.record(caught.value.log_index)
    assert record.resource is None
    entry = record.reported["audience"]
    _kept_matches(entry, audience)
    assert entry["length"] == 3027 and len(entry["text"]) == TEXT_LIMIT
    _assert_verifies(world)


def test_hop_to_an_audience_that_is_a_raw_token_never_puts_the_token_in_the_log(
    world: World,
) -> None:
    root = world.start()
    with pytest.raises(VerificationError) as caught:
        world.hop(PLANNER, root, root.access_token, "crm:read")
    entry = world.record(caught.value.log_index).reported["audience"]
    assert entry["sha256"] == sha256_b64url(root.access_token)
    assert entry["length"] == len(root.access_token)
    assert root.access_token not in entry.get("text", "")
    assert not RAW_JWT.search(world.store.get(caught.value.log_index).leaf_bytes())
    _assert_verifies(world)


def test_an_audience_holding_a_whole_compact_jws_is_kept_by_its_hash_only(world: World) -> None:
    root = world.start()
    jws = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    with pytest.raises(VerificationError) as caught:
        world.hop(PLANNER, root, jws, "crm:read")
    entry = world.record(caught.value.log_index).reported["audience"]
    assert entry == {"sha256": sha256_b64url(jws), "length": len(jws)}
    _assert_verifies(world)


def test_the_refusals_reason_is_escaped_too(world: World) -> None:
    root = world.start()
    with pytest.raises(InvalidTargetError) as caught:
        world.hop(PLANNER, root, "spiffe://example.org/agent/\u202egnp.exe", "crm:read")
    reason = world.record(caught.value.log_index).reason
    assert "\u202e" not in reason and reason.isprintable()


# --------------------------------------------------------------------------------------------------
# The scope, at a task start and in a hop.


@pytest.mark.parametrize("bad", ["crm:read\x00", "crm:read\ncrm:write", "crm:\u202eread"])
def test_task_start_with_a_scope_holding_a_control_character_is_refused_and_recorded(
    world: World, bad: str
) -> None:
    with pytest.raises(MalformedError) as caught:
        world.start(scope=bad)
    assert caught.value.input is Input.SCOPE
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied)
    _kept_matches(record.reported["scope"], bad)
    _assert_verifies(world)


def test_hop_with_a_scope_holding_a_control_character_is_refused_and_recorded(
    world: World,
) -> None:
    root = world.start()
    with pytest.raises(MalformedError) as caught:
        world.hop(PLANNER, root, CRM_AGENT, "crm:read\x1b")
    record = world.record(caught.value.log_index)
    assert isinstance(record, HopDenied) and record.resource == CRM_AGENT
    _kept_matches(record.reported["scope"], "crm:read\x1b")


# --------------------------------------------------------------------------------------------------
# The subject of an ID token.


@pytest.mark.parametrize(
    "sub",
    [
        "alice\u202e@example.org",
        "alice@example.org\nbob@example.org",
        "alice\x00",
        "\u0430lice@example.org",  # CYRILLIC SMALL LETTER A: a look-alike of Alice
        "a" * 256,
    ],
    ids=["bidi override", "newline", "nul", "look-alike", "256 characters"],
)
def test_an_id_token_whose_sub_is_not_printable_ascii_is_refused_and_recorded(
    world: World, sub: str
) -> None:
    id_token = world.idp.issue(sub, audience=ISSUER, now=world.now)
    with pytest.raises(ClaimError) as caught:
        world.authority.start_task(
            subject_token=id_token,
            dpop_proof=world.token_proof(PLANNER),
            scope="crm:read",
        )
    assert caught.value.input is Input.SUBJECT_TOKEN
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied)
    assert (record.error, record.input) == ("invalid_claim", "subject_token")
    assert record.parent_token == sha256_b64url(id_token)
    assert record.initiator is None
    _assert_verifies(world)


def test_an_id_token_with_a_printable_ascii_sub_still_starts_a_task(world: World) -> None:
    assert world.start(initiator=ALICE).claims.sub == ALICE


# --------------------------------------------------------------------------------------------------
# The purpose, which the task's record carries.


def test_a_purpose_holding_a_raw_token_is_refused_and_recorded(world: World) -> None:
    with pytest.raises(MalformedError) as caught:
        world.start(purpose="see " + world.id_token())
    assert caught.value.input is Input.REQUEST_DETAILS
    record = world.record(caught.value.log_index)
    assert isinstance(record, TaskDenied) and record.purpose is None
    _assert_verifies(world)


# --------------------------------------------------------------------------------------------------
# Refusals at the HTTP edge, before the authority decides.


def test_edge_refusal_with_an_unusable_audience_keeps_it_escaped_and_hashed(world: World) -> None:
    bad = "spiffe://example.org/agent/\u202e" + "x" * 3000
    recorded = world.authority.record_refusal(
        MalformedError("refused at the edge"), action="delegate", audience=bad
    )
    record = world.record(recorded.log_index)
    assert isinstance(record, HopDenied) and record.resource is None
    _kept_matches(record.reported["audience"], bad)


def test_kept_text_escapes_backslashes_so_it_reads_unambiguously() -> None:
    assert escaped("a\\u202e") == "a\\\\u202e"
    assert escaped("a\u202e") == "a\\u202e"
    assert escaped("\U000e0041") == "\\U000e0041"
    assert escaped("\ud800") == "\\ud800"
    assert kept("\ud800")["sha256"] == sha256_b64url("\ud800")


# --------------------------------------------------------------------------------------------------
# Over HTTP: each probe answers 400 with the index of the entry that records it.


@pytest.fixture
def web(tmp_path: Path) -> http.World:
    w = http.make_world(tmp_path)
    yield w
    w.client.close()
    w.store.close()


def _recorded(web: http.World, response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body.get("log_index") is not None, body
    event: dict[str, Any] = web.store.get(body["log_index"]).to_dict()
    assert event["outcome"] == "denied"
    return event


@pytest.mark.parametrize(
    "audience",
    [
        "spiffe://example.org/agent/crm\x01",
        "spiffe://example.org/agent/crm\u202e",
        "spiffe://example.org/agent/" + "a" * 3000,
    ],
    ids=["control", "bidi", "3000 characters"],
)
def test_http_hop_probe_with_a_hostile_audience_is_recorded(web: http.World, audience: str) -> None:
    token = web.start()
    response = web.post_token(web.hop_form(token, to=audience), web.proof(http.PLANNER))
    event = _recorded(web, response)
    assert event["kind"] == "hop.denied" and "resource" not in event
    assert event["reported"]["audience"]["sha256"] == sha256_b64url(audience)
    assert web.store.verify().size == web.store.size()


def test_http_hop_probe_with_a_hostile_scope_is_recorded(web: http.World) -> None:
    token = web.start()
    response = web.post_token(
        web.hop_form(token, to=http.CRM_AGENT, scope="crm:read\x07"), web.proof(http.PLANNER)
    )
    event = _recorded(web, response)
    assert event["reported"]["scope"]["text"] == "crm:read\\u0007"


@pytest.mark.parametrize("sub", ["alice\u202e@example.org", "alice@example.org\n"])
def test_http_task_start_with_a_hostile_sub_is_refused_and_recorded(
    web: http.World, sub: str
) -> None:
    form = web.start_form()
    form["subject_token"] = web.id_token(sub)
    event = _recorded(web, web.post_token(form, web.proof(http.PLANNER)))
    assert event["kind"] == "task.denied"
    assert event["detail"]["error"] == "invalid_claim"
    assert "initiator" not in event
    assert web.store.verify().size == web.store.size()


def test_http_edge_refusal_with_a_hostile_audience_is_recorded(web: http.World) -> None:
    # Refused by the route before the authority decides (a task start may name no other audience).
    form = web.start_form()
    form["audience"] = "spiffe://example.org/\u202e" + "b" * 2500
    event = _recorded(web, web.post_token(form, web.proof(http.PLANNER)))
    assert event["kind"] == "task.denied" and "resource" not in event
    assert event["reported"]["audience"]["length"] == len(form["audience"])
