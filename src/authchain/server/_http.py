"""Request parsing for the HTTP API: bounded bodies, strict forms, strict JSON, bounded integers.

Everything here reads untrusted input and either returns a value or raises :class:`HttpError` with a
4xx status; nothing leaks ``ValueError`` or ``UnicodeDecodeError`` (CONVENTIONS.md, "Errors").
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

import anyio
from starlette.requests import Request

from authchain._encoding import json_loads_strict
from authchain.errors import HttpError, MalformedError

__all__ = [
    "BODY_TIMEOUT",
    "FORM_MEDIA_TYPE",
    "read_body",
    "parse_form",
    "parse_json_object",
    "query_int",
    "media_type",
    "optional_str",
    "required_str",
    "string_list",
]

# RFC 6749 section 3.2 / RFC 8693 section 2.1: the token endpoint takes this encoding only.
FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"

#: Seconds a client has to send a whole request body, from the first read. A client that trickles
#: its body (or sends a Content-Length and then stalls) holds a connection and a worker; after this
#: it is answered 408 (RFC 9110 section 15.5.9). Read when a body is read, so a test may lower it.
BODY_TIMEOUT: float = 10.0

_MAX_FORM_FIELDS: Final = 32
# Scopes of a principal or a workload: a registration names a handful.
_MAX_LIST_ENTRIES: Final = 64


def media_type(request: Request) -> str:
    """The request's media type without parameters, lowercased (RFC 9110 section 8.3.1)."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The request body, refused with 413 once it exceeds ``limit`` bytes (before reading it all
    when ``Content-Length`` says so), and with 408 when it has not all arrived within ``timeout``
    seconds (default :data:`BODY_TIMEOUT`)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit() or len(declared) > 12:
            raise HttpError(400, "invalid_request", "Content-Length is not a number")
        if int(declared) > limit:
            raise HttpError(413, "size_limit", f"request body is larger than {limit} bytes")
    seconds = BODY_TIMEOUT if timeout is None else timeout
    chunks: list[bytes] = []
    total = 0
    with anyio.move_on_after(seconds) as scope:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HttpError(413, "size_limit", f"request body is larger than {limit} bytes")
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise HttpError(
            408,
            "request_timeout",
            f"the request body did not arrive within {seconds:g} seconds",
            {"Connection": "close"},
        )
    return b"".join(chunks)


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict.

    RFC 6749 section 3.2: a parameter sent more than once is an error, and a parameter sent without a
    value is treated as omitted. The body must be ASCII (percent-encoding carries anything else) and
    its percent-encoded octets valid UTF-8.
    """
    try:
        text = body.decode("ascii")
        pairs = urllib.parse.parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=bool(text),
            encoding="utf-8",
            errors="strict",
            max_num_fields=_MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpError(
            400, "invalid_request", "the body is not a valid form-urlencoded document"
        ) from exc
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise HttpError(
                400,
                "invalid_request",
                f"parameter {name[:40]!r} is repeated (RFC 6749 section 3.2)",
            )
        seen.add(name)
        if value:
            form[name] = value
    return form


def parse_json_object(body: bytes, limit: int) -> dict[str, Any]:
    """A strict JSON object (no duplicate members, no NaN), or a 400 problem."""
    try:
        value = json_loads_strict(body, max_len=limit)
    except MalformedError as exc:
        raise HttpError(
            400, "invalid_request", f"the body is not valid JSON: {exc.message}"
        ) from exc
    if not isinstance(value, dict):
        raise HttpError(400, "invalid_request", "the body must be a JSON object")
    return value


def required_str(data: Mapping[str, Any], name: str, limit: int = 2048) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise HttpError(
            400, "invalid_request", f"{name!r} is required and must be a non-empty string"
        )
    if len(value) > limit:
        raise HttpError(400, "invalid_request", f"{name!r} is longer than {limit} characters")
    return value


def optional_str(data: Mapping[str, Any], name: str, limit: int = 2048) -> str | None:
    if data.get(name) is None:
        return None
    return required_str(data, name, limit)


def string_list(data: Mapping[str, Any], name: str) -> list[str]:
    value = data.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpError(400, "invalid_request", f"{name!r} must be an array of strings")
    if len(value) > _MAX_LIST_ENTRIES:
        raise HttpError(
            400, "invalid_request", f"{name!r} has more than {_MAX_LIST_ENTRIES} entries"
        )
    return value


def query_int(request: Request, name: str) -> int:
    """A required non-negative integer query parameter below 2**63 (the store's index range)."""
    values = request.query_params.getlist(name)
    if not values:
        raise HttpError(400, "invalid_request", f"query parameter {name!r} is required")
    if len(values) > 1:
        raise HttpError(400, "invalid_request", f"query parameter {name!r} is repeated")
    text = values[0]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise HttpError(
            400, "invalid_request", f"query parameter {name!r} must be a non-negative integer"
        )
    return int(text)
