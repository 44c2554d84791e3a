"""What the child does between fork and exec of bubblewrap, and the prctl calls around it.

The order matters: rlimits and the cgroup move first (the move needs root when the caller is
root), then the uid drop, then PR_SET_PDEATHSIG, because changing credentials clears the
parent-death signal. Everything the child needs is prepared in the parent: a forked child of a
threaded parent must not import, allocate much or take locks.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_prctl.restype = ctypes.c_int


def prctl(option: int, arg2: int = 0) -> None:
    if _prctl(option, arg2, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


def set_child_subreaper() -> None:
    """Make the calling process the reaper of its orphaned descendants.

    When the runner kills bubblewrap, the sandbox's pid 1 is orphaned; as a subreaper the runner
    (not the host's init) inherits and reaps it, and SandboxProcess.cleanup() can verify that
    nothing of the run is left.
    """
    prctl(PR_SET_CHILD_SUBREAPER, 1)


@contextlib.contextmanager
def child_subreaper() -> Iterator[None]:
    """Be a subreaper for a moment (the host probe in the web process, which must not stay one:
    its event loop only reaps the children it started), then go back to what it was."""
    was = ctypes.c_int(0)
    if _prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(was), 0, 0, 0) != 0:
        was.value = 0
    if was.value:
        yield
        return
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        yield
    finally:
        prctl(PR_SET_CHILD_SUBREAPER, 0)


def make_preexec(
    *,
    limits: Sequence[tuple[int, int, int]],
    cgroup_procs: Sequence[Path],
    uid: int | None,
    gid: int | None,
    error_fd: int = -1,
) -> Callable[[], None]:
    """A preexec_fn for subprocess.Popen. On failure it writes the failing step to ``error_fd``
    (Popen itself would only say "Exception occurred in preexec_fn")."""
    parent_pid = os.getpid()
    procs_paths = [os.fsencode(p) for p in cgroup_procs]

    def preexec() -> None:
        step = "setrlimit"
        try:
            for res, soft, hard in limits:
                resource.setrlimit(res, (soft, hard))
            step = "joining the run's cgroup"
            pid = str(os.getpid()).encode()
            for path in procs_paths:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)
            if uid is not None and gid is not None:
                step = f"dropping to uid {uid}"
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            step = "PR_SET_PDEATHSIG"
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent_pid:
                # The caller died before the parent-death signal was armed.
                os._exit(1)
        except (OSError, ValueError) as exc:  # setrlimit reports EPERM/EINVAL as ValueError
            if error_fd >= 0:
                os.write(error_fd, f"{step}: {exc}".encode())
            raise

    return preexec
