"""The seccomp deny-list, as a classic BPF program built in pure Python (no libseccomp).

The list is data (DENIED_SYSCALLS, ENOSYS_SYSCALLS, CLONE_NAMESPACE_FLAGS, DENIED_IOCTLS,
SOCKET_FAMILIES, PERSONALITIES) so that
tests and the dashboard can read it; seccomp_program() compiles it for the native architecture.
Everything not listed is allowed: the filter removes the kernel surface a syscall playground
never needs, bubblewrap and the dropped capabilities do the rest.

bubblewrap loads the program (``--seccomp FD``) after its own set-up, just before it execs the
worker, so mount and unshare stay available to bubblewrap itself. A tracer running outside the
sandbox is unaffected by the ptrace rule: it is the tracee side that is filtered.
"""

from __future__ import annotations

import errno
import os
import platform
from collections.abc import Iterable

# Classic BPF opcodes, seccomp_data offsets and return values (shared with the probes' filters).
from sysops.worker.toolkit.bpf import (
    ARCH_OFFSET,
    BPF_JGE_K,
    BPF_JSET_K,
    NR_OFFSET,
    SECCOMP_RET_ALLOW,
    SECCOMP_RET_ERRNO,
    arg_low_word_offset,
    jeq,
    jump,
    load,
    ret,
)

# Denied with EPERM, whatever the arguments; name -> why.
DENIED_SYSCALLS: dict[str, str] = {
    "mount": "mounts",
    "umount2": "mounts",
    "pivot_root": "mounts",
    "chroot": "mounts",
    "open_tree": "new mount API",
    "open_tree_attr": "new mount API (Linux 6.15)",
    "move_mount": "new mount API",
    "fsopen": "new mount API",
    "fsconfig": "new mount API",
    "fsmount": "new mount API",
    "fspick": "new mount API",
    "mount_setattr": "new mount API",
    "unshare": "new namespaces",
    "setns": "joining namespaces",
    "ptrace": "tracing other processes",
    "process_vm_readv": "reading other processes' memory",
    "process_vm_writev": "writing other processes' memory",
    "bpf": "eBPF programs",
    "keyctl": "kernel keyrings",
    "add_key": "kernel keyrings",
    "request_key": "kernel keyrings",
    "kexec_load": "loading a kernel",
    "kexec_file_load": "loading a kernel",
    "init_module": "kernel modules",
    "finit_module": "kernel modules",
    "delete_module": "kernel modules",
    "io_uring_setup": "io_uring (large attack surface, bypasses syscall filtering)",
    "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "perf_event_open": "perf events",
    "userfaultfd": "userfaultfd (exploit primitive)",
    "swapon": "swap",
    "swapoff": "swap",
    "reboot": "reboot",
    "acct": "process accounting",
    "modify_ldt": "x86 local descriptor tables (exploit primitive; x86_64 only)",
}
# Syscalls of DENIED_SYSCALLS that an architecture does not have at all.
ABSENT_SYSCALLS: dict[str, frozenset[str]] = {"aarch64": frozenset({"modify_ldt"})}

# socket() and socketpair() only for these address families; any other gets EAFNOSUPPORT, which
# programs take as "not available here". The network namespace does not cover every family:
# AF_VSOCK reaches the hypervisor's host ports from any netns, AF_PACKET (with the CAP_NET_RAW
# the sandbox keeps) reads raw frames, and AF_NETLINK is a large kernel surface that nothing
# inside needs (no experiment, nor Python, nor getaddrinfo of a numeric or loopback address:
# glibc falls back when AI_ADDRCONFIG cannot open one). AF_INET carries raw and ping ICMP.
SOCKET_FAMILIES: dict[str, int] = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10}

# personality() only with these arguments, as Docker's default profile: PER_LINUX, and the query
# 0xffffffff. Others switch on legacy behaviours such as READ_IMPLIES_EXEC or ADDR_NO_RANDOMIZE.
PERSONALITIES: dict[str, int] = {"PER_LINUX": 0x0, "query": 0xFFFFFFFF}

# clone3 passes its flags in a struct in memory, which a seccomp filter cannot read. Answering
# ENOSYS makes glibc (fork, posix_spawn, pthread_create) fall back to clone, whose flags it can.
ENOSYS_SYSCALLS: dict[str, str] = {"clone3": "flags not inspectable; glibc falls back to clone"}

# clone with any of these flags is denied with EPERM (new namespaces). CLONE_NEWTIME (0x80) is
# not here: clone cannot request it (that bit is the exit signal); unshare is denied outright.
CLONE_NAMESPACE_FLAGS: dict[str, int] = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# ioctl requests denied with EPERM: pushing input into a terminal (a classic sandbox escape).
DENIED_IOCTLS: dict[str, int] = {"TIOCSTI": 0x5412, "TIOCLINUX": 0x541C}

# AUDIT_ARCH_* values: any syscall made through another ABI (int 0x80 on x86_64, 32-bit compat
# on arm64) has different numbers and is denied outright.
AUDIT_ARCH: dict[str, int] = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# x32 syscalls share AUDIT_ARCH_X86_64 but carry this bit in their number.
X32_SYSCALL_BIT = 0x40000000

