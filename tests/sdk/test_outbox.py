"""The outbox: reports are durable before they are acknowledged, delivered in the order they were
written, retried while the authority is away, and never dropped without a dead-letter record."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from authchain.errors import RemoteError, RemoteUnavailableError
from authchain.sdk.outbox import Outbox, OutboxSender


class FlakyAuthority:
    """Refuses (as unreachable) the first ``down_for`` deliveries, then records reports in order."""

    def __init__(
        self, down_for: int = 0, reject: set[str] | None = None, status: int = 400
    ) -> None:
        self.down_for = down_for
        self.reject = reject or set()
        self.status = status
        self.attempts: list[str] = []
        self.recorded: list[str] = []

    def __call__(self, report: Mapping[str, Any]) -> int:
        self.attempts.append(report["action"])
        if self.down_for > 0:
            self.down_for -= 1
            raise RemoteUnavailableError("connection refused")
        if report["action"] in self.reject:
            raise RemoteError("malformed report", error="invalid_request", status=self.status)
        self.recorded.append(report["action"])
        return len(self.recorded) - 1


def drain(sender: OutboxSender, limit: int = 100) -> None:
    for _ in range(limit):
        if sender.step() is None:
            return
    raise AssertionError("the outbox did not drain")


def test_queued_report_survives_a_restart(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    report_id = outbox.put({"action": "crm.update", "resource": "crm://acme"})
    outbox.close()

    reopened = Outbox(tmp_path / "outbox.db")
    head = reopened.head()
    assert head is not None
    _, report, attempts = head
    assert report == {"action": "crm.update", "resource": "crm://acme", "report_id": report_id}
    assert attempts == 0


def test_outbox_file_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    Outbox(tmp_path / "outbox.db").close()
    assert stat.S_IMODE((tmp_path / "outbox.db").stat().st_mode) == 0o600


def test_reports_wait_for_a_down_authority_and_arrive_in_order(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for name in ("first", "second", "third"):
        outbox.put({"action": name, "resource": "r"})
    authority = FlakyAuthority(down_for=3)
    sender = OutboxSender(outbox, authority)

    # While the authority is down the head is retried and nothing behind it overtakes it.
    for _ in range(3):
        delay = sender.step()
        assert delay is not None and delay > 0
    assert authority.attempts == ["first", "first", "first"]
    assert outbox.pending() == 3

    drain(sender)
    assert authority.recorded == ["first", "second", "third"]
    assert outbox.pending() == 0


def test_retry_delay_doubles_up_to_the_cap(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put({"action": "a", "resource": "r"})
    sender = OutboxSender(outbox, FlakyAuthority(down_for=10), min_backoff=0.5, max_backoff=3.0)
    delays = [sender.step() for _ in range(5)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_retry_after_from_the_authority_is_honoured(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put({"action": "a", "resource": "r"})

    def busy(report: Mapping[str, Any]) -> int:
        raise RemoteUnavailableError("busy", status=503, retry_after=7)

    assert OutboxSender(outbox, busy).step() == 7


def test_report_refused_for_good_is_kept_as_dead_letter_and_the_queue_moves_on(
    tmp_path: Path,
) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    for name in ("good", "bad", "after"):
        outbox.put({"action": name, "resource": "r"})
    authority = FlakyAuthority(reject={"bad"})
    drain(OutboxSender(outbox, authority))

    assert authority.recorded == ["good", "after"]
    [dead] = outbox.dead()
    assert dead.report["action"] == "bad"
    assert dead.reason.startswith("400 invalid_request")


def test_authentication_refusal_is_retried_not_dropped(tmp_path: Path) -> None:
    # A 401 means the service's own proof was refused (key not registered yet, clock off): the
    # report itself is fine and must not be thrown away.
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put({"action": "bad", "resource": "r"})
    sender = OutboxSender(outbox, FlakyAuthority(reject={"bad"}, status=401))
    assert (sender.step() or 0) > 0
    assert outbox.pending() == 1
    assert outbox.dead() == []


def test_unexpected_error_in_delivery_keeps_the_report(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    outbox.put({"action": "a", "resource": "r"})

    def broken(report: Mapping[str, Any]) -> int:
        raise RuntimeError("bug")

    assert (OutboxSender(outbox, broken).step() or 0) > 0
    head = outbox.head()
    assert head is not None and head[2] == 1


def test_background_sender_delivers_everything_then_stops(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    authority = FlakyAuthority()
    sender = OutboxSender(outbox, authority, min_backoff=0.01)
    sender.start()
    try:
        for i in range(20):
            outbox.put({"action": f"a{i}", "resource": "r"})
        assert outbox.wait_empty(10)
    finally:
        sender.stop()
    assert authority.recorded == [f"a{i}" for i in range(20)]


def test_full_outbox_says_so_so_the_service_can_refuse_new_work(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db", max_pending=2)
    outbox.put({"action": "a", "resource": "r"})
    assert outbox.has_room()
    outbox.put({"action": "b", "resource": "r"})
    assert not outbox.has_room()
