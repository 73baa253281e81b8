"""The authority's HTTP API (a thin adapter over :class:`Authority`).

:func:`create_app` returns a Starlette ASGI application; ``authchain serve`` runs it on uvicorn.
The OAuth error table lives in :mod:`authchain.server.errors`; the RFC 8693 identifiers are the
token code's (:mod:`authchain.tokens`).
"""

from __future__ import annotations

from authchain.server.app import create_app
from authchain.server.openapi import openapi_document

__all__ = ["create_app", "openapi_document"]
