"""A durable local outbox for action reports: a down authority loses nothing.

A tool service performs an action, then must report it to the authority (``POST /events``). If the
report were sent inline, an unreachable authority would either block the tool or lose the evidence.
Instead the report is written to a local SQLite file and committed (WAL, ``synchronous=FULL``)
*before* the response leaves the service, and a background sender delivers the file's reports to the
authority strictly in the order they were written, retrying the head of the queue with capped
exponential backoff until the authority acknowledges it.

A report the authority rejects as malformed (a 4xx other than an authentication failure) can never
succeed; it is moved to a ``dead`` table, kept for an operator, and the queue moves on. Nothing is
deleted without an acknowledgement or a dead-letter record.

The file holds raw task tokens and proofs until they are delivered (the authority re-verifies them);
it is created with mode 0600. One outbox file belongs to one service process.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from authchain._ids import uuid7
from authchain.errors import RemoteError, RemoteUnavailableError, StorageError

__all__ = ["Outbox", "OutboxSender", "DeadReport"]

_log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    seq INTEGER PRIMARY KEY,
    report_id TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    buried REAL NOT NULL
);
"""

# Answers after which the same report can never be accepted: the report itself is wrong.
_PERMANENT_STATUSES: Final = frozenset({400, 404, 405, 409, 413, 415, 422})


@dataclass(frozen=True, slots=True)
class DeadReport:
    """A report the authority refused for good, kept for an operator."""

    seq: int
    report_id: str
    report: Mapping[str, Any]
    attempts: int
    reason: str


class Outbox:
    """An ordered queue of reports in one SQLite file. Thread-safe."""

    def __init__(self, path: str | Path, *, max_pending: int = 100_000) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        try:
            if not self.path.exists():
                # Created private: it holds raw tokens until they are delivered.
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # Durable on commit: a report acknowledged to the caller survives a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the outbox {self.path}: {exc}") from exc
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # Kept in memory so a service can ask "is there room?" on every request without a query.
        self._pending = int(self._run("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise StorageError(f"outbox {self.path}: {exc}") from exc

    def put(self, report: Mapping[str, Any]) -> str:
        """Append a report durably and return its ``report_id`` (the idempotency key the authority
        deduplicates retries by)."""
        body = dict(report)
        report_id = body.get("report_id")
        if not isinstance(report_id, str):
            report_id = uuid7()
            body["report_id"] = report_id
        with self._changed:
            self._run(
                "INSERT INTO outbox (report_id, body, created) VALUES (?, ?, ?)",
                (report_id, orjson.dumps(body), time.time()),
            )
            self._pending += 1
            self._changed.notify_all()
        return report_id

    def has_room(self) -> bool:
        """False when ``max_pending`` reports wait: a service then refuses new work (fail closed)
        rather than act without being able to record it."""
        return self._pending < self.max_pending

    def pending(self) -> int:
        with self._lock:
            row = self._run("SELECT COUNT(*) FROM outbox").fetchone()
        return int(row[0])

    def head(self) -> tuple[int, dict[str, Any], int] | None:
        """The oldest undelivered report: ``(seq, report, attempts)``."""
        with self._lock:
            row = self._run(
                "SELECT seq, body, attempts FROM outbox ORDER BY seq LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return int(row[0]), orjson.loads(row[1]), int(row[2])

    def ack(self, seq: int) -> None:
        with self._changed:
            if self._run("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount:
                self._pending -= 1
            self._changed.notify_all()

    def failed(self, seq: int, error: str) -> int:
        """Count a failed attempt; returns the number of attempts so far."""
        with self._lock:
            self._run(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error[:500], seq),
            )
            row = self._run("SELECT attempts FROM outbox WHERE seq = ?", (seq,)).fetchone()
        return int(row[0]) if row else 0

    def bury(self, seq: int, reason: str) -> None:
        """Move a report the authority will never accept to the dead table, in one transaction."""
        with self._changed:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO dead (seq, report_id, body, created, attempts, reason, buried) "
                    "SELECT seq, report_id, body, created, attempts + 1, ?, ? FROM outbox "
                    "WHERE seq = ?",
                    (reason[:500], time.time(), seq),
                )
                deleted = self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
                self._db.execute("COMMIT")
                self._pending -= deleted
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StorageError(f"outbox {self.path}: {exc}") from exc
            self._changed.notify_all()

    def dead(self) -> list[DeadReport]:
        with self._lock:
            rows = self._run(
                "SELECT seq, report_id, body, attempts, reason FROM dead ORDER BY seq"
            ).fetchall()
        return [DeadReport(int(r[0]), r[1], orjson.loads(r[2]), int(r[3]), r[4]) for r in rows]

    def wake(self) -> None:
        """Wake whoever waits in :meth:`wait_changed` (a sender being stopped)."""
        with self._changed:
            self._changed.notify_all()

    def wait_changed(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Block until every report is delivered or buried, up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if int(self._run("SELECT COUNT(*) FROM outbox").fetchone()[0]) == 0:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.5))


class OutboxSender:
    """Delivers an outbox in order on a background thread.

    ``deliver`` sends one report and returns the log index the authority recorded it at
    (:meth:`AuthorityClient.report`). A :class:`RemoteUnavailableError`, an authentication refusal
    (401/403: e.g. the service's key is not registered yet, or its clock is off) or any unexpected
    error leaves the report at the head and retries it after a backoff that doubles from
    ``min_backoff`` to ``max_backoff`` (or the server's ``Retry-After``). A refusal of the report
    itself (400, 413, ...) buries it.
    """

    def __init__(
        self,
        outbox: Outbox,
        deliver: Callable[[Mapping[str, Any]], int],
        *,
        min_backoff: float = 0.2,
        max_backoff: float = 30.0,
        on_delivered: Callable[[Mapping[str, Any], int], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.deliver = deliver
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.on_delivered = on_delivered
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="authchain-outbox", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.outbox.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self) -> float | None:
        """Try the head report once. Returns ``None`` if the queue is empty, ``0`` after progress,
        or the delay before the head should be retried."""
        head = self.outbox.head()
        if head is None:
            return None
        seq, report, attempts = head
        try:
            index = self.deliver(report)
        except RemoteUnavailableError as exc:
            count = self.outbox.failed(seq, str(exc))
            return exc.retry_after or self._backoff(count)
        except RemoteError as exc:
            if exc.status in _PERMANENT_STATUSES:
                _log.error(
                    "the authority refused report %s for good: %s", report.get("report_id"), exc
                )
                self.outbox.bury(seq, f"{exc.status} {exc.error}: {exc.message}")
                return 0
            count = self.outbox.failed(seq, str(exc))
            return exc.retry_after or self._backoff(count)
        except Exception as exc:  # noqa: BLE001 - the sender must outlive any one failure
            _log.warning("delivering report %s failed: %r", report.get("report_id"), exc)
            count = self.outbox.failed(seq, repr(exc))
            return self._backoff(count)
        self.outbox.ack(seq)
        self.delivered += 1
        if self.on_delivered is not None:
            self.on_delivered(report, index)
        return 0

    def _backoff(self, attempts: int) -> float:
        return float(min(self.max_backoff, self.min_backoff * (2 ** min(attempts - 1, 30))))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.step()
            except StorageError as exc:
                _log.error("outbox unavailable: %s", exc)
                delay = self.max_backoff
            if delay is None:
                self.outbox.wait_changed(1.0)
            elif delay > 0:
                self._stop.wait(delay)
