"""When the log cannot record, nothing is issued and nothing is acknowledged: the API answers 503
with Retry-After (the same request may succeed later), never a 500 and never a token."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _http_world import CRM_AGENT, PLANNER, World, make_world

from authchain.audit.events import AuditEvent
from authchain.audit.store import Claim
from authchain.errors import StorageError


class FailingAppends:
    """Wraps the real store; while ``failing``, appends fail as a full disk would."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.failing = False

    def append(self, event: AuditEvent, *, once: Sequence[Claim] = ()) -> int:
        if self.failing:
            raise StorageError("disk full")
        index: int = self._store.append(event, once=once)
        return index

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@pytest.fixture
def failing(tmp_path: Path) -> tuple[World, FailingAppends]:
    world = make_world(tmp_path)
    wrapper = FailingAppends(world.authority.store)
    world.authority.recorder.store = wrapper  # type: ignore[assignment]
    return world, wrapper


def test_token_endpoint_issues_nothing_when_the_log_cannot_record(
    failing: tuple[World, FailingAppends],
) -> None:
    world, store = failing
    token = world.start()
    store.failing = True
    response = world.post_token(world.hop_form(token, to=CRM_AGENT), world.proof(PLANNER))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert "access_token" not in body


def test_action_report_is_not_acknowledged_when_the_log_cannot_record(
    failing: tuple[World, FailingAppends],
) -> None:
    world, store = failing
    store.failing = True
    response = world.report({"action": "crm.update", "resource": "crm://accounts/acme"})
    assert response.status_code == 503
    assert response.json()["code"] == "storage_error"
    assert response.headers["retry-after"] == "1"


def test_oversized_body_is_refused_before_it_is_read(world: World) -> None:
    big = {"id": "spiffe://example.org/agent/x", "kind": "agent", "jwk": {}, "pad": "x" * 70_000}
    response = world.admin("/admin/workloads", big)
    assert response.status_code == 413
    assert response.json()["code"] == "size_limit"
    form = world.start_form()
    form["request_details"] = "x" * 40_000
    token_response = world.post_token(form, world.proof(PLANNER))
    assert token_response.status_code == 400
    assert token_response.json()["error"] == "invalid_request"
