"""The two syscalls that bracket an experiment's own work in its trace.

The worker calls :func:`mark_begin` just before the experiment's probe runs and :func:`mark_end`
just after. Each is one failing ``access(2)`` of a path that does not exist: cheap, harmless
inside the sandbox, allowed by its seccomp policy, and unmistakable in strace's output. The
filter in :mod:`sysops.tracing.filter` cuts the trace at them, so the interpreter's and the
sandbox's start-up never reach the page. Depending on the C library and the seccomp policy the
same request shows up as ``access``, ``faccessat`` or ``faccessat2``; all three are recognised.
"""

from __future__ import annotations

import os

from sysops.tracing.parse import TraceEvent

BEGIN_MARKER_PATH = "/sysops-trace-begin"
END_MARKER_PATH = "/sysops-trace-end"
MARKER_SYSCALLS: tuple[str, ...] = ("access", "faccessat", "faccessat2")

_QUOTED_PATHS = {f'"{BEGIN_MARKER_PATH}"': "begin", f'"{END_MARKER_PATH}"': "end"}


def mark_begin() -> None:
    """Tell the tracer that the experiment's own work starts now."""
    os.access(BEGIN_MARKER_PATH, os.F_OK)


def mark_end() -> None:
    """Tell the tracer that the experiment's own work is over."""
    os.access(END_MARKER_PATH, os.F_OK)


def marker_of(event: TraceEvent) -> str | None:
    """``"begin"`` or ``"end"`` if the event is a marker call, else None."""
    if event.kind != "syscall" or event.name not in MARKER_SYSCALLS:
        return None
    # access(path, mode); faccessat(dirfd, path, mode[, flags])
    path_index = 0 if event.name == "access" else 1
    if len(event.args) <= path_index:
        return None
    return _QUOTED_PATHS.get(event.args[path_index])
