"""Run a command the way a locked-down container would: new namespaces are forbidden.

``python -m tests.helpers.forbid_namespaces CMD...`` loads the sandbox's own seccomp deny-list
into this process (it refuses unshare, setns and clone with namespace flags, as Docker's
default profile does) and execs CMD, which inherits the filter.
"""

import ctypes
import os
import sys

from sysops.sandbox import seccomp_program

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main() -> None:
    program = seccomp_program()
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
