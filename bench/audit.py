"""Benchmark: the audit log's durable appends, proofs at a million entries, and full verification.

    .venv/bin/python bench/audit.py            (about a minute; writes bench/results/audit.json)

Measured:

* ``append_events_per_s``: durable appends through ``SQLiteStore.append_many`` in batches of 1,000
  realistic events (~900 bytes of canonical JSON each): canonical bytes, leaf hashes, integration
  into the tree (interior nodes written), a signed checkpoint per batch, one WAL transaction per
  batch with ``synchronous=FULL``. The events are built before timing, as the authority builds an
  event before it appends it; ``event_build_us`` reports that cost separately.
* ``append_threads_events_per_s``: 16 threads calling ``append`` one event at a time; group commit
  gathers them into shared transactions (``append_threads_batches`` is how many it took).
* Floor, measured in the same run: ``raw_sqlite_rows_per_s``, the same rows (already serialised and
  hashed) inserted into a table with the same schema and indexes, in the same batches, one
  transaction each, same WAL and ``synchronous=FULL``. Ratio ``append_vs_raw_sqlite`` (aim >= 0.5).
* ``proof_p50_us`` / ``proof_p99_us``: inclusion proofs for random entries of a 1,000,000-entry log
  against its full size, from stored nodes (``consistency_p99_us`` likewise). The million-entry log
  is loaded through the store's own group-commit path from pre-serialised canonical events (a fast
  path for the benchmark: building a million event objects first would take minutes); every entry
  is a valid event, and the full verification below checks that.
* ``verify_events_per_s``: ``authchain audit verify`` on that log, as the CLI runs it (worker
  processes for the event checks: ``verify_workers``); ``verify_single_process_events_per_s`` is
  the same on the 50,000-entry log without workers.
* ``startup_tail_ms``: the check an authority runs before it appends
  (``authchain.audit.startup.verify_at_start``) on that log after a verified start and
  ``STARTUP_TAIL`` appended events: the latest checkpoint, the remembered one, the stored edge and
  the new entries. ``startup_nothing_new_ms`` is the next start, with nothing appended. Ratio
  ``startup_vs_full_verify``: the first against the full verification above (same log, same run).
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _harness import percentile, write_results
from authchain._encoding import sha256_b64url
from authchain._ids import uuid7
from authchain.audit.events import AuditEvent
from authchain.audit.merkle import leaf_hash
from authchain.audit.startup import VERIFIED_CHECKPOINT, verify_at_start
from authchain.audit.store.base import PreparedEntry
from authchain.audit.store.sqlite import _SCHEMA, SQLiteStore

APPENDS = 50_000
BATCH = 1_000
THREADS = 16
THREAD_APPENDS = 12_000
BIG = 1_000_000
BIG_BATCH = 20_000
PROOFS = 2_000
STARTUP_TAIL = 1_000


def realistic_event(n: int) -> AuditEvent:
    """A hop.granted event as the authority records it: decision, chain, hashes, context."""
    return AuditEvent(
        id=uuid7(),
        time="2026-11-28T21:17:37.123456Z",
        kind="hop.granted",
        txn=uuid7(),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        span_id="00f067aa0ba902b7",
        initiator="user:alice@example.org",
        actor="spiffe://example.org/agent/planner",
        chain=["spiffe://example.org/agent/planner", "spiffe://example.org/agent/crm"],
        token=sha256_b64url(f"token {n}"),
        parent_token=sha256_b64url(f"parent {n}"),
        action="delegate",
        resource="spiffe://example.org/agent/crm",
        scope=["crm:read", "crm:write"],
        decision={
            "id": uuid7(),
            "effect": "allow",
            "policies": ["agents-may-delegate-crm"],
            "reasons": ["agents may delegate CRM access to CRM agents"],
            "errors": [],
            "policy_set_hash": "5f" * 32,
        },
        outcome="allowed",
        trust_domain="example.org",
        # The version 2 shape this release writes: the authority's own members in ``detail``.
        v=2,
        detail={
            "depth": 2,
            "jti": uuid7(),
            "exp": 1764364957,
            "parent_jti": uuid7(),
            "parent_log": n,
        },
    )


def bench_appends(workdir: Path) -> dict[str, float]:
    start = time.perf_counter()
    events = [realistic_event(n) for n in range(APPENDS)]
    build_us = (time.perf_counter() - start) / APPENDS * 1e6

    with SQLiteStore(workdir / "append.db") as store:
        start = time.perf_counter()
        for i in range(0, APPENDS, BATCH):
            store.append_many(events[i : i + BATCH])
        append_rate = APPENDS / (time.perf_counter() - start)

        start = time.perf_counter()
        verified = store.verify()
        single_verify_rate = verified.size / (time.perf_counter() - start)

    # The floor: the very same rows, serialised and hashed beforehand, same schema and batches.
    rows = [PreparedEntry.of(e) for e in events]
    raw = sqlite3.connect(workdir / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    for statement in _SCHEMA.strip().split(";"):
        if statement.strip():
            raw.execute(statement)
    start = time.perf_counter()
    for i in range(0, APPENDS, BATCH):
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany(
            "INSERT INTO entries (idx, event_id, txn, token, leaf_hash, leaf) VALUES (?,?,?,?,?,?)",
            [
                (i + k, r.event_id, r.txn, r.token, r.leaf_hash, r.leaf)
                for k, r in enumerate(rows[i : i + BATCH])
            ],
        )
        raw.execute("COMMIT")
    raw_rate = APPENDS / (time.perf_counter() - start)
    raw.close()

    # Many threads appending one event each: group commit.
    thread_events = [realistic_event(n) for n in range(THREAD_APPENDS)]
    with SQLiteStore(workdir / "threads.db") as store:
        per_thread = THREAD_APPENDS // THREADS

        def worker(k: int) -> None:
            for event in thread_events[k * per_thread : (k + 1) * per_thread]:
                store.append(event)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(THREADS)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        threads_rate = per_thread * THREADS / (time.perf_counter() - start)
        batches = sum(1 for _ in store.checkpoints()) - 1

    return {
        "event_build_us": build_us,
        "append_events_per_s": append_rate,
        "raw_sqlite_rows_per_s": raw_rate,
        "append_threads_events_per_s": threads_rate,
        "append_threads_batches": batches,
        "verify_single_process_events_per_s": single_verify_rate,
    }


def load_million(path: Path) -> float:
    """Fill a store with BIG valid events through its group-commit path, from canonical bytes."""
    template = realistic_event(0)
    leaf = template.leaf_bytes()
    ids = [template.id.encode(), template.txn.encode()]  # type: ignore[union-attr]
    token = template.token.encode()  # type: ignore[union-attr]
    for placeholder in (*ids, token):
        assert leaf.count(placeholder) == 1
    start = time.perf_counter()
    with SQLiteStore(path) as store:
        for first in range(0, BIG, BIG_BATCH):
            entries = []
            for n in range(first, first + BIG_BATCH):
                # Same-length substitutions keep the member order, so the bytes stay canonical.
                event_id = f"01a22400-{n >> 48 & 0xFFFF:04x}-7{n >> 36 & 0xFFF:03x}-8{n >> 24 & 0xFFF:03x}-{n & 0xFFFFFFFFFFFF:012x}"
                txn = f"01a22401-0000-7000-8000-{n // 7:012x}"
                token_hash = sha256_b64url(str(n))
                data = (
                    leaf.replace(ids[0], event_id.encode())
                    .replace(ids[1], txn.encode())
                    .replace(token, token_hash.encode())
                )
                entries.append(PreparedEntry(event_id, txn, token_hash, data, leaf_hash(data)))
            store._append_prepared(entries)
    return time.perf_counter() - start


def bench_million(workdir: Path) -> dict[str, float]:
    path = workdir / "million.db"
    build_s = load_million(path)
    rng = random.Random(9162)
    with SQLiteStore(path, create=False) as store:
        size = store.size()
        inclusion = []
        for _ in range(PROOFS):
            index = rng.randrange(size)
            start = time.perf_counter_ns()
            store.inclusion_proof(index)
            inclusion.append((time.perf_counter_ns() - start) / 1000)
        consistency = []
        for _ in range(PROOFS // 4):
            old = rng.randrange(1, size)
            start = time.perf_counter_ns()
            store.consistency_proof(old)
            consistency.append((time.perf_counter_ns() - start) / 1000)
        inclusion.sort()
        consistency.sort()

        workers = min(os.cpu_count() or 1, 4)
        workers = workers if workers > 1 else 0
        start = time.perf_counter()
        result = store.verify(workers=workers)
        verify_s = time.perf_counter() - start
        startup = bench_startup(store)
    return {
        **startup,
        "verify_s": verify_s,
        "log_size": result.size,
        "load_1m_s": build_s,
        "proof_p50_us": statistics.median(inclusion),
        "proof_p99_us": percentile(inclusion, 99),
        "consistency_p99_us": percentile(consistency, 99),
        "verify_events_per_s": result.size / verify_s,
        "verify_workers": workers,
        "db_bytes_per_entry": path.stat().st_size / result.size,
    }


def bench_startup(store: SQLiteStore) -> dict[str, float]:
    """The start-up check after a verified start and STARTUP_TAIL appends, then with none."""
    # The full verification just measured is what a first start does; remember it as one would.
    store.put_meta(VERIFIED_CHECKPOINT, store.latest_checkpoint().text)
    store.append_many([realistic_event(n) for n in range(STARTUP_TAIL)])
    start = time.perf_counter()
    check = verify_at_start(store)
    tail_s = time.perf_counter() - start
    assert check.incremental and check.size - check.since == STARTUP_TAIL
    start = time.perf_counter()
    verify_at_start(store)
    again_s = time.perf_counter() - start
    return {"startup_tail_ms": tail_s * 1000, "startup_nothing_new_ms": again_s * 1000}


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="authchain-bench-audit-"))
    try:
        figures = bench_appends(workdir)
        figures |= bench_million(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ratios = {
        "append_vs_raw_sqlite": figures["append_events_per_s"] / figures["raw_sqlite_rows_per_s"],
        "threads_vs_raw_sqlite": figures["append_threads_events_per_s"]
        / figures["raw_sqlite_rows_per_s"],
        "startup_vs_full_verify": figures["startup_tail_ms"] / 1000 / figures["verify_s"],
    }
    write_results("audit", figures, ratios)


if __name__ == "__main__":
    main()
