"""Page faults and resident memory as a probe sees them: the calling thread's fault counters
(getrusage RUSAGE_THREAD: another thread's faults are not in them) and this process's RSS
(/proc/self/statm, cheap enough to read between repetitions; ``hostfacts.smaps_rollup`` has the
breakdown, AnonHugePages included). The C side has the same counters in
``sysops/native/probe_timing.h`` for loops timed natively.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATM_PATH = Path("/proc/self/statm")


@dataclass(frozen=True)
class Faults:
    minor: int  # served from memory: a zero page, the page cache, a copy-on-write copy
    major: int  # needed I/O: a page read from disk or swap

    def __sub__(self, other: Faults) -> Faults:
        return Faults(self.minor - other.minor, self.major - other.major)

    @property
    def total(self) -> int:
        return self.minor + self.major


def thread_faults() -> Faults:
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return Faults(usage.ru_minflt, usage.ru_majflt)


@dataclass
class FaultCount:
    """What ``counting_faults`` yields: filled in when the block ends."""

    faults: Faults = Faults(0, 0)


@contextmanager
def counting_faults() -> Iterator[FaultCount]:
    """The faults this thread takes inside the block (``with counting_faults() as f: …;
    f.faults.minor``). Everything the block does counts, the interpreter's own work included."""
    count = FaultCount()
    before = thread_faults()
    try:
        yield count
    finally:
        count.faults = thread_faults() - before


def rss_bytes() -> int:
    """Resident set size of this process now (statm's second field, in pages)."""
    fields = STATM_PATH.read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGESIZE")
