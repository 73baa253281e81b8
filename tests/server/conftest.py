"""Fixtures of the HTTP API tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from _http_world import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = make_world(tmp_path)
    yield w
    w.client.close()
    w.store.close()
