"""Request parsing for the HTTP API: bounded bodies, strict forms, strict JSON, bounded integers.

Everything here reads untrusted input and either returns a value or raises :class:`HttpError` with a
4xx status; nothing leaks ``ValueError`` or ``UnicodeDecodeError`` (CONVENTIONS.md, "Errors").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
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
    "content_digest",
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
# RFC 9530 section 2: Content-Digest is a Dictionary; a request names a few algorithms at most.
_MAX_DIGEST_HEADER: Final = 512


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


def content_digest(request: Request, body: bytes) -> str:
    """The request's RFC 9530 ``Content-Digest`` field value, checked against ``body``.

    RFC 9530 section 2: the field is an RFC 8941 Dictionary of algorithm to Byte Sequence
    (``sha-256=:<base64>:``). Exactly one field line is accepted; its ``sha-256`` member is
    required and must be the SHA-256 of the body (other algorithms beside it are ignored, section
    2). Returns the field value as sent, which the DPoP proof must carry to cover the body.
    """
    values = request.headers.getlist("content-digest")
    if not values:
        raise HttpError(
            400,
            "content_digest_required",
            "a Content-Digest header (RFC 9530, sha-256) is required, and the DPoP proof must "
            "carry the same value in its content_digest claim",
        )
    if len(values) > 1 or len(values[0]) > _MAX_DIGEST_HEADER or not values[0].isascii():
        raise HttpError(400, "invalid_content_digest", "Content-Digest must be one short field")
    header = values[0]
    digest: bytes | None = None
    for member in header.split(","):
        name, _, rest = member.strip().partition("=")
        value = rest.split(";", 1)[0].strip()
        if name != "sha-256":
            continue
        if digest is not None or len(value) < 2 or value[0] != ":" or value[-1] != ":":
            raise HttpError(
                400, "invalid_content_digest", "Content-Digest sha-256 must be one :base64:"
            )
        try:
            digest = base64.b64decode(value[1:-1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HttpError(
                400, "invalid_content_digest", "Content-Digest sha-256 is not base64"
            ) from exc
    if digest is None:
        raise HttpError(400, "invalid_content_digest", "Content-Digest has no sha-256 member")
    if not hmac.compare_digest(digest, hashlib.sha256(body).digest()):
        raise HttpError(
            400, "content_digest_mismatch", "Content-Digest is not the SHA-256 of the request body"
        )
    return header


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
