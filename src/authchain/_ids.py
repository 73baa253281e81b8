"""Identifiers: UUIDv7 (RFC 9562 section 5.7) for decisions and events, and W3C trace context ids.

Python 3.11's ``uuid`` module has no ``uuid7``; the layout is simple enough to write here: a 48-bit
Unix millisecond timestamp, then version and variant bits around 74 random bits. Ids made later sort
later, which keeps the log's secondary indexes append-mostly.
"""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["uuid7", "new_trace_id", "new_span_id"]


def uuid7(now_ms: int | None = None) -> str:
    """A new UUIDv7 as its canonical lowercase string."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76  # RFC 9562 section 5.7: version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 9562 section 4.1: variant 10
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return str(uuid.UUID(int=value))


def new_trace_id() -> str:
    """W3C Trace Context section 3.2.2.3: 16 random bytes as 32 lowercase hex digits, not all zero."""
    while True:
        value = os.urandom(16).hex()
        if value != "0" * 32:
            return value


def new_span_id() -> str:
    """W3C Trace Context section 3.2.2.4: 8 random bytes as 16 lowercase hex digits, not all zero."""
    while True:
        value = os.urandom(8).hex()
        if value != "0" * 16:
            return value
