"""This process's descriptor table, as /proc/self/fd shows it: which numbers are open, what
each refers to (readlink) and whether it closes on exec.

Listing /proc/self/fd opens a descriptor of its own, which appears in the listing and is gone
once the listing returns; only the numbers that are still open afterwards are reported. At
RLIMIT_NOFILE that listing itself fails with EMFILE: the caller must free one first.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

PROC_FD_DIR = "/proc/self/fd"


def open_fds() -> list[int]:
    """The open descriptor numbers, ascending."""
    return [fd for fd in sorted(int(name) for name in os.listdir(PROC_FD_DIR)) if _is_open(fd)]


def _is_open(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
    except OSError:
        return False
    return True


def describe(fd: int) -> dict[str, Any]:
    """``{fd, target, cloexec}``: the readlink target ("/dev/null", "pipe:[1234]") and the
    FD_CLOEXEC flag; target None where the descriptor closed meanwhile."""
    try:
        target: str | None = os.readlink(f"{PROC_FD_DIR}/{fd}")
        cloexec: bool | None = bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    except OSError:
        target, cloexec = None, None
    return {"fd": fd, "target": target, "cloexec": cloexec}


def table(max_rows: int, fds: list[int] | None = None) -> dict[str, Any]:
    """``{fds: [describe(fd)…], count, omitted, gap_after}``: the whole table when it has at
    most ``max_rows`` entries, else its first and last ``max_rows // 2`` with the omitted ones
    after descriptor ``gap_after`` (a bounded panel)."""
    numbers = open_fds() if fds is None else sorted(fds)
    half = max_rows // 2
    shown = numbers if len(numbers) <= max_rows else numbers[:half] + numbers[-half:]
    return {
        "fds": [describe(fd) for fd in shown],
        "count": len(numbers),
        "omitted": len(numbers) - len(shown),
        "gap_after": shown[half - 1] if len(shown) < len(numbers) else None,
    }
