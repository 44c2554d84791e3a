"""The seccomp deny-list as data, and its compiled BPF program run through a small interpreter."""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from sysops.sandbox import seccomp
from sysops.worker.toolkit import bpf

REQUIRED_DENIALS = [
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "ptrace",
    "process_vm_readv", "process_vm_writev", "bpf", "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "perf_event_open", "userfaultfd",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "swapon", "swapoff", "reboot", "acct", "modify_ldt",
]  # fmt: skip
HEADERS = {
    "x86_64": Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
    "aarch64": Path("/usr/include/asm-generic/unistd.h"),
}
ALLOW = seccomp.SECCOMP_RET_ALLOW
EPERM = seccomp.SECCOMP_RET_ERRNO | errno.EPERM
EAFNOSUPPORT = seccomp.SECCOMP_RET_ERRNO | errno.EAFNOSUPPORT
# Allowed or not depending on their arguments (tested on their own below).
ARGUMENT_FILTERED = ("ioctl", "clone", "socket", "socketpair", "personality")
ENOSYS = seccomp.SECCOMP_RET_ERRNO | errno.ENOSYS
AUDIT_ARCH_I386 = 0x40000003
SIGCHLD = 17
FIONREAD = 0x541B


def run_filter(arch: str, nr: int, *args: int, audit_arch: int | None = None) -> int:
    """Evaluate the compiled program on one seccomp_data, as the kernel would."""
    program = seccomp.seccomp_program(arch)
    padded = [*args, *[0] * (6 - len(args))]
    data = struct.pack("=iIQ6Q", nr, audit_arch or seccomp.AUDIT_ARCH[arch], 0, *padded)
    insns = [struct.unpack_from("=HBBI", program, i) for i in range(0, len(program), 8)]
    pc = acc = 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == bpf.BPF_RET_K:
            return k
        if code == bpf.BPF_LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
            continue
        taken = {
            bpf.BPF_JEQ_K: acc == k,
            bpf.BPF_JGE_K: acc >= k,
            bpf.BPF_JSET_K: bool(acc & k),
        }[code]
        pc += 1 + (jt if taken else jf)


@pytest.mark.parametrize("name", REQUIRED_DENIALS)
def test_it_denies(name):
    assert name in seccomp.DENIED_SYSCALLS


def test_it_answers_clone3_with_enosys_and_filters_clone_and_ioctl():
    assert "clone3" in seccomp.ENOSYS_SYSCALLS
    assert set(seccomp.DENIED_IOCTLS) == {"TIOCSTI", "TIOCLINUX"}
    assert {"CLONE_NEWUSER", "CLONE_NEWNS", "CLONE_NEWNET", "CLONE_NEWPID"} <= set(
        seccomp.CLONE_NAMESPACE_FLAGS
    )


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_every_listed_syscall_has_a_number(arch):
    names = {*seccomp.DENIED_SYSCALLS, *seccomp.ENOSYS_SYSCALLS, *ARGUMENT_FILTERED}
    absent = seccomp.ABSENT_SYSCALLS.get(arch, frozenset())
    assert names - absent <= set(seccomp.SYSCALL_NUMBERS[arch])
    assert not absent & set(seccomp.SYSCALL_NUMBERS[arch])


