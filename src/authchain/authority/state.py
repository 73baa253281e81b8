"""The state the authority keeps beside the log, and its check against the log.

The registry and the revocations are kept in the store's ``meta`` table so that the authority
starts without replaying the log. They are a cache, not evidence: every entry names the log index
of the record that created it, and when an authority opens a store each one is checked against that
record (one read per entry). A key, scope, issuer or revocation edited in the store is refused at
start-up with :class:`LogIntegrityError` instead of being trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from authchain._encoding import json_loads_strict
from authchain.audit.records import Record, read
from authchain.audit.store import LogStore
from authchain.errors import AuthchainError, LogIntegrityError

__all__ = ["SideState"]

_R = TypeVar("_R", bound=Record)


class SideState:
    """JSON documents kept beside the log under fixed names, and the one check against the log."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    def load(self, name: str) -> Any | None:
        stored = self.store.get_meta(name)
        return None if stored is None else json_loads_strict(stored)

    def save(self, name: str, data: Any) -> None:
        self.store.put_meta(name, orjson.dumps(data).decode())

    def entry(self, index: int) -> Record | None:
        """The record at ``index``, or None if there is none or it does not read as a record."""
        try:
            if not 0 <= index < self.store.size():
                return None
            return read(self.store.get(index), index)
        except AuthchainError:
            return None

    def logged(
        self,
        index: Any,
        kind: type[_R] | tuple[type[_R], ...],
        matches: Callable[[_R], bool],
        what: str,
    ) -> _R:
        """The record at ``index``, which must be of ``kind`` and satisfy ``matches``.

        ``what`` names the cached item in the error ("the registry's workload 'spiffe://...'").
        """
        record = self.entry(index) if isinstance(index, int) else None
        if record is None or not isinstance(record, kind):
            raise LogIntegrityError(
                f"{what} has no matching record in the log (it names index {index})",
                index if isinstance(index, int) else None,
            )
        if not matches(record):
            raise LogIntegrityError(
                f"{what} does not match its record in the log (index {index})", index
            )
        return record
