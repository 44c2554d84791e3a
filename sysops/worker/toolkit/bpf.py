"""Classic BPF for seccomp: instructions, a few program shapes, and installing a filter.

A seccomp filter is a ``struct sock_filter[]`` run by the kernel on every syscall over
``struct seccomp_data {int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]}``. Jump
offsets of conditional jumps are 8 bits (at most 255 instructions ahead), so long programs use
``BPF_JA`` (32-bit offset) or keep each test next to its verdict.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct
import sys
from pathlib import Path

from sysops.worker.toolkit.libc import check, libc

BPF_LD_W_ABS = 0x20
BPF_JA = 0x05
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45
BPF_RET_K = 0x06
BPF_MAXINSNS = 4096
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
NR_OFFSET = 0
ARCH_OFFSET = 4
ARGS_OFFSET = 16
INSN_BYTES = 8
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
STATUS_PATH = Path("/proc/self/status")


def insn(code: int, jt: int, jf: int, k: int) -> bytes:
    if not (0 <= jt <= 255 and 0 <= jf <= 255):
        raise ValueError(f"conditional jump offsets are 8 bits: jt={jt} jf={jf}")
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def load(offset: int) -> bytes:
    return insn(BPF_LD_W_ABS, 0, 0, offset)


def jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return insn(code, jt, jf, k)


def jeq(k: int, jt: int, jf: int) -> bytes:
    return jump(BPF_JEQ_K, k, jt, jf)


def ja(offset: int) -> bytes:
    return insn(BPF_JA, 0, 0, offset)


def ret(value: int) -> bytes:
    return insn(BPF_RET_K, 0, 0, value)


def arg_low_word_offset(index: int) -> int:
    """Offset of the low 32 bits of args[index] in seccomp_data."""
    offset = ARGS_OFFSET + 8 * index
    return offset if sys.byteorder == "little" else offset + 4


def length(program: bytes) -> int:
    return len(program) // INSN_BYTES


def install(program: bytes) -> None:
    """Install ``program`` on the calling thread (and its future children), after
    no_new_privs, which an unprivileged process needs. There is no way to remove it: install it
    in a process that will exit (a forked child)."""
    count = length(program)
    if not 1 <= count <= BPF_MAXINSNS or len(program) % INSN_BYTES:
        raise ValueError(f"not a classic BPF program of 1..{BPF_MAXINSNS} instructions")

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(count, ctypes.cast(buffer, ctypes.c_char_p))
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    check(
        libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0),
        "prctl(PR_SET_SECCOMP)",
    )


def filters_attached() -> int | None:
    """How many seccomp filters this process runs under (Seccomp_filters in /proc/self/status,
    Linux 5.9+), or None where the kernel does not say."""
    try:
        for line in STATUS_PATH.read_text().splitlines():
            if line.startswith("Seccomp_filters:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def arch_check(arch: str | None = None) -> list[bytes]:
    """The opening every real filter has: refuse another architecture's syscall numbers."""
    audit = AUDIT_ARCH[arch or platform.machine()]
    return [load(ARCH_OFFSET), jeq(audit, 1, 0), ret(SECCOMP_RET_KILL_PROCESS)]


EPERM = SECCOMP_RET_ERRNO | errno.EPERM