@pytest.mark.parametrize("arch", sorted(HEADERS))
def test_the_numbers_match_the_kernel_headers(arch):
    if not HEADERS[arch].exists():
        pytest.skip(f"{HEADERS[arch]} not installed")
    defined = dict(re.findall(r"#define __NR_(\w+)\s+(\d+)", HEADERS[arch].read_text()))
    for name, number in seccomp.SYSCALL_NUMBERS[arch].items():
        if name in defined:  # open_tree_attr is newer than some headers
            assert int(defined[name]) == number, name


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_the_program_denies_every_listed_syscall(arch):
    numbers = seccomp.SYSCALL_NUMBERS[arch]
    for name in set(seccomp.DENIED_SYSCALLS) - seccomp.ABSENT_SYSCALLS.get(arch, frozenset()):
        assert run_filter(arch, numbers[name]) == EPERM, name
    assert run_filter(arch, numbers["clone3"]) == ENOSYS


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_the_program_allows_everything_else(arch):
    numbers = seccomp.SYSCALL_NUMBERS[arch]
    listed = {*seccomp.DENIED_SYSCALLS, *seccomp.ENOSYS_SYSCALLS, *ARGUMENT_FILTERED}
    listed_numbers = {numbers[name] for name in listed if name in numbers}
    for nr in range(0, 470):
        if nr not in listed_numbers:
            assert run_filter(arch, nr) == ALLOW, nr


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_the_program_inspects_clone_flags(arch):
    clone = seccomp.SYSCALL_NUMBERS[arch]["clone"]
    new_user = seccomp.CLONE_NAMESPACE_FLAGS["CLONE_NEWUSER"]

    assert run_filter(arch, clone, SIGCHLD) == ALLOW  # fork()
    for flag in seccomp.CLONE_NAMESPACE_FLAGS.values():
        assert run_filter(arch, clone, flag | SIGCHLD) == EPERM
    # The kernel reads only the low 32 bits of the flags; so does the filter.
    assert run_filter(arch, clone, (1 << 40) | new_user) == EPERM
    assert run_filter(arch, clone, (1 << 40) | SIGCHLD) == ALLOW


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_the_program_inspects_ioctl_requests(arch):
    ioctl = seccomp.SYSCALL_NUMBERS[arch]["ioctl"]
    tiocsti = seccomp.DENIED_IOCTLS["TIOCSTI"]

    assert run_filter(arch, ioctl, 0, tiocsti) == EPERM
    assert run_filter(arch, ioctl, 0, seccomp.DENIED_IOCTLS["TIOCLINUX"]) == EPERM
    assert run_filter(arch, ioctl, 0, (1 << 32) | tiocsti) == EPERM  # high bits ignored
    assert run_filter(arch, ioctl, 0, FIONREAD) == ALLOW


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_the_program_allows_only_the_listed_socket_families(arch, call):
    nr = seccomp.SYSCALL_NUMBERS[arch][call]
    sock_stream = 1
    for family in seccomp.SOCKET_FAMILIES.values():
        assert run_filter(arch, nr, family, sock_stream) == ALLOW
    af_netlink, af_packet, af_vsock = 16, 17, 40
    for family in (0, af_netlink, af_packet, af_vsock, 255, 1 << 20):
        assert run_filter(arch, nr, family, sock_stream) == EAFNOSUPPORT, family
    assert run_filter(arch, nr, (1 << 32) | af_vsock) == EAFNOSUPPORT  # high bits ignored
    assert run_filter(arch, nr, (1 << 32) | 2) == ALLOW


@pytest.mark.parametrize("arch", sorted(seccomp.AUDIT_ARCH))
def test_the_program_allows_personality_only_to_read_or_keep_linux(arch):
    nr = seccomp.SYSCALL_NUMBERS[arch]["personality"]
    read_implies_exec, addr_no_randomize = 0x0400000, 0x0040000
    assert run_filter(arch, nr, 0) == ALLOW
    assert run_filter(arch, nr, 0xFFFFFFFF) == ALLOW
    assert run_filter(arch, nr, read_implies_exec) == EPERM
    assert run_filter(arch, nr, addr_no_randomize) == EPERM


def test_the_program_denies_other_abis():
    read = 0
    assert run_filter("x86_64", read, audit_arch=AUDIT_ARCH_I386) == EPERM
    assert run_filter("x86_64", seccomp.X32_SYSCALL_BIT | read) == EPERM
    assert run_filter("x86_64", read) == ALLOW


def test_it_refuses_an_unknown_architecture():
    with pytest.raises(ValueError, match="no seccomp syscall table"):
        seccomp.seccomp_program("mips")
