"""Issue 10, point 5 (and 8's single use): one-time values stay spent across restarts and across
server processes sharing one log. The attackers here hold registered keys and replay what they
legitimately made or saw: a DPoP proof, a presentation, a report, an ID token."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from _http_world import (
    CRM_AGENT,
    PLANNER,
    TOOL_URL,
    World,
    reopen,
)

from authchain.attribution import findings
from authchain.audit.records import ActionInvoked, TaskDenied, read
from authchain.tokens.dpop import create_proof

ACCOUNT_URL = TOOL_URL + "/accounts/acme"


def _record(world: World, index: int) -> Any:
    return read(world.store.get(index), index)


def _presentation(world: World) -> tuple[str, str]:
    token = world.hop(world.start(), PLANNER, to=CRM_AGENT)
    proof = create_proof(
        world.keys[CRM_AGENT], htm="PATCH", htu=ACCOUNT_URL, now=world.now, access_token=token
    )
    return token, proof


def _action(token: str, proof: str, **extra: Any) -> dict[str, Any]:
    return {
        "token": token,
        "proof": proof,
        "htm": "PATCH",
        "htu": ACCOUNT_URL,
        "action": "crm.update",
        "resource": "crm://accounts/acme",
        **extra,
    }


@pytest.fixture
def log_path(world: World) -> Path:
    return Path(getattr(world.store, "path"))  # noqa: B009 - the SQLite store's file


# --------------------------------------------------------------------------------------------------
# DPoP proofs of requesters.


def test_token_proof_replayed_after_a_restart_gets_no_token_and_is_recorded(
    world: World, log_path: Path
) -> None:
    form = world.start_form()
    proof = world.proof(PLANNER)
    assert world.post_token(form, proof).status_code == 200
    world.client.close()
    world.store.close()
    again = reopen(world, log_path)
    replayed = again.post_token(again.start_form(), proof)
    assert replayed.status_code == 400, replayed.text
    assert replayed.json()["error"] == "invalid_dpop_proof"
    denied = _record(again, replayed.json()["log_index"])
    assert isinstance(denied, TaskDenied) and denied.error == "replay"


def test_token_proof_replayed_to_a_second_server_process_gets_no_token(
    world: World, log_path: Path
) -> None:
    second = reopen(world, log_path)
    proof = world.proof(PLANNER)
    assert world.post_token(world.start_form(), proof).status_code == 200
    replayed = second.post_token(second.start_form(), proof)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof"
    second.client.close()


def test_events_proof_replayed_after_a_restart_is_refused(world: World, log_path: Path) -> None:
    body = {"action": "crm.sync", "resource": "crm://accounts/acme"}
    first = world.report(body, jti="events-proof-1")
    assert first.status_code == 201
    world.client.close()
    world.store.close()
    again = reopen(world, log_path)
    size = again.store.size()
    replayed = again.report(body, jti="events-proof-1")
    assert replayed.status_code == 401 and replayed.json()["code"] == "replay"
    assert again.store.size() == size


# --------------------------------------------------------------------------------------------------
# Report ids.


def test_report_retried_after_a_restart_returns_the_first_index(
    world: World, log_path: Path
) -> None:
    token, proof = _presentation(world)
    body = _action(token, proof, report_id="outbox-7", performed_at=world.now)
    first = world.report(body)
    assert first.status_code == 201
    world.client.close()
    world.store.close()
    again = reopen(world, log_path)
    size = again.store.size()
    retried = again.report(body)
    assert retried.status_code == 200, retried.text
    assert retried.json() == {
        "log_index": first.json()["log_index"],
        "report_id": "outbox-7",
        "duplicate": True,
    }
    assert again.store.size() == size


def test_report_id_reused_for_another_report_is_a_conflict(world: World) -> None:
    token, proof = _presentation(world)
    assert world.report(_action(token, proof, report_id="r-1")).status_code == 201
    size = world.store.size()
    other = world.report({"action": "crm.delete", "resource": "crm://x", "report_id": "r-1"})
    assert other.status_code == 409 and other.json()["code"] == "report_id_conflict"
    assert world.store.size() == size


def test_report_ids_are_per_reporter(world: World) -> None:
    """Another service cannot burn a tool's report ids (nor learn its entries through them)."""
    world.report({"action": "a", "resource": "r", "report_id": "shared"}, by=CRM_AGENT)
    mine = world.report({"action": "b", "resource": "r", "report_id": "shared"})
    assert mine.status_code == 201


