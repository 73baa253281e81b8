"""Issue 10, point 15: bad input over real HTTP gets a 4xx, never a 500, and nothing is logged as an
unexpected error.

* JSON holding a lone surrogate or an integer beyond the I-JSON range, in any body (a JSON body or
  the ``request_details`` form field of ``/token``): refused where it is parsed (RFC 7493 2.1, 2.2);
* a body that trickles in (or stalls after its first bytes): 408 after the read timeout;
* a client that disconnects before its body arrived: no error logged.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from _http_world import ADMIN_TOKEN, EVENTS_URL, PLANNER, TOOL, World, asgi_post_scope

from authchain._encoding import json_loads_strict
from authchain.errors import MalformedError
from authchain.server import _http

BIG = "99999999999999999999999"  # over 2**64
UNSAFE = "9007199254740993"  # 2**53 + 1: over 2**53 - 1, within 2**64

HOSTILE_JSON = {
    "lone-high-surrogate": '"\\ud800"',
    "lone-low-surrogate": '"\\udc00x"',
    "integer-over-2-64": BIG,
    "negative-integer-over-2-64": "-" + BIG,
    "integer-over-2-53": UNSAFE,
}


def _problem_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("value", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_request_details_with_a_hostile_json_value_is_a_400_and_recorded(
    world: World, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    form = world.start_form()
    form["request_details"] = f'{{"purpose": "update ACME", "n": {value}}}'
    with caplog.at_level(logging.WARNING):
        response = world.post_token(form, world.proof(PLANNER))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert "RFC 7493" in body["error_description"]
    assert world.store.get(body["log_index"]).kind == "task.denied"
    assert not _problem_logged(caplog), caplog.text


@pytest.mark.parametrize("value", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
@pytest.mark.parametrize("field", ["action", "resource", "performed_at", "attrs", "report_id"])
def test_an_events_body_with_a_hostile_json_value_in_any_field_is_a_4xx(
    world: World, caplog: pytest.LogCaptureFixture, field: str, value: str
) -> None:
    members = {"action": '"crm.update"', "resource": '"crm://accounts/acme"'}
    members[field] = f'{{"n": {value}}}' if field == "attrs" else value
    body = "{" + ", ".join(f'"{k}": {v}' for k, v in members.items()) + "}"
    with caplog.at_level(logging.WARNING):
        response = world.client.post(
            "/events",
            content=body.encode(),
            headers={
                "content-type": "application/json",
                "DPoP": world.proof(TOOL, htu=EVENTS_URL),
            },
        )
    assert 400 <= response.status_code < 500, response.text
    assert not _problem_logged(caplog), caplog.text


@pytest.mark.parametrize("value", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_an_admin_body_with_a_hostile_json_value_is_a_400(
    world: World, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    body = f'{{"id": "alice@example.org", "kind": "user", "scopes": [{value}]}}'
    with caplog.at_level(logging.WARNING):
        response = world.client.post(
            "/admin/principals",
            content=body.encode(),
            headers={"content-type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert response.status_code == 400, response.text
    assert "RFC 7493" in response.json()["detail"]
    assert not _problem_logged(caplog), caplog.text


@pytest.mark.parametrize("value", list(HOSTILE_JSON.values()), ids=list(HOSTILE_JSON))
def test_strict_json_refuses_what_canonical_json_cannot_write(value: str) -> None:
    for document in (value, f"[{value}]", f'{{"a": {{"b": [{value}]}}}}'):
        with pytest.raises(MalformedError, match="RFC 7493"):
            json_loads_strict(document)
    with pytest.raises(MalformedError, match="RFC 7493"):
        json_loads_strict('{"\\ud800": 1}')  # a member name too


def test_strict_json_keeps_what_is_in_range() -> None:
    edge = 2**53 - 1
    assert json_loads_strict(f'{{"a": {edge}, "b": -{edge}, "c": "\\ud83d\\ude00"}}') == {
        "a": edge,
        "b": -edge,
        "c": "\U0001f600",
    }
    assert json_loads_strict(b'{"n":1234567890123456}') == {"n": 1234567890123456}
    assert json_loads_strict(b'{"s":"12345678901234567890"}') == {"s": "12345678901234567890"}


# --------------------------------------------------------------------------------------------------
# Bodies that never finish, and clients that go away.


def _scope(path: str, content_type: str) -> dict[str, Any]:
    return asgi_post_scope(
        path,
        content_type=content_type,
        headers=(
            (b"content-length", b"4096"),
            (b"authorization", f"Bearer {ADMIN_TOKEN}".encode()),
        ),
    )


def _call(world: World, path: str, content_type: str, then: str) -> list[dict[str, Any]]:
    """Send the first bytes of a body, then stall (``then="stall"``) or disconnect."""
    sent: list[dict[str, Any]] = []
    calls = 0

    async def receive() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b'{"action', "more_body": True}
        if then == "stall":
            await anyio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        with anyio.fail_after(30):  # the test's own bound: a stalled read must not hang the suite
            await world.client.app(_scope(path, content_type), receive, send)  # type: ignore[arg-type]

    anyio.run(run)
    return sent


@pytest.mark.parametrize(
    ("path", "content_type", "status"),
    [
        ("/events", "application/json", 408),
        ("/admin/workloads", "application/json", 408),
        # At the token endpoint every malformed request is an OAuth invalid_request (400).
        ("/token", "application/x-www-form-urlencoded", 400),
    ],
)
def test_a_body_that_stalls_is_answered_after_the_read_timeout(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
    content_type: str,
    status: int,
) -> None:
    monkeypatch.setattr(_http, "BODY_TIMEOUT", 0.2)
    with caplog.at_level(logging.DEBUG, logger="authchain"):
        sent = _call(world, path, content_type, "stall")
    assert sent[0]["status"] == status
    assert b"did not arrive within 0.2 seconds" in sent[1]["body"]
    assert not _problem_logged(caplog), caplog.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/events", "application/json"),
        ("/token", "application/x-www-form-urlencoded"),
        ("/admin/principals", "application/json"),
        ("/revoke", "application/json"),
    ],
)
def test_a_client_that_disconnects_mid_body_is_not_logged_as_an_error(
    world: World, caplog: pytest.LogCaptureFixture, path: str, content_type: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="authchain"):
        sent = _call(world, path, content_type, "disconnect")
    assert sent and sent[0]["status"] < 500
    assert not _problem_logged(caplog), caplog.text
