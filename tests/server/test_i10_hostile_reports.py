"""Issue 10, points 2, 3, 4, 6, 7 and 15 at ``POST /events``: registered services that lie in their
reports (fabricated actions, framing, reports of presentations made to someone else, reports out
of the token's time), reports whose body was changed under the proof, floods of junk, and the
server-side failures that must never become false evidence. Each attacker is a workload registered
with its own valid key, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from _http_world import (
    ALICE,
    CRM_AGENT,
    PLANNER,
    RESEARCH,
    TOOL,
    TOOL_URL,
    World,
    asgi_post_scope,
    claims,
    register_serving,
)

from authchain.attribution import findings
from authchain.audit.events import AuditEvent
from authchain.audit.records import ActionInvoked, read
from authchain.audit.store import Claim
from authchain.errors import StorageError
from authchain.identity.keys import SigningKey
from authchain.server import _http
from authchain.tokens.dpop import content_digest, create_proof
from authchain.tokens.replay import ReplayCache

ACCOUNT_URL = TOOL_URL + "/accounts/acme"
OTHER = "spiffe://example.org/service/billing"
OTHER_URL = "https://billing.example.org"


def _record(world: World, index: int) -> Any:
    return read(world.store.get(index), index)


def _presentation(world: World, *, at: int | None = None) -> tuple[str, str]:
    token = world.hop(world.start(), PLANNER, to=CRM_AGENT)
    proof = create_proof(
        world.keys[CRM_AGENT],
        htm="PATCH",
        htu=ACCOUNT_URL,
        now=world.now if at is None else at,
        access_token=token,
    )
    return token, proof


def _action(token: str | None, proof: str | None, **extra: Any) -> dict[str, Any]:
    body = {
        "token": token,
        "proof": proof,
        "htm": "PATCH",
        "htu": ACCOUNT_URL,
        "action": "crm.update",
        "resource": "crm://accounts/acme",
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def _codes(world: World) -> set[str]:
    return {f.code for f in findings(world.store)}


# --------------------------------------------------------------------------------------------------
# Points 2 and 3: nothing a reporter supplies is evidence.


def test_fabricated_action_with_a_junk_token_and_walk_keys_in_attrs_is_only_a_claim(
    world: World,
) -> None:
    world.start()  # entry 8 and around: a real task the lie points at
    body = _action(
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
        "junk",
        attrs={"log": 8, "jti": "forged", "parent_token": "x", "txn": "y"},
    )
    response = world.report(body)
    assert response.status_code == 201
    record = _record(world, response.json()["log_index"])
    assert isinstance(record, ActionInvoked) and record.unattributed
    assert (record.log, record.jti, record.txn, record.initiator, record.actor) == (None,) * 5
    assert record.reported is not None and record.reported["attrs"]["log"] == 8
    event = world.store.get(response.json()["log_index"])
    trace = world.client.get(f"/trace/{event.id}").json()
    assert trace["verdict"] != "complete"


def test_token_less_report_naming_a_victim_leaves_the_victim_out_of_the_evidence(
    world: World,
) -> None:
    body = _action(
        None,
        None,
        presenter=CRM_AGENT,
        outcome="refused",
        refusal="key_binding_mismatch",
        attrs={
            "error": "replay",
            "holder": PLANNER,
            "claimed_initiator": ALICE,
            "held_scope": ["crm:write"],
        },
    )
    record = _record(world, world.report(body).json()["log_index"])
    assert (record.actor, record.holder, record.error, record.initiator) == (None,) * 4
    assert record.executor == TOOL  # the one party a signature proves
    assert record.reported["presenter"] == CRM_AGENT


# --------------------------------------------------------------------------------------------------
# Point 4: only presentations made to the reporter, only while the token could be used.


def test_a_third_workload_reporting_a_tools_presentation_first_cannot_frame_the_tool(
    world: World,
) -> None:
    key = SigningKey.generate()
    world.keys[OTHER] = key
    register_serving(
        world.authority,
        OTHER,
        kind="service",
        jwk=key.public.to_jwk(),
        scopes=["crm:write"],
        endpoints=[OTHER_URL],
    )
    token, proof = _presentation(world)
    stolen = world.report(_action(token, proof), by=OTHER)
    claim = _record(world, stolen.json()["log_index"])
    assert claim.unattributed and claim.error == "dpop_url_mismatch"
    assert (claim.txn, claim.actor, claim.executor) == (None, None, OTHER)
    honest = _record(world, world.report(_action(token, proof)).json()["log_index"])
    assert isinstance(honest, ActionInvoked)
    assert (honest.unattributed, honest.error, honest.actor) == (None, None, CRM_AGENT)
    assert "TOKEN_REPLAY" not in _codes(world)
    assert all(TOOL not in f.message for f in findings(world.store))


def test_a_service_with_no_endpoints_cannot_report_attributed_actions(world: World) -> None:
    token, proof = _presentation(world)
    response = world.report(_action(token, proof), by=RESEARCH)
    record = _record(world, response.json()["log_index"])
    assert record.unattributed and record.error == "dpop_url_mismatch"
    assert record.txn is None


@pytest.mark.parametrize(
    "url",
    ["https://tool.example.org.evil.net/accounts/acme", "https://tool.example.orgx/accounts"],
)
def test_a_url_that_only_starts_like_the_endpoint_is_not_served(world: World, url: str) -> None:
    token = world.hop(world.start(), PLANNER, to=CRM_AGENT)
    proof = create_proof(
        world.keys[CRM_AGENT], htm="PATCH", htu=url, now=world.now, access_token=token
    )
    record = _record(world, world.report(_action(token, proof, htu=url)).json()["log_index"])
    assert record.unattributed and record.error == "dpop_url_mismatch"


def test_performed_at_after_the_token_expired_is_not_attributed(world: World) -> None:
    token, proof = _presentation(world)
    exp = claims(token)["exp"]
    world.clock.advance(exp - world.now + 61)
    body = _action(token, proof, performed_at=exp + 61)
    record = _record(world, world.report(body).json()["log_index"])
    assert record.unattributed and record.error == "expired"


def test_performed_at_before_the_token_was_issued_is_not_attributed(world: World) -> None:
    token, proof = _presentation(world)
    body = _action(token, proof, performed_at=claims(token)["iat"] - 61)
    record = _record(world, world.report(body).json()["log_index"])
    assert record.unattributed and record.error == "issued_in_future"


@pytest.mark.parametrize("skew", [-60, 60])
def test_up_to_a_minute_of_clock_skew_keeps_honest_work_attributed(world: World, skew: int) -> None:
    """The tool and its caller share a clock ``skew`` seconds off the authority's."""
    token, proof = _presentation(world, at=world.now + skew)
    body = _action(token, proof, performed_at=world.now + skew)
    response = world.report(body)
    assert response.status_code == 201, response.text
    record = _record(world, response.json()["log_index"])
    assert (record.unattributed, record.error, record.actor) == (None, None, CRM_AGENT)


