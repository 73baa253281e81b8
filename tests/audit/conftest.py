"""Fixtures of the audit tests: event factories and stores behind the LogStore protocol."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from authchain._encoding import sha256_b64url
from authchain._ids import new_span_id, new_trace_id, uuid7
from authchain.audit.events import AuditEvent
from authchain.audit.store import LogStore
from authchain.audit.store.sqlite import SQLiteStore

_counter = itertools.count()


def make_event(**overrides: Any) -> AuditEvent:
    """A realistic hop.granted event; every field can be overridden (None removes it)."""
    n = next(_counter)
    fields: dict[str, Any] = {
        "id": uuid7(),
        "time": "2026-11-28T21:17:37.123456Z",
        "kind": "hop.granted",
        "txn": "01a22400-0000-7000-8000-000000000001",
        "trace_id": new_trace_id(),
        "span_id": new_span_id(),
        "initiator": "user:alice@example.org",
        "actor": "spiffe://example.org/agent/planner",
        "chain": ["spiffe://example.org/agent/planner", "spiffe://example.org/tool/crm"],
        "token": sha256_b64url(f"token-{n}"),
        "parent_token": sha256_b64url(f"parent-{n}"),
        "action": "delegate",
        "resource": "spiffe://example.org/tool/crm",
        "scope": ["crm:read"],
        "decision": {
            "id": uuid7(),
            "effect": "allow",
            "policies": ["agents-may-delegate-read"],
            "reasons": ["agents may delegate read access to CRM tools"],
            "errors": [],
            "policy_set_hash": "a3" * 32,
        },
        "outcome": "allowed",
        "trust_domain": "example.org",
        "attrs": {"depth": 2, "n": n},
    }
    fields.update(overrides)
    return AuditEvent(**{k: v for k, v in fields.items() if v is not None})


@pytest.fixture
def event_factory() -> Callable[..., AuditEvent]:
    return make_event


# Every store implementation the contract suite runs against. The PostgreSQL store will add a
# "postgres" parameter here (marked postgres) and pass the same tests.
STORES = ["sqlite"]


def open_test_store(kind: str, path: Path, **kwargs: Any) -> LogStore:
    if kind == "sqlite":
        return SQLiteStore(path / "audit.db", **kwargs)
    raise AssertionError(kind)


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(store_kind: str, tmp_path: Path) -> Iterator[LogStore]:
    opened = open_test_store(store_kind, tmp_path)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"
