"""Fixtures of the authority tests: a real SQLite store per test and a populated world on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _authority_world import Clock, World

from authchain.audit.store import LogStore, open_store
from authchain.policy import PolicyEngine


@pytest.fixture(scope="session")
def policy() -> PolicyEngine:
    # Loading and validating the default pack is the slow part of an Authority; it is immutable.
    return PolicyEngine.default()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[LogStore]:
    opened = open_store(str(db_path), create=True)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(store: LogStore, policy: PolicyEngine, clock: Clock) -> World:
    return World.populated(store, policy=policy, clock=clock)