class _FailingAppends:
    def __init__(self, store: Any) -> None:
        self._store = store
        self.failing = True

    def append(self, event: AuditEvent, *, once: Sequence[Claim] = ()) -> int:
        if self.failing:
            raise StorageError("disk full")
        index: int = self._store.append(event, once=once)
        return index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_failing_store_answers_503_and_the_outbox_retry_is_attributed(world: World) -> None:
    token, proof = _presentation(world)
    body = _action(token, proof, report_id="r-503", performed_at=world.now)
    store = _FailingAppends(world.authority.store)
    world.authority.recorder.store = store  # type: ignore[assignment]
    size = world.store.size()
    failed = world.report(body)
    assert failed.status_code == 503 and failed.headers["retry-after"] == "1"
    assert world.store.size() == size
    store.failing = False
    retried = world.report(body)
    assert retried.status_code == 201
    record = _record(world, retried.json()["log_index"])
    assert (record.unattributed, record.error) == (None, None)


def test_a_full_replay_cache_turns_no_honest_report_into_a_refusal(world: World) -> None:
    full = ReplayCache(max_entries=1)
    full.check_and_store("filler", world.now + 60, world.now)
    world.authority._auth._replay = full
    token, proof = _presentation(world)
    response = world.report(_action(token, proof))
    assert response.status_code == 201
    assert _record(world, response.json()["log_index"]).unattributed is None


# --------------------------------------------------------------------------------------------------
# Point 5: the reporter's proof covers the body (RFC 9530 Content-Digest).


def _post(world: World, raw: bytes, headers: dict[str, str]) -> Any:
    return world.client.post(
        "/events", content=raw, headers={"Content-Type": "application/json", **headers}
    )


def test_a_report_without_content_digest_is_refused(world: World) -> None:
    raw = b'{"action": "a", "resource": "r"}'
    response = _post(world, raw, {"DPoP": world.proof(TOOL, htu=world.authority.events_endpoint)})
    assert response.status_code == 400 and response.json()["code"] == "content_digest_required"


