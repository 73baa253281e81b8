"""Shared builders for the policy tests: the default engine and a request with sane defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authchain.policy import Party, PolicyEngine, PolicyRequest

PLANNER = "spiffe://example.org/agent/planner"
CRM = "spiffe://example.org/tool/crm"
TIME = 1_767_225_600  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="session")
def default_engine() -> PolicyEngine:
    return PolicyEngine.default()


def delegate_request(**changes: Any) -> PolicyRequest:
    """A hop that the default pack allows: planner passes crm:read to the CRM tool."""
    base = PolicyRequest(
        action="delegate",
        principal=Party(PLANNER, "agent", "example.org", ("crm:read", "crm:write")),
        resource=Party(CRM, "tool", "example.org", ("crm:read", "crm:write")),
        task="txn-0001",
        initiator="alice@example.org",
        requested_scopes=("crm:read",),
        held_scopes=("crm:read", "crm:write"),
        chain=(PLANNER, CRM),
        depth=2,
        purpose="summarise the open deals",
        time=TIME,
    )
    return dataclasses.replace(base, **changes)


def start_task_request(**changes: Any) -> PolicyRequest:
    """A task start that the default pack allows: alice asks for a scope she was granted."""
    base = PolicyRequest(
        action="start_task",
        principal=Party("alice@example.org", "user", "example.org", ("crm:read", "crm:write")),
        resource=Party("txn-0001", "task", "example.org"),
        task="txn-0001",
        initiator="alice@example.org",
        requested_scopes=("crm:read",),
        held_scopes=("crm:read", "crm:write"),
        chain=(PLANNER,),
        depth=1,
        purpose="summarise the open deals",
        time=TIME,
    )
    return dataclasses.replace(base, **changes)


def invoke_request(**changes: Any) -> PolicyRequest:
    """An invocation that the default pack allows: the CRM tool is called with crm:read."""
    base = PolicyRequest(
        action="invoke",
        principal=Party(PLANNER, "agent", "example.org", ("crm:read",)),
        resource=Party(CRM, "tool", "example.org", ("crm:read",)),
        task="txn-0001",
        initiator="alice@example.org",
        requested_scopes=("crm:read",),
        held_scopes=("crm:read",),
        chain=(PLANNER,),
        depth=1,
        purpose="summarise the open deals",
        time=TIME,
    )
    return dataclasses.replace(base, **changes)


@pytest.fixture
def write_policies(tmp_path: Path) -> Callable[..., Path]:
    """Write ``{file name: text}`` into a fresh directory and return it."""
    counter = iter(range(1_000_000))

    def write(files: dict[str, str], *, name: str | None = None) -> Path:
        directory = tmp_path / (name or f"set{next(counter)}")
        directory.mkdir()
        for file_name, text in files.items():
            (directory / file_name).write_text(text, encoding="utf-8")
        return directory

    return write


@pytest.fixture
def delegate() -> Callable[..., PolicyRequest]:
    return delegate_request


@pytest.fixture
def start_task() -> Callable[..., PolicyRequest]:
    return start_task_request


@pytest.fixture
def invoke() -> Callable[..., PolicyRequest]:
    return invoke_request
