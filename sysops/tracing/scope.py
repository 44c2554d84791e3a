"""What a traced pass traces and which fault it injects, as strace arguments.

A trace set is what ``strace -e trace=`` takes, limited to what a form can validate: empty (every
call), one of strace's own classes (``%file``, ``%network``, ``%process``, ``%memory``,
``%signal``), or a list of x86_64 syscall names. It is applied with ``--seccomp-bpf``: a call
outside the set never stops the tracee, so it costs almost nothing (strace 5.3+, and only with
``-f``, which the tracer always passes).

The markers that bracket the experiment's work are ``access``-family calls: they are always
traced, and the filter drops the other calls of that family when the set leaves them out, so a
stored trace holds only the chosen set.

A fault is ``strace -e inject=SYSCALL:error=ERRNO:when=N``, restricted with ``-P PATH`` to the
calls on one path: strace counts only calls that pass its filters, so "the third read" is the
third read of that file by each process, not the third read of the interpreter's start-up.
Every value that reaches strace's argv is checked against a fixed list here; nothing goes
through a shell.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import dataclass

from sysops.tracing.errnos import describe
from sysops.tracing.markers import MARKER_SYSCALLS
from sysops.tracing.syscall_names import SYSCALL_NAMES
from sysops.worker.markers import BEGIN_MARKER_PATH, END_MARKER_PATH

STRACE = "/usr/bin/strace"
# strace's classes a form offers (strace(1), "-e trace=%class").
TRACE_CLASSES: tuple[str, ...] = ("file", "network", "process", "memory", "signal")
# Of those, the classes that hold the marker calls (they take a path: %file).
_CLASSES_WITH_MARKERS = frozenset({"file"})
MAX_SET_NAMES = 64
# --seccomp-bpf arrived in strace 5.3.
SECCOMP_BPF_SINCE = (5, 3)
STRACE_VERSION_TIMEOUT_S = 5.0
# Errnos a fault may inject: those a learner meets, with an explanation to show.
INJECTABLE_ERRNOS: tuple[str, ...] = (
    "EIO",
    "EINTR",
    "EAGAIN",
    "ENOSPC",
    "EBADF",
    "EFAULT",
    "EINVAL",
    "ENOMEM",
    "EPERM",
    "EACCES",
    "EPIPE",
    "ENOSYS",
    "EMFILE",
    "EFBIG",
    "EROFS",
)
INJECT_WHEN_MAX = 1_000
_VERSION = re.compile(r"version (\d+)\.(\d+)")


class TraceSetError(ValueError):
    """A trace set the form must refuse; the message says why, for the field."""


def parse_trace_set(text: str | None) -> str:
    """The canonical trace set for ``text``: ``""`` (all), ``"%class"`` or ``"a,b,c"`` (sorted,
    no repeats). Raises TraceSetError with a message for the form."""
    text = (text or "").strip().lower()
    if text in ("", "all", "%all"):
        return ""
    if text.lstrip("%") in TRACE_CLASSES and "," not in text:
        return "%" + text.lstrip("%")
    names = sorted({name.strip() for name in text.split(",") if name.strip()})
    unknown = [name for name in names if name not in SYSCALL_NAMES]
    if unknown:
        raise TraceSetError(
            f"Not a syscall name here (x86_64): {', '.join(unknown[:5])}. Give all, a class "
            f"({', '.join(TRACE_CLASSES)}) or syscall names separated by commas."
        )
    if not names:
        raise TraceSetError("Give all, a class or at least one syscall name.")
    if len(names) > MAX_SET_NAMES:
        raise TraceSetError(f"At most {MAX_SET_NAMES} syscall names; or choose a class.")
    return ",".join(names)


def describe_trace_set(trace_set: str) -> str:
    """For the run page: ``every call``, ``strace's %file class``, ``read, write``."""
    if not trace_set:
        return "every call"
    if trace_set.startswith("%"):
        return f"strace's {trace_set} class"
    return ", ".join(trace_set.split(","))


@dataclass(frozen=True)
class Fault:
    """``strace -e inject=SYSCALL:error=ERRNO:when=N``, on the calls that touch ``path``."""

    syscall: str
    errno: str
    when: int
    path: str

    def __post_init__(self) -> None:
        # The last line of defence: strace's argv is built from these.
        if self.syscall not in SYSCALL_NAMES or self.syscall in MARKER_SYSCALLS:
            raise ValueError(f"cannot inject into {self.syscall!r}")
        if self.errno not in INJECTABLE_ERRNOS:
            raise ValueError(f"cannot inject {self.errno!r}")
        if not 1 <= self.when <= INJECT_WHEN_MAX:
            raise ValueError(f"when={self.when} is out of bounds")
        if not self.path.startswith("/") or "\n" in self.path or "," in self.path:
            raise ValueError(f"not a fault path: {self.path!r}")

    def describe(self) -> str:
        message = describe(self.errno).message
        return (
            f"{self.errno} ({message}) injected by strace into call {self.when} of "
            f"{self.syscall} on {self.path}, in each process"
        )


def strace_filter_args(trace_set: str, fault: Fault | None = None) -> list[str]:
    """strace's arguments for the set, after ``-f``; with a fault, for the fault's pass: only
    the faulted syscall on the fault's path."""
    args: list[str] = []
    if fault is not None:
        # Only the fault's file and the markers pass -P: strace counts and shows only those.
        args += ["-P", fault.path, "-P", BEGIN_MARKER_PATH, "-P", END_MARKER_PATH]
        args += ["-e", f"inject={fault.syscall}:error={fault.errno}:when={fault.when}"]
        trace_set = fault.syscall
    if trace_set:
        args += ["--seccomp-bpf", "-e", f"trace={trace_set},{','.join(MARKER_SYSCALLS)}"]
    return args


def marker_only(trace_set: str) -> frozenset[str]:
    """The marker syscalls a set traces only for the markers' sake: not to be stored."""
    if not trace_set:
        return frozenset()
    if trace_set.startswith("%"):
        return frozenset() if trace_set[1:] in _CLASSES_WITH_MARKERS else frozenset(MARKER_SYSCALLS)
    return frozenset(MARKER_SYSCALLS) - set(trace_set.split(","))


@functools.cache
def seccomp_bpf_problem() -> str | None:
    """None when this host's strace supports ``--seccomp-bpf`` (with -f), else why not."""
    try:
        done = subprocess.run(
            [STRACE, "-V"], capture_output=True, text=True, timeout=STRACE_VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"strace did not run: {exc}"
    match = _VERSION.search(done.stdout)
    if not match:
        return "strace did not say its version"
    version = (int(match[1]), int(match[2]))
    if version < SECCOMP_BPF_SINCE:
        return f"strace {version[0]}.{version[1]} has no --seccomp-bpf (5.3 or later needed)"
    return None
