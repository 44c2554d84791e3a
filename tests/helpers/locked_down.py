"""Run a command the way a locked-down container would, with a seccomp filter it inherits.

``python -m tests.helpers.locked_down namespaces CMD...`` loads the sandbox's own deny-list
(unshare, setns and clone with namespace flags refused, as Docker's default profile does);
``python -m tests.helpers.locked_down ptrace CMD...`` refuses only ptrace (Docker's default
without CAP_SYS_PTRACE). Tests call ``run_locked_down``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import subprocess
import sys

from sysops.sandbox.seccomp import SYSCALL_NUMBERS, native_arch, seccomp_program

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
NR_OFFSET = 0


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def run_locked_down(
    forbid: str, argv: list[str], *, database_url: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database_url, **env}
    return subprocess.run(
        [sys.executable, "-m", "tests.helpers.locked_down", forbid, *argv],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def _deny_ptrace() -> bytes:
    ptrace = SYSCALL_NUMBERS[native_arch()]["ptrace"]
    return b"".join(
        [
            _insn(BPF_LD_W_ABS, 0, 0, NR_OFFSET),
            _insn(BPF_JEQ_K, 0, 1, ptrace),
            _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.EPERM),
            _insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ]
    )


def main() -> None:
    forbid, argv = sys.argv[1], sys.argv[2:]
    program = {"namespaces": seccomp_program, "ptrace": _deny_ptrace}[forbid]()
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
