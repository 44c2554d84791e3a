"""The two syscalls that bracket an experiment's own work in its trace.

The worker calls ``mark_begin`` just before the experiment's probe runs and ``mark_end`` just
after (``sysops.worker.markers``, sandbox side). Each is one failing ``access(2)`` of a path that
does not exist: cheap, harmless inside the sandbox, allowed by its seccomp policy, and
unmistakable in strace's output. The
filter in :mod:`sysops.tracing.filter` cuts the trace at them, so the interpreter's and the
sandbox's start-up never reach the page. Two more mark, within the work, what the worker does
for itself (``sysops.worker.markers.harness``). Depending on the C library and the seccomp
policy the same request shows up as ``access``, ``faccessat`` or ``faccessat2``; all three are
recognised.
"""

from __future__ import annotations

from sysops.tracing.parse import TraceEvent
from sysops.worker.markers import (
    BEGIN_MARKER_PATH,
    END_MARKER_PATH,
    HARNESS_BEGIN_MARKER_PATH,
    HARNESS_END_MARKER_PATH,
    mark_begin,
    mark_end,
)

MARKER_SYSCALLS: tuple[str, ...] = ("access", "faccessat", "faccessat2")

_QUOTED_PATHS = {
    f'"{BEGIN_MARKER_PATH}"': "begin",
    f'"{END_MARKER_PATH}"': "end",
    f'"{HARNESS_BEGIN_MARKER_PATH}"': "harness-begin",
    f'"{HARNESS_END_MARKER_PATH}"': "harness-end",
}

__all__ = [
    "BEGIN_MARKER_PATH",
    "END_MARKER_PATH",
    "MARKER_SYSCALLS",
    "mark_begin",
    "mark_end",
    "marker_of",
]


def marker_of(event: TraceEvent) -> str | None:
    """``"begin"``, ``"end"``, ``"harness-begin"`` or ``"harness-end"`` if the event is a
    marker call, else None."""
    if event.kind != "syscall" or event.name not in MARKER_SYSCALLS:
        return None
    # access(path, mode); faccessat(dirfd, path, mode[, flags])
    path_index = 0 if event.name == "access" else 1
    if len(event.args) <= path_index:
        return None
    return _QUOTED_PATHS.get(event.args[path_index])
