"""libc through ctypes, with errno: for the calls Python's os module does not offer."""

from __future__ import annotations

import ctypes
import os
import platform
import signal
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

# Syscalls without a libc wrapper we could use, by architecture.
SYSCALL_NUMBERS = {
    "x86_64": {"clone": 56, "clone3": 435, "io_uring_setup": 425, "getppid": 110},
    "aarch64": {"clone": 220, "clone3": 435, "io_uring_setup": 425, "getppid": 173},
}


def check(result: int, what: str) -> int:
    """libc's -1-and-errno as an OSError naming the call."""
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall_number(name: str) -> int:
    return SYSCALL_NUMBERS[platform.machine()][name]


def raw_syscall(name: str, *args: Any) -> int:
    """libc's syscall(2) by name: returns the result, or -1 with errno set."""
    return libc.syscall(ctypes.c_long(syscall_number(name)), *args)


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit at once if that already happened."""
    check(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    # The parent may have died before the prctl took effect: then no signal will come.
    if os.getppid() != parent_pid:
        os._exit(1)
