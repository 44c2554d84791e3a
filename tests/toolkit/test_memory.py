"""Fault counters, RSS and THP as the kernel applies it: real maps, real faults."""

from __future__ import annotations

import mmap

from sysops.worker.toolkit import hostfacts
from sysops.worker.toolkit.memory import Faults, counting_faults, rss_bytes, thread_faults

PAGES = 256


def test_it_counts_a_fault_per_page_first_touched() -> None:
    page = mmap.PAGESIZE
    mapped = mmap.mmap(-1, PAGES * page, flags=mmap.MAP_PRIVATE)
    mapped.madvise(mmap.MADV_NOHUGEPAGE)
    try:
        rss_before = rss_bytes()
        with counting_faults() as count:
            for offset in range(0, PAGES * page, page):
                mapped[offset] = 1
        assert PAGES <= count.faults.minor <= PAGES + 64  # and the loop's own few
        assert count.faults.major == 0
        assert rss_bytes() - rss_before >= PAGES * page // 2
    finally:
        mapped.close()


def test_faults_subtract_and_add_up() -> None:
    assert Faults(10, 2) - Faults(4, 1) == Faults(6, 1)
    assert Faults(6, 1).total == 7
    now = thread_faults()
    assert now.minor > 0 and now.major >= 0


def test_thp_inferred_from_smaps_agrees_with_sys() -> None:
    enabled = hostfacts.thp()["enabled"]
    inferred = hostfacts.thp_inferred()
    if enabled is None or inferred is None:
        return  # no /sys or no THPeligible on this kernel: nothing to compare
    assert inferred == enabled
