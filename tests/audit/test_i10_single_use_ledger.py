"""The single-use ledger of the audit store (issue 10, point 5): a value is spent by the event it is
appended with, in the same transaction, once, whichever process appends and across restarts. Runs
against every store of the contract (conftest's ``store`` fixture)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import make_event

from authchain.audit.store import Claim, LogStore
from authchain.audit.store.sqlite import SQLiteStore
from authchain.errors import ReplayError


def test_a_claimed_value_cannot_be_claimed_again_and_the_error_names_the_first(
    store: LogStore,
) -> None:
    first = store.append(make_event(), once=[Claim("report", "tool r-1", 10**10, "digest-1")])
    size = store.size()
    with pytest.raises(ReplayError) as caught:
        store.append(make_event(), once=[Claim("report", "tool r-1", 10**10, "digest-2")])
    error = caught.value
    assert (error.scope, error.first_index, error.first_value) == ("report", first, "digest-1")
    assert store.size() == size  # nothing of the refused append was written
    assert store.claimed("report", "tool r-1") == (first, "digest-1")
    assert store.claimed("report", "tool r-2") is None
    assert store.verify().size == size


def test_the_same_key_in_another_scope_is_another_value(store: LogStore) -> None:
    store.append(make_event(), once=[Claim("dpop", "k", 10**10)])
    store.append(make_event(), once=[Claim("presentation", "k", 10**10)])
    assert store.size() == 2


def test_a_conflict_fails_that_append_alone_and_the_group_commit_proceeds(
    store: LogStore,
) -> None:
    store.append(make_event(), once=[Claim("presentation", "spent", 10**10)])
    outcomes: list[object] = []
    barrier = threading.Barrier(16)

    def append(n: int) -> None:
        claim = Claim("presentation", "spent" if n % 4 == 0 else f"fresh-{n}", 10**10)
        barrier.wait()
        try:
            outcomes.append(store.append(make_event(), once=[claim]))
        except ReplayError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replays = [o for o in outcomes if isinstance(o, ReplayError)]
    assert len(replays) == 4 and all(r.first_index == 0 for r in replays)
    assert sorted(o for o in outcomes if isinstance(o, int)) == list(range(1, 13))
    assert store.verify().size == 13


def test_racing_claims_of_one_value_are_won_once(store: LogStore) -> None:
    outcomes: list[object] = []
    barrier = threading.Barrier(12)

    def append() -> None:
        barrier.wait()
        try:
            outcomes.append(store.append(make_event(), once=[Claim("id_token", "h", 10**10)]))
        except ReplayError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=append) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if isinstance(o, int)]
    assert len(won) == 1
    assert all(
        isinstance(o, ReplayError) and o.first_index == won[0] for o in outcomes if o != won[0]
    )


def test_a_claim_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SQLiteStore(path) as store:
        index = store.append(make_event(), once=[Claim("dpop", "jkt:jti", 10**10)])
    with SQLiteStore(path) as reopened, pytest.raises(ReplayError) as caught:
        reopened.append(make_event(), once=[Claim("dpop", "jkt:jti", 10**10)])
    assert caught.value.first_index == index


def test_two_processes_sharing_a_log_spend_a_value_once(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SQLiteStore(path) as one, SQLiteStore(path) as two:
        one.append(make_event(), once=[Claim("dpop", "v", 10**10)])
        with pytest.raises(ReplayError):
            two.append(make_event(), once=[Claim("dpop", "v", 10**10)])
        two.append(make_event(), once=[Claim("dpop", "w", 10**10)])
        with pytest.raises(ReplayError):
            one.append(make_event(), once=[Claim("dpop", "w", 10**10)])
        assert one.size() == two.size() == 2
        assert two.verify().size == 2


def test_pruning_forgets_only_expired_claims(store: LogStore) -> None:
    store.append(make_event(), once=[Claim("dpop", "old", 100), Claim("dpop", "new", 200)])
    assert store.prune_claims(150) == 1
    assert store.claimed("dpop", "old") is None
    assert store.claimed("dpop", "new") == (0, None)
    store.append(make_event(), once=[Claim("dpop", "old", 300)])  # forgotten, so free again


def test_one_append_may_name_a_value_twice(store: LogStore) -> None:
    store.append(make_event(), once=[Claim("report", "x", 10**10), Claim("report", "x", 10**10)])
    assert store.claimed("report", "x") == (0, None)


def test_a_log_written_before_the_ledger_gains_it_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with SQLiteStore(path) as store:
        store.append(make_event())
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE once")
    conn.commit()
    conn.close()
    with SQLiteStore(path) as reopened:
        reopened.append(make_event(), once=[Claim("dpop", "k", 10**10)])
        assert reopened.claimed("dpop", "k") == (1, None)
        assert reopened.verify().size == 2
