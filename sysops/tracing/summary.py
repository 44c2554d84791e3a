"""A per-syscall summary like ``strace -c``, kept up to date event by event.

It counts what ``strace -c`` counts: calls that returned. Calls that never return (exit_group,
a call cut short by a kill) are left out, as strace leaves them out; a call with an errno,
including the kernel's ERESTART* codes, counts as an error.

The times differ from ``strace -c`` by design. By default ``strace -c`` adds up *system* CPU
time spent in each call, while ``-T`` (which feeds this summary) measures *wall-clock* time from
entry to exit, including time blocked, waiting and being scheduled — a 1 s ``epoll_wait`` costs
1 s here and almost nothing there. ``strace -c -w`` summarises wall-clock time too, and matches
this summary to the microsecond ``-T`` prints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sysops.tracing.parse import TraceEvent


@dataclass(slots=True)
class SyscallStats:
    """Running totals for one syscall name."""

    name: str
    calls: int = 0
    errors: int = 0
    timed_calls: int = 0
    total_s: float = 0.0
    max_s: float = 0.0

    @property
    def avg_s(self) -> float:
        """Mean duration over the calls that had one (all of them when strace ran with -T)."""
        return self.total_s / self.timed_calls if self.timed_calls else 0.0


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One line of the summary table."""

    name: str
    calls: int
    errors: int
    total_s: float
    avg_s: float
    max_s: float
    share_pct: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "calls": self.calls,
            "errors": self.errors,
            "total_s": self.total_s,
            "avg_s": self.avg_s,
            "max_s": self.max_s,
            "share_pct": self.share_pct,
        }


class Summary:
    """Calls, errors and time per syscall; feed it events with :meth:`add`."""

    def __init__(self) -> None:
        self._stats: dict[str, SyscallStats] = {}
        self.harness_calls = 0

    def add(self, event: TraceEvent) -> None:
        """Count one event; anything but a returned syscall of the experiment is ignored (the
        harness's calls only add to ``harness_calls``)."""
        if event.kind != "syscall" or (event.retval is None and event.errno is None):
            return
        if event.harness:
            self.harness_calls += 1
            return
        stats = self._stats.get(event.name)
        if stats is None:
            stats = self._stats[event.name] = SyscallStats(event.name)
        stats.calls += 1
        if event.errno is not None:
            stats.errors += 1
        duration_s = event.duration_s
        if duration_s is not None:
            stats.timed_calls += 1
            stats.total_s += duration_s
            if duration_s > stats.max_s:
                stats.max_s = duration_s

    def add_all(self, events: Iterable[TraceEvent]) -> None:
        for event in events:
            self.add(event)

    def merge(self, other: Summary) -> None:
        """Add another summary's counts into this one (e.g. the batches of a long run)."""
        for name, theirs in other._stats.items():
            ours = self._stats.get(name)
            if ours is None:
                ours = self._stats[name] = SyscallStats(name)
            ours.calls += theirs.calls
            ours.errors += theirs.errors
            ours.timed_calls += theirs.timed_calls
            ours.total_s += theirs.total_s
            ours.max_s = max(ours.max_s, theirs.max_s)
        self.harness_calls += other.harness_calls

    def stats(self, name: str) -> SyscallStats | None:
        return self._stats.get(name)

    @property
    def total_calls(self) -> int:
        return sum(stats.calls for stats in self._stats.values())

    @property
    def total_errors(self) -> int:
        return sum(stats.errors for stats in self._stats.values())

    @property
    def total_s(self) -> float:
        return sum(stats.total_s for stats in self._stats.values())

    def rows(self) -> list[SummaryRow]:
        """One row per syscall, by total time (then calls, then name), as strace -c sorts."""
        total_s = self.total_s
        ordered = sorted(
            self._stats.values(), key=lambda stats: (-stats.total_s, -stats.calls, stats.name)
        )
        return [
            SummaryRow(
                stats.name,
                stats.calls,
                stats.errors,
                stats.total_s,
                stats.avg_s,
                stats.max_s,
                100.0 * stats.total_s / total_s if total_s else 0.0,
            )
            for stats in ordered
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [row.to_dict() for row in self.rows()],
            "total": {
                "calls": self.total_calls,
                "errors": self.total_errors,
                "total_s": self.total_s,
            },
            "harness_calls": self.harness_calls,
        }