def test_concurrent_retries_of_one_report_yield_one_event_and_no_finding(
    world: World, log_path: Path
) -> None:
    token, proof = _presentation(world)
    body = _action(token, proof, report_id="twice", performed_at=world.now)
    second = reopen(world, log_path)  # two server processes, one log
    size = world.store.size()
    answers: list[Any] = []

    def send(w: World) -> None:
        answers.append(w.report(body))

    threads = [threading.Thread(target=send, args=(w,)) for w in (world, second, world, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201]
    assert len({a.json()["log_index"] for a in answers}) == 1
    assert world.store.size() == size + 1
    assert findings(world.store) == []
    second.client.close()


# --------------------------------------------------------------------------------------------------
# Presentations.


def test_presentation_reported_again_after_five_minutes_is_a_replay(world: World) -> None:
    token, proof = _presentation(world)
    performed_at = world.now
    first = world.report(_action(token, proof, performed_at=performed_at))
    world.clock.advance(306)  # past the old 305 s memory, and past the token's expiry
    again = world.report(_action(token, proof, performed_at=performed_at))
    record = _record(world, again.json()["log_index"])
    assert isinstance(record, ActionInvoked) and record.unattributed
    assert (record.error, record.replay_of) == ("replay", first.json()["log_index"])
    assert "TOKEN_REPLAY" in {f.code for f in findings(world.store)}


def test_presentation_reported_again_after_a_restart_is_a_replay(
    world: World, log_path: Path
) -> None:
    token, proof = _presentation(world)
    first = world.report(_action(token, proof))
    world.client.close()
    world.store.close()
    again = reopen(world, log_path)
    replayed = again.report(_action(token, proof))
    record = _record(again, replayed.json()["log_index"])
    assert record.error == "replay" and record.replay_of == first.json()["log_index"]


# --------------------------------------------------------------------------------------------------
# ID tokens: one task each.


def test_an_id_token_starts_one_task_and_its_second_use_is_refused_and_recorded(
    world: World,
) -> None:
    form = world.start_form()
    assert world.post_token(form, world.proof(PLANNER)).status_code == 200
    # The same ID token, by the same workload with a fresh proof, then by another workload.
    for who in (PLANNER, CRM_AGENT):
        again = world.post_token(form, world.proof(who))
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        denied = _record(world, again.json()["log_index"])
        assert isinstance(denied, TaskDenied) and denied.error == "replay"


def test_an_id_token_used_before_a_restart_starts_no_second_task(
    world: World, log_path: Path
) -> None:
    form = world.start_form()
    assert world.post_token(form, world.proof(PLANNER)).status_code == 200
    world.client.close()
    world.store.close()
    again = reopen(world, log_path)
    assert again.post_token(form, again.proof(PLANNER)).json()["error"] == "invalid_grant"


def test_a_refused_start_does_not_spend_the_id_token(world: World) -> None:
    form = world.start_form(scope="no:such scope")
    assert world.post_token(form, world.proof(PLANNER)).status_code == 400
    form["scope"] = "crm:read"
    assert world.post_token(form, world.proof(PLANNER)).status_code == 200


# --------------------------------------------------------------------------------------------------
# Point 6: only registered keys take places.


def test_proofs_of_unregistered_keys_take_no_place_in_the_cache_or_the_ledger(
    world: World,
) -> None:
    from authchain.identity.keys import SigningKey

    cache = world.authority._auth._replay  # the fast check's size is what a flood would fill
    before = (len(cache), world.store.size())
    for n in range(50):
        stranger = SigningKey.generate()
        proof = world.proof(stranger, jti=f"j{n}")
        assert world.post_token(world.start_form(), proof).status_code == 400
        assert world.report({"action": "a", "resource": "r"}, by=stranger).status_code == 401
        assert world.store.claimed("dpop", f"{stranger.public.kid}:j{n}") is None
    assert len(cache) == before[0]
    # The refusals at /token are recorded (evidence), but they spend nothing.
    for index in range(before[1], world.store.size()):
        assert world.store.get(index).kind == "task.denied"
    # A registered key's proof does take its place, durably.
    assert world.post_token(world.start_form(), world.proof(PLANNER, jti="ok")).status_code == 200
    assert world.store.claimed("dpop", f"{world.keys[PLANNER].public.kid}:ok") is not None


def test_spent_proofs_are_pruned_once_they_could_no_longer_be_accepted(world: World) -> None:
    kid = world.keys[PLANNER].public.kid
    assert world.post_token(world.start_form(), world.proof(PLANNER, jti="p1")).status_code == 200
    assert world.store.claimed("dpop", f"{kid}:p1") is not None
    world.clock.advance(3600)  # far past the proof's 60 s window, and past a prune interval
    world.start()
    assert world.store.claimed("dpop", f"{kid}:p1") is None
