"""Shared by the processes of the example: key files and waiting for a service to come up."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx

from authchain.identity.keys import SigningKey


def save_key(key: SigningKey, path: Path) -> None:
    """Write a workload's private key, readable by its owner only."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key.private_jwk(), f)


def load_key(path: str | Path) -> SigningKey:
    return SigningKey.from_private_jwk(json.loads(Path(path).read_text()))


def wait_until_up(url: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up within {timeout} s")
