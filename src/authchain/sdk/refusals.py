"""Refusals of presented tokens, summarised so a flood cannot fill the outbox or the log.

A tool refuses every presentation that does not verify, and each refusal is evidence. Reported one
by one, though, junk sent to a tool (garbage tokens, replays) would become as many outbox rows and
log entries as requests. So refusals are grouped per *who* (the presenting key, when a verified
proof names it; otherwise the request's source address, since an unproven key costs an attacker
nothing) and refusal code, within a window:

* the first refusal of a group in a window is reported in full (the token and proof, which the
  authority verifies again), as long as the window's budget of full reports lasts;
* the others are counted, and when the window closes one summary report per group carries the
  count (in its ``count`` member, which the authority keeps as the service's claim), for the
  ``max_summaries`` largest groups; the rest are summed into one more summary.

So a window costs at most ``full_per_window + max_summaries + 1`` reports, whatever arrives (the
defaults: 9 per 10 s, below the authority's budget of unverified reports per service), and memory is
bounded: at most ``max_groups`` groups per window, refusals beyond them counted in one overflow
group. Pass ``RefusalSummaries(window=, full_per_window=, max_groups=)`` to the
middleware's ``refusals=`` to tune it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["RefusalSummaries"]

_OVERFLOW: Final = "overflow"


@dataclass(slots=True)
class _Group:
    who: str
    code: str
    started: float
    last: float
    counted: int
    sample: Mapping[str, Any]


class RefusalSummaries:
    """Decides which refusals are reported in full and summarises the rest. Thread-safe."""

    def __init__(
        self,
        *,
        window: float = 10.0,
        full_per_window: int = 4,
        max_summaries: int = 4,
        max_groups: int = 1024,
    ) -> None:
        self.window = window
        self.full_per_window = full_per_window
        self.max_summaries = max_summaries
        self.max_groups = max_groups
        self._groups: dict[tuple[str, str], _Group] = {}
        self._window_start: float | None = None
        self._full = 0
        self._lock = threading.Lock()

    def admit(self, who: str, code: str, now: float, sample: Mapping[str, Any]) -> bool:
        """Whether this refusal is reported in full now; if not, it is counted for the summary.
        ``sample`` is the refusal's report without the token and proof (the summary's shape)."""
        with self._lock:
            if self._window_start is None:
                self._window_start = now
            key = (who, code)
            group = self._groups.get(key)
            if group is not None:
                group.counted += 1
                group.last = now
                return False
            if len(self._groups) >= self.max_groups:
                key = (_OVERFLOW, code)
                group = self._groups.get(key)
                if group is None:
                    self._groups[key] = _Group(_OVERFLOW, code, now, now, 1, sample)
                else:
                    group.counted += 1
                    group.last = now
                return False
            full = self._full < self.full_per_window
            self._groups[key] = _Group(who, code, now, now, 0 if full else 1, sample)
            self._full += full
            return full

    def due(self, now: float) -> list[dict[str, Any]]:
        """The summary reports of the window, once it has closed (and a new window starts)."""
        if self._window_start is None:  # nothing refused: the common case needs no lock
            return []
        with self._lock:
            if self._window_start is None or now - self._window_start < self.window:
                return []
            groups, self._groups = self._groups, {}
            self._window_start = None
            self._full = 0
        return self._summaries(groups)

    def flush(self) -> list[dict[str, Any]]:
        """Every pending summary, whatever the window (the service is stopping)."""
        with self._lock:
            groups, self._groups = self._groups, {}
            self._window_start = None
            self._full = 0
        return self._summaries(groups)

    def _summaries(self, groups: dict[tuple[str, str], _Group]) -> list[dict[str, Any]]:
        counted = sorted((g for g in groups.values() if g.counted), key=lambda g: -g.counted)
        kept, rest = counted[: self.max_summaries], counted[self.max_summaries :]
        reports = [_summary(g) for g in kept]
        if rest:
            merged = _Group(
                _OVERFLOW,
                "many" if len({g.code for g in rest}) > 1 else rest[0].code,
                min(g.started for g in rest),
                max(g.last for g in rest),
                sum(g.counted for g in rest),
                rest[0].sample,
            )
            reports.append(_summary(merged))
        return reports


def _summary(group: _Group) -> dict[str, Any]:
    report = dict(group.sample)
    attrs = dict(report.get("attrs") or {})
    attrs.update(
        {"summary_of": group.who, "first_at": int(group.started), "last_at": int(group.last)}
    )
    report.update(
        {
            "outcome": "refused",
            "refusal": group.code,
            "count": group.counted,
            "performed_at": int(group.last),
            "attrs": attrs,
        }
    )
    return report
