"""The two syscalls that bracket an experiment's own work, for the tracer outside the sandbox.

Each is one failing ``access(2)`` of a path that does not exist: cheap, harmless inside the
sandbox, allowed by its seccomp policy and unmistakable in strace's output. The runner's trace
filter (``sysops.tracing.filter``) cuts the trace at them, so the interpreter's and the sandbox's
start-up never reach the page. Sandbox side: standard library only.
"""

import os

BEGIN_MARKER_PATH = "/sysops-trace-begin"
END_MARKER_PATH = "/sysops-trace-end"


def mark_begin() -> None:
    """Tell the tracer that the experiment's own work starts now."""
    os.access(BEGIN_MARKER_PATH, os.F_OK)


def mark_end() -> None:
    """Tell the tracer that the experiment's own work is over."""
    os.access(END_MARKER_PATH, os.F_OK)
