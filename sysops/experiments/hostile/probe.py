"""A worker that attacks its own sandbox (tests only): ``run(params, emit)``, ``params["case"]``.

Each case attempts one hostile action and reports what happened as result rows: ``metric`` is the
attempted action, ``value`` the errno it got (0 = it worked), ``note`` the errno name, so tests can
assert exact outcomes. Cases that the sandbox is expected to end (fork_bomb, memory_hog,
busy_loop, sleep, kill_all) may be killed before they report; the test then reads the sandbox's
outcome instead. Sandbox side: standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import signal
import socket
import termios
import time
from collections.abc import Callable, Mapping
from typing import Any

from sysops.worker.emit import Emitter

MIB = 1 << 20
MEMORY_CHUNK_BYTES = 16 * MIB
MEMORY_MAX_BYTES = 64 << 30
MEMFD_MAX_BYTES = 2 << 30
MEMFD_CHUNKS_EACH = 2  # 32 MiB per memfd, under the default RLIMIT_FSIZE
SPIN_S = 3.0
FLOOD_EVENTS = 800_000
DEEP_NESTING = 200_000
BIG_WRITE_BYTES = 10 * 10**9
BIG_WRITE_PATH = "/tmp/file"
WRITE_CHUNK_BYTES = 1 * MIB
CONNECT_TIMEOUT_S = 2.0
# Only these, only a connect: the sandbox's network namespace has no route, so nothing leaves.
CONNECT_TARGETS = (("1.1.1.1", 80), ("10.0.0.1", 80))
SECRET_PATHS = ("/etc/shadow",)
BUSY_LOOP_MAX_S = 3600.0
FORK_RETRY_S = 0.05

CLONE_FLAGS = {"CLONE_NEWUSER": 0x10000000, "CLONE_NEWNS": 0x00020000, "CLONE_NEWNET": 0x40000000}
PTRACE_TRACEME = 0
PTRACE_ATTACH = 16
# clone, clone3 and io_uring_setup have no libc wrapper we could use; numbers per architecture.
SYSCALL_NUMBERS = {
    "x86_64": {"clone": 56, "clone3": 435, "io_uring_setup": 425, "modify_ldt": 154},
    "aarch64": {"clone": 220, "clone3": 435, "io_uring_setup": 425},
}
IO_URING_PARAMS_BYTES = 120
# Families the network namespace does not confine (vsock), or that open kernel surface the
# sandbox has no use for; numbers from <linux/socket.h>, since Python may lack the constants.
DENIED_FAMILIES = {"AF_NETLINK": 16, "AF_PACKET": 17, "AF_VSOCK": 40, "AF_BLUETOOTH": 31}
PERSONALITY_QUERY = 0xFFFFFFFF
READ_IMPLIES_EXEC = 0x0400000
MODIFY_LDT_READ = 0
LDT_BYTES = 8192

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_libc.ptrace.restype = ctypes.c_long


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    case = params["case"]
    if case not in CASES:
        raise ValueError(f"unknown case {case!r}; one of {sorted(CASES)}")
    CASES[case](params, emit)


def _row(metric: str, err: int, detail: str = "") -> dict[str, Any]:
    name = "ok" if err == 0 else errno.errorcode.get(err, str(err))
    return {"metric": metric, "value": err, "unit": "errno", "note": f"{name} {detail}".strip()}


def _libc_errno(result: int) -> int:
    return ctypes.get_errno() if result == -1 else 0


def _syscall(name: str, *args: int | ctypes.Array[ctypes.c_char] | None) -> int:
    """Raw syscall by name; returns its result (or -1 with errno set)."""
    return _libc.syscall(ctypes.c_long(SYSCALL_NUMBERS[platform.machine()][name]), *args)


def _fork_bomb(params: Mapping[str, Any], emit: Emitter) -> None:
    started = 0
    try:
        while True:
            if os.fork() == 0:
                _bomb()
            started += 1
    except OSError as exc:
        emit.result([_row("fork until refused", exc.errno, f"after {started} forks")])


def _bomb() -> None:
    # Every child keeps forking, as a fork bomb does; it never returns into the worker.
    try:
        while True:
            try:
                os.fork()
            except OSError:
                time.sleep(FORK_RETRY_S)
    finally:
        os._exit(0)


def _memory_hog(params: Mapping[str, Any], emit: Emitter) -> None:
    held = []
    total = 0
    try:
        while total < MEMORY_MAX_BYTES:
            # Multiplying fills the pages: a bytearray(n) of untouched zero pages would cost none.
            held.append(b"\x01" * MEMORY_CHUNK_BYTES)
            total += MEMORY_CHUNK_BYTES
    except MemoryError:
        held.clear()
        emit.result([_row("allocate and touch memory", errno.ENOMEM, f"after {total // MIB} MiB")])
        return
    emit.result([_row("allocate and touch memory", 0, f"{total // MIB} MiB, no limit hit")])


def _busy_loop(params: Mapping[str, Any], emit: Emitter) -> None:
    emit.log("spinning until the CPU limit stops this process")
    deadline = time.monotonic() + float(params.get("max_s", BUSY_LOOP_MAX_S))
    while time.monotonic() < deadline:
        pass
    emit.result([_row("spin on the CPU", 0, "no CPU limit stopped it")])


def _sleep(params: Mapping[str, Any], emit: Emitter) -> None:
    sleep_s = float(params.get("sleep_s") or 0)
    time.sleep(sleep_s)
    emit.result([_row(f"sleep {sleep_s:g} s", 0, "not stopped")])


def _big_write(params: Mapping[str, Any], emit: Emitter) -> None:
    chunk = b"\x00" * WRITE_CHUNK_BYTES
    written = 0
    err = 0
    # Python ignores SIGXFSZ, so RLIMIT_FSIZE shows up as EFBIG rather than a signal.
    try:
        with open(BIG_WRITE_PATH, "wb", buffering=0) as f:
            while written < BIG_WRITE_BYTES:
                written += f.write(chunk)
    except OSError as exc:
        err = exc.errno
    finally:
        if os.path.exists(BIG_WRITE_PATH):
            os.unlink(BIG_WRITE_PATH)
    emit.result([_row(f"write 10 GB to {BIG_WRITE_PATH}", err, f"after {written} bytes")])


def _connect_out(params: Mapping[str, Any], emit: Emitter) -> None:
    rows = []
    for host, port in CONNECT_TARGETS:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(CONNECT_TIMEOUT_S)
            rows.append(_row(f"connect {host}:{port}", s.connect_ex((host, port))))
    emit.result(rows)


def _read_secret(params: Mapping[str, Any], emit: Emitter) -> None:
    paths = [*SECRET_PATHS, *([params["path"]] if params.get("path") else [])]
    rows = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
            rows.append(_row(f"read {path}", 0, "readable"))
        except OSError as exc:
            rows.append(_row(f"read {path}", exc.errno))
    emit.result(rows)


def _mount(params: Mapping[str, Any], emit: Emitter) -> None:
    result = _libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    emit.result([_row("mount tmpfs on /tmp", _libc_errno(result))])


def _unshare(params: Mapping[str, Any], emit: Emitter) -> None:
    rows = [
        _row(f"unshare({name})", _libc_errno(_libc.unshare(flag)))
        for name, flag in CLONE_FLAGS.items()
    ]
    # clone with a namespace flag is the other way in; the fork-like child must never return
    # into the worker if it was (wrongly) allowed.
    flags = CLONE_FLAGS["CLONE_NEWUSER"] | signal.SIGCHLD
    pid = _syscall("clone", ctypes.c_long(flags), None, None, None, None)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    rows.append(_row("clone(CLONE_NEWUSER)", _libc_errno(pid)))
    rows.append(_row("clone3", _libc_errno(_syscall("clone3", None, ctypes.c_long(0)))))
    emit.result(rows)


def _ptrace(params: Mapping[str, Any], emit: Emitter) -> None:
    rows = [
        _row("ptrace(PTRACE_TRACEME)", _libc_errno(_libc.ptrace(PTRACE_TRACEME, 0, None, None)))
    ]
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    try:
        result = _libc.ptrace(PTRACE_ATTACH, child, None, None)
        rows.append(_row("ptrace(PTRACE_ATTACH, child)", _libc_errno(result)))
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    emit.result(rows)


def _kill_all(params: Mapping[str, Any], emit: Emitter) -> None:
    emit.log("forking a child that sends SIGKILL to every process it can (kill(-1))")
    child = os.fork()
    if child == 0:
        # kill(-1) spares the caller itself, so this child can still report; the worker (its
        # parent) is expected to die.
        try:
            os.kill(-1, signal.SIGKILL)
            err = 0
        except OSError as exc:
            err = exc.errno
        emit.result([_row("kill(-1, SIGKILL) from a child", err)])
        os._exit(0)
    os.waitpid(child, 0)
    emit.result([_row("worker survived kill(-1, SIGKILL)", 0)])


def _tiocsti(params: Mapping[str, Any], emit: Emitter) -> None:
    rows = []
    for name, request, arg in (
        ("TIOCSTI", termios.TIOCSTI, b"x"),
        ("FIONREAD", termios.FIONREAD, b"\0" * 4),
    ):
        try:
            fcntl.ioctl(0, request, arg)
            rows.append(_row(f"ioctl(0, {name})", 0))
        except OSError as exc:
            rows.append(_row(f"ioctl(0, {name})", exc.errno))
    emit.result(rows)


def _io_uring(params: Mapping[str, Any], emit: Emitter) -> None:
    io_params = ctypes.create_string_buffer(IO_URING_PARAMS_BYTES)
    fd = _syscall("io_uring_setup", ctypes.c_long(1), io_params)
    if fd >= 0:
        os.close(fd)
    emit.result([_row("io_uring_setup", _libc_errno(fd))])


def _socket_families(params: Mapping[str, Any], emit: Emitter) -> None:
    rows = []
    for name, family in DENIED_FAMILIES.items():
        for kind, call in (("socket", socket.socket), ("socketpair", socket.socketpair)):
            try:
                call(family, socket.SOCK_STREAM if name == "AF_VSOCK" else socket.SOCK_DGRAM)
                rows.append(_row(f"{kind}({name})", 0, "created"))
            except OSError as exc:
                rows.append(_row(f"{kind}({name})", exc.errno))
    # What must keep working: loopback TCP, Unix sockets and raw ICMP (the sandbox keeps
    # CAP_NET_RAW for it).
    for metric, args in (
        ("socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)", (socket.AF_INET, socket.SOCK_RAW, 1)),
        ("socket(AF_INET6, SOCK_STREAM)", (socket.AF_INET6, socket.SOCK_STREAM, 0)),
        ("socketpair(AF_UNIX)", None),
    ):
        try:
            if args is None:
                for s in socket.socketpair(socket.AF_UNIX):
                    s.close()
            else:
                socket.socket(*args).close()
            rows.append(_row(metric, 0))
        except OSError as exc:
            rows.append(_row(metric, exc.errno))
    emit.result(rows)


def _legacy_abi(params: Mapping[str, Any], emit: Emitter) -> None:
    _libc.personality.argtypes = [ctypes.c_ulong]
    rows = [
        _row("personality(query)", _libc_errno(_libc.personality(PERSONALITY_QUERY))),
        _row("personality(PER_LINUX)", _libc_errno(_libc.personality(0))),
        _row(
            "personality(READ_IMPLIES_EXEC)",
            _libc_errno(_libc.personality(READ_IMPLIES_EXEC)),
        ),
    ]
    if platform.machine() == "x86_64":
        table = ctypes.create_string_buffer(LDT_BYTES)
        result = _syscall("modify_ldt", ctypes.c_long(MODIFY_LDT_READ), table, LDT_BYTES)
        rows.append(_row("modify_ldt(read)", _libc_errno(result)))
    emit.result(rows)


def _memfd_hog(params: Mapping[str, Any], emit: Emitter) -> None:
    # memfd pages are shared memory, not address space: RLIMIT_AS does not see them. Many
    # memfds, each under RLIMIT_FSIZE, as a hog that knows the limits would do.
    chunk = b"\x01" * MEMORY_CHUNK_BYTES
    held = 0
    fds = []
    try:
        while held < MEMFD_MAX_BYTES:
            fd = os.memfd_create("hog")
            fds.append(fd)
            for _ in range(MEMFD_CHUNKS_EACH):
                held += os.write(fd, chunk)
    except OSError as exc:
        emit.result([_row("fill memfds", exc.errno, f"after {held // MIB} MiB")])
        return
    finally:
        for fd in fds:
            os.close(fd)
    emit.result([_row("fill memfds", 0, f"{held // MIB} MiB held, no limit hit")])


def _spin_cores(params: Mapping[str, Any], emit: Emitter) -> None:
    """Spin on every core for ``spin_s`` of wall time; report the cores' worth of CPU used."""
    spin_s = float(params.get("sleep_s") or SPIN_S)
    children = []
    for _ in range(max(2, 2 * (os.cpu_count() or 1))):
        pid = os.fork()
        if pid == 0:
            deadline = time.monotonic() + spin_s
            while time.monotonic() < deadline:
                pass
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    times = os.times()
    cores = (times.children_user + times.children_system) / spin_s
    emit.result(
        [{"metric": "cores used", "value": round(cores, 3), "unit": "cores", "note": "spinning"}]
    )


