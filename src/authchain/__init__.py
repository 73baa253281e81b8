"""Authchain: make every action of an AI agent attributable."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