# Syscall numbers of every name above. x86_64: arch/x86/entry/syscalls/syscall_64.tbl;
# aarch64: the generic table (include/uapi/asm-generic/unistd.h).
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "ioctl": 16, "clone": 56, "ptrace": 101, "pivot_root": 155, "chroot": 161, "acct": 163,
        "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169,
        "init_module": 175, "delete_module": 176, "kexec_load": 246, "add_key": 248,
        "request_key": 249, "keyctl": 250, "unshare": 272, "perf_event_open": 298, "setns": 308,
        "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "mount_setattr": 442, "open_tree_attr": 467, "socket": 41, "socketpair": 53,
        "personality": 135, "modify_ldt": 154,
    },
    "aarch64": {
        "ioctl": 29, "umount2": 39, "mount": 40, "pivot_root": 41, "chroot": 51, "acct": 89,
        "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106,
        "ptrace": 117, "reboot": 142, "add_key": 217, "request_key": 218, "keyctl": 219,
        "clone": 220, "swapon": 224, "swapoff": 225, "perf_event_open": 241, "setns": 268,
        "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273, "bpf": 280,
        "userfaultfd": 282, "kexec_file_load": 294, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435,
        "mount_setattr": 442, "open_tree_attr": 467, "socket": 198, "socketpair": 199,
        "personality": 92,
    },
}  # fmt: skip


def native_arch() -> str:
    return platform.machine()


def seccomp_program(arch: str | None = None) -> bytes:
    """The deny-list as ``struct sock_filter[]`` bytes for ``arch`` (default: this machine)."""
    arch = arch or native_arch()
    if arch not in AUDIT_ARCH:
        raise ValueError(f"no seccomp syscall table for {arch!r} (have {sorted(AUDIT_ARCH)})")
    numbers = SYSCALL_NUMBERS[arch]
    eperm = ret(SECCOMP_RET_ERRNO | errno.EPERM)
    allow = ret(SECCOMP_RET_ALLOW)

    prog = [load(ARCH_OFFSET), jeq(AUDIT_ARCH[arch], 1, 0), eperm, load(NR_OFFSET)]
    if arch == "x86_64":
        prog += [jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1), eperm]
    for name in DENIED_SYSCALLS:
        if name not in ABSENT_SYSCALLS.get(arch, ()):
            prog += [jeq(numbers[name], 0, 1), eperm]
    for name in ENOSYS_SYSCALLS:
        prog += [jeq(numbers[name], 0, 1), ret(SECCOMP_RET_ERRNO | errno.ENOSYS)]

    # ioctl(fd, request, ...): the request is an unsigned int, so only the low 32 bits count
    # (comparing all 64 would let high garbage bits slip past).
    ioctl_block = [load(arg_low_word_offset(1))]
    for request in DENIED_IOCTLS.values():
        ioctl_block += [jeq(request, 0, 1), eperm]
    ioctl_block.append(allow)
    prog += [jeq(numbers["ioctl"], 0, len(ioctl_block)), *ioctl_block]

    # clone(flags, ...): the kernel also reads only the low 32 bits of flags.
    namespace_mask = 0
    for flag in CLONE_NAMESPACE_FLAGS.values():
        namespace_mask |= flag
    clone_block = [load(arg_low_word_offset(0)), jump(BPF_JSET_K, namespace_mask, 0, 1), eperm]
    clone_block.append(allow)
    prog += [jeq(numbers["clone"], 0, len(clone_block)), *clone_block]

    # socket(family, ...), socketpair(family, ...) and personality(persona): all ints.
    eafnosupport = ret(SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT)
    for name in ("socket", "socketpair"):
        block = _allow_only(SOCKET_FAMILIES.values(), otherwise=eafnosupport)
        prog += [jeq(numbers[name], 0, len(block)), *block]
    block = _allow_only(PERSONALITIES.values(), otherwise=eperm)
    prog += [jeq(numbers["personality"], 0, len(block)), *block]

    prog.append(allow)
    if len(prog) > 4096:  # BPF_MAXINSNS
        raise AssertionError("seccomp program too long")
    return b"".join(prog)


def _allow_only(values: Iterable[int], *, otherwise: bytes) -> list[bytes]:
    """Load the first argument's low word; allow it if it is one of ``values``, else return
    ``otherwise``."""
    values = list(values)
    block = [load(arg_low_word_offset(0))]
    for i, value in enumerate(values):
        block.append(jeq(value, len(values) - i, 0))  # jump over the rest and the refusal
    return [*block, otherwise, ret(SECCOMP_RET_ALLOW)]


def program_fd(arch: str | None = None) -> int:
    """A memfd holding seccomp_program(), at offset 0, for ``bwrap --seccomp FD``.

    Close-on-exec in the caller; pass it with Popen(pass_fds=...) and close it after the spawn.
    """
    fd = os.memfd_create("sysops-seccomp", os.MFD_CLOEXEC)
    program = seccomp_program(arch)
    try:
        written = os.write(fd, program)
        if written != len(program):
            raise OSError(f"short write of the seccomp program ({written} of {len(program)})")
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
