"""The authority's HTTP API (a thin adapter over :class:`Authority`).

:func:`create_app` returns a Starlette ASGI application; ``authchain serve`` runs it on uvicorn.
"""

from __future__ import annotations

from authchain.server._token_route import TOKEN_EXCHANGE, TXN_TOKEN_TYPE
from authchain.server.app import create_app
from authchain.server.errors import OAUTH_ERRORS, oauth_error_code
from authchain.server.openapi import openapi_document
from authchain.tokens.id_token import ID_TOKEN_TYPE

__all__ = [
    "ID_TOKEN_TYPE",
    "OAUTH_ERRORS",
    "TOKEN_EXCHANGE",
    "TXN_TOKEN_TYPE",
    "create_app",
    "oauth_error_code",
    "openapi_document",
]
