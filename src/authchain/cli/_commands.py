"""Imports every command module so each registers its commands on the shared Typer app."""

from __future__ import annotations

from authchain.cli import (
    audit,  # noqa: F401
    keys,  # noqa: F401
    policy,  # noqa: F401
    report,  # noqa: F401
    serve,  # noqa: F401
    version,  # noqa: F401
)