def test_a_body_changed_under_its_digest_and_proof_is_refused(world: World) -> None:
    signed = b'{"action": "crm.read", "resource": "crm://accounts/acme"}'
    digest = content_digest(signed)
    proof = world.proof(TOOL, htu=world.authority.events_endpoint, content_digest=digest)
    swapped = b'{"action": "crm.delete", "resource": "crm://accounts/acme"}'
    response = _post(world, swapped, {"Content-Digest": digest, "DPoP": proof})
    assert response.status_code == 400 and response.json()["code"] == "content_digest_mismatch"


def test_a_proof_that_does_not_cover_the_body_is_refused(world: World) -> None:
    raw = b'{"action": "crm.delete", "resource": "crm://accounts/acme"}'
    other = content_digest(b'{"action": "crm.read", "resource": "crm://accounts/acme"}')
    url = world.authority.events_endpoint
    for proof in (world.proof(TOOL, htu=url), world.proof(TOOL, htu=url, content_digest=other)):
        response = _post(world, raw, {"Content-Digest": content_digest(raw), "DPoP": proof})
        assert response.status_code == 401 and response.json()["code"] == "invalid_dpop_proof"


@pytest.mark.parametrize(
    "header",
    ["sha-512=:AAAA:", "sha-256=AAAA", "sha-256=:not base64!:", "sha-256=:AAAA:, sha-256=:AAAA:"],
)
def test_a_malformed_content_digest_is_refused(world: World, header: str) -> None:
    raw = b'{"action": "a", "resource": "r"}'
    proof = world.proof(TOOL, htu=world.authority.events_endpoint, content_digest=header)
    response = _post(world, raw, {"Content-Digest": header, "DPoP": proof})
    assert response.status_code == 400, response.text


# --------------------------------------------------------------------------------------------------
# Point 9: floods of unverified reports are bounded per reporter, and counted.


def test_junk_reports_beyond_the_reporters_budget_are_429_and_counted(world: World) -> None:
    size = world.store.size()
    answers = [world.report(_action("junk", "junk", report_id=f"j{i}")) for i in range(100)]
    statuses = [a.status_code for a in answers]
    assert statuses.count(201) == 60 and statuses.count(429) == 40
    assert all(a.headers["retry-after"].isdigit() for a in answers if a.status_code == 429)
    assert world.store.size() == size + 60
    world.clock.advance(5)
    later = world.report(_action("junk", "junk", report_id="after"))
    assert later.status_code == 201
    assert _record(world, later.json()["log_index"]).rate_limited == 40


def test_twenty_seconds_of_junk_reports_add_a_bounded_number_of_rows(world: World) -> None:
    size = world.store.size()
    for i in range(1000):
        world.clock.advance(0.02)
        world.report(_action("junk", "junk", report_id=f"flood-{i}"))
    # The burst, then two a second for 20 s: never thousands.
    assert world.store.size() - size <= 60 + 2 * 20 + 1


def test_verified_reports_are_never_rate_limited(world: World) -> None:
    for i in range(61):
        world.report(_action("junk", "junk", report_id=f"j{i}"))
    token, proof = _presentation(world)
    assert world.report(_action(token, proof)).status_code == 201


# --------------------------------------------------------------------------------------------------
# Point 15: bad input is a 4xx, a slow body a 408.


@pytest.mark.parametrize(
    "raw",
    [
        b'{"action": "a", "resource": "r", "attrs": {"a": "\\ud800"}}',
        b'{"action": "\\udfff", "resource": "r"}',
        b'{"action": "a", "resource": "r", "attrs": {"n": 184467440737095516160}}',
        b'{"action": "a", "resource": "r", "performed_at": 184467440737095516160}',
        b'{"action": "a", "resource": "r", "count": 0}',
        b'{"action": "a", "resource": "r", "report_id": "x", "attrs": {"n": 1.5}}',
    ],
)
def test_a_report_with_unrepresentable_values_is_a_400(world: World, raw: bytes) -> None:
    digest = content_digest(raw)
    proof = world.proof(TOOL, htu=world.authority.events_endpoint, content_digest=digest)
    response = _post(world, raw, {"Content-Digest": digest, "DPoP": proof})
    assert response.status_code == 400, response.text


def test_a_body_that_never_finishes_is_a_408(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_http, "BODY_TIMEOUT", 0.05)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep(1)
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = asgi_post_scope("/events")
    anyio.run(world.client.app, scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 408
    assert json.loads(sent[1]["body"])["code"] == "request_timeout"