def _event_flood(params: Mapping[str, Any], emit: Emitter) -> None:
    """Many tiny result events, each with one row: the runner must stay linear and bounded."""
    line = b'{"type":"result","rows":[{"metric":"m","value":1}]}\n' * 1000
    for _ in range(int(params.get("count") or FLOOD_EVENTS) // 1000):
        os.write(emit.fd, line)
    emit.result([_row("after the flood", 0)])


def _bad_events(params: Mapping[str, Any], emit: Emitter) -> None:
    """Lines the runner must record as bad, not crash on, and store nothing unrenderable from."""
    deep = b"[" * DEEP_NESTING + b"]" * DEEP_NESTING
    forged_hello = {"type": "hello", "host": {"hostname": ["x"], "mitigations": [[1, 2, 3]]}}
    partial_hello = {"type": "hello", "host": {"hostname": "forged", "cores": {"online": 2}}}
    lines = [
        deep,
        b'{"type": "result", "rows": ' + deep + b"}",
        json.dumps(forged_hello).encode(),
        json.dumps(partial_hello).encode(),
        b'{"type": "result", "rows": ["not a row", 1, null]}',
        b'{"type": "result", "rows": [{"metric": "m", "dist": [1, 2, 3]}]}',
        b'{"type": "sample", "series": "s", "x": NaN, "y": 1}',
        b'{"type": "log", "message": "nul \\u0000 and lone \\ud800 surrogate"}',
        b"\xff\xfe not utf-8",
    ]
    os.write(emit.fd, b"\n".join(lines) + b"\n")
    emit.result([_row("after the bad lines", 0)])


def _host_view(params: Mapping[str, Any], emit: Emitter) -> None:
    """What of the host the sandbox shows: each row's note is what was seen."""
    rows = [{"metric": "hostname", "value": 0, "unit": "", "note": os.uname().nodename}]
    try:
        local = sorted(os.listdir("/usr/local"))
        rows.append(
            {
                "metric": "/usr/local",
                "value": len(local),
                "unit": "entries",
                "note": " ".join(local),
            }
        )
    except OSError as exc:
        rows.append(_row("/usr/local", exc.errno))
    for path in ("/proc/cmdline", "/proc/sched_debug", "/proc/timer_list"):
        try:
            with open(path, "rb") as f:
                size = len(f.read(1 << 20))
            rows.append({"metric": path, "value": size, "unit": "bytes", "note": "read"})
        except OSError as exc:
            rows.append(_row(path, exc.errno))
    try:
        with open("/usr/local/planted", "w") as f:
            f.write("x")
        rows.append(_row("write /usr/local/planted", 0))
    except OSError as exc:
        rows.append(_row("write /usr/local/planted", exc.errno))
    emit.result(rows)


CASES: dict[str, Callable[[Mapping[str, Any], Emitter], None]] = {
    "fork_bomb": _fork_bomb,
    "memory_hog": _memory_hog,
    "busy_loop": _busy_loop,
    "sleep": _sleep,
    "big_write": _big_write,
    "connect_out": _connect_out,
    "read_secret": _read_secret,
    "mount": _mount,
    "unshare": _unshare,
    "ptrace": _ptrace,
    "kill_all": _kill_all,
    "tiocsti": _tiocsti,
    "io_uring": _io_uring,
    "socket_families": _socket_families,
    "legacy_abi": _legacy_abi,
    "memfd_hog": _memfd_hog,
    "spin_cores": _spin_cores,
    "event_flood": _event_flood,
    "bad_events": _bad_events,
    "host_view": _host_view,
}
