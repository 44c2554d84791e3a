"""seccomp-cost: what a BPF filter on every syscall costs, against its length and shape.

Sandbox side, standard library + toolkit + the native getppid/read loop. For each filter length
and shape, a forked child times the call (a C loop, GIL released), installs the filter (after
no_new_privs) and times it again; the difference is what the filter adds per call. Filters
cannot be removed, so each lives and dies in its own child: the worker itself never runs under
them, and the result says so by the kernel's own count (Seccomp_filters in /proc/self/status).

The worker already runs under the sandbox's filter: every figure here is on top of it.

Since Linux 5.11 the kernel runs a new filter once per syscall number against a fake
seccomp_data, and when the verdict cannot depend on anything but the number (no argument or
instruction pointer is loaded on that path) it records "always allow" in a bitmap and skips the
filter for that syscall from then on. A chain that compares only syscall numbers is then free
for an allowed call; ``defeat_cache`` starts every filter with a test of an argument, as filters
that inspect arguments do, so the chain really runs on every call.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

from sysops.native import loop_ns
from sysops.worker.emit import Emitter
from sysops.worker.toolkit import bpf
from sysops.worker.toolkit.harness import Child
from sysops.worker.toolkit.hostfacts import kernel_release
from sysops.worker.toolkit.params import bounded_int, choice, flag, int_list, subset
from sysops.worker.toolkit.rows import dist_row, row
from sysops.worker.toolkit.stats import Distribution
from sysops.worker.toolkit.sweep import fit_line, sweep

SHAPES = ("linear", "tree", "allowlist")
SHAPE_LABELS = {
    "linear": "linear chain of syscall-number compares (a deny-list)",
    "tree": "binary search over syscall numbers",
    "allowlist": "allow-list ending in deny, the call checked last",
}
CALLS = ("getppid", "read")
LENGTH_MIN, LENGTH_MAX = 8, 1_000
POINTS_MAX = 10
ITERATIONS_MAX = 1_000_000
REPETITIONS_MAX = 50
WARMUP_REPETITIONS = 2
CHILD_TIMEOUT_S = 60.0
# Syscall numbers no kernel has: compares against them never match a real call.
UNUSED_NR_BASE = 5_000
# Never equal to a real argument in practice: the test exists to be a test of an argument.
ARGUMENT_MAGIC = 0x5EC0FFEE
BITMAP_KERNEL = (5, 11)
# What the child still calls after its filter is installed (Python's allocator, the report's
# write, exit): an allow-list must let these through or the child cannot say what it measured.
ESSENTIAL_SYSCALLS = {
    "x86_64": {
        "read": 0, "write": 1, "close": 3, "fstat": 5, "lseek": 8, "mmap": 9, "mprotect": 10,
        "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15,
        "ioctl": 16, "madvise": 28, "getpid": 39, "exit": 60, "sigaltstack": 131,
        "gettid": 186, "futex": 202, "clock_gettime": 228, "clock_nanosleep": 230,
        "exit_group": 231, "newfstatat": 262, "getrandom": 318,
    },
    "aarch64": {
        "ioctl": 29, "close": 57, "lseek": 62, "read": 63, "write": 64, "newfstatat": 79,
        "fstat": 80, "exit": 93, "exit_group": 94, "futex": 98, "clock_gettime": 113,
        "clock_nanosleep": 115, "sigaltstack": 132, "rt_sigaction": 134,
        "rt_sigprocmask": 135, "rt_sigreturn": 139, "getpid": 172, "gettid": 178, "brk": 214,
        "munmap": 215, "mmap": 222, "mprotect": 226, "madvise": 233, "getrandom": 278,
    },
}  # fmt: skip
GETPPID_NR = {"x86_64": 110, "aarch64": 173}


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    shapes = subset(params, "shapes", SHAPES)
    lengths = int_list(params, "lengths", LENGTH_MIN, LENGTH_MAX, POINTS_MAX)
    call = choice(params, "call", CALLS)
    defeat_cache = flag(params, "defeat_cache", True)
    iterations = bounded_int(params, "iterations", 1_000, ITERATIONS_MAX)
    repetitions = bounded_int(params, "repetitions", 3, REPETITIONS_MAX)
    arch = platform.machine()
    if arch not in ESSENTIAL_SYSCALLS:
        raise ValueError(f"no syscall table for {arch}")

    filters_before = bpf.filters_attached()
    unfiltered = _call_cost(call, iterations, repetitions)
    emit.log(
        f"{call} in this worker, under the sandbox's own filter only: "
        f"{unfiltered.median:.1f} ns per call; {filters_before} filter(s) attached"
    )

    measured: dict[tuple[str, int], dict[str, Any]] = {}

    def measure(shape: str, length: float) -> tuple[float, float]:
        program = build(shape, int(length), call, arch, defeat_cache=defeat_cache)
        result = Child.run(
            lambda: _measure_in_child(program, call, iterations, repetitions),
            name=f"{shape} filter child",
            timeout_s=CHILD_TIMEOUT_S,
        )
        size = bpf.length(program)
        measured[(shape, size)] = result
        return size, round(result["added_ns"], 2)

    emit.phase("sweep")
    curves = sweep(lengths, shapes, measure, emit, label=lambda x: f"{x:g} instructions")

    filters_after = bpf.filters_attached()
    after = _call_cost(call, iterations, repetitions)
    emit.result(
        _rows(
            curves, measured, call, unfiltered, after, filters_before, filters_after, defeat_cache
        )
    )


def _call_cost(call: str, iterations: int, repetitions: int) -> Distribution:
    fd = os.open("/dev/zero", os.O_RDONLY | os.O_CLOEXEC) if call == "read" else -1
    try:
        for _ in range(WARMUP_REPETITIONS):
            loop_ns(call, iterations, fd)
        return Distribution.of(
            loop_ns(call, iterations, fd) / iterations for _ in range(repetitions)
        )
    finally:
        if fd >= 0:
            os.close(fd)


def _measure_in_child(program: bytes, call: str, iterations: int, repetitions: int) -> dict:
    fd = os.open("/dev/zero", os.O_RDONLY) if call == "read" else -1
    for _ in range(WARMUP_REPETITIONS):
        loop_ns(call, iterations, fd)
    before = [loop_ns(call, iterations, fd) / iterations for _ in range(repetitions)]
    filters_before = bpf.filters_attached()
    bpf.install(program)
    filters_after = bpf.filters_attached()
    loop_ns(call, iterations, fd)  # the first calls build the kernel's bitmap entry
    after = [loop_ns(call, iterations, fd) / iterations for _ in range(repetitions)]
    # Minimum against minimum: the least-disturbed repetition of each, as lmbench does for
    # short loops; a neighbour's burst on one side only would otherwise be the "filter cost".
    return {
        "before": before,
        "after": after,
        "added_ns": min(after) - min(before),
        "filters": [filters_before, filters_after],
    }


def build(shape: str, length: int, call: str, arch: str, *, defeat_cache: bool) -> bytes:
    """A filter of about ``length`` instructions (within one) of ``shape`` that allows
    ``call``, after the usual architecture check."""
    head = bpf.arch_check(arch)
    if defeat_cache:
        head += [
            bpf.load(bpf.arg_low_word_offset(5)),
            bpf.jeq(ARGUMENT_MAGIC, 0, 1),
            bpf.ret(bpf.EPERM),
        ]
    head.append(bpf.load(bpf.NR_OFFSET))
    budget = max(2, length - len(head))
    if shape == "linear":
        body = _linear(budget)
    elif shape == "tree":
        body = _fitted(budget, _tree)
    else:
        body = _allowlist(budget, _call_nr(call, arch), arch)
    return b"".join(head + body)


def _linear(budget: int) -> list[bytes]:
    """Each compare beside its verdict (jeq; ret deny): no jump is ever long. The call matches
    none, so it walks the whole chain."""
    body: list[bytes] = []
    for index in range((budget - 1) // 2):
        body += [bpf.jeq(UNUSED_NR_BASE + index, 0, 1), bpf.ret(bpf.EPERM)]
    return body + [bpf.ret(bpf.SECCOMP_RET_ALLOW)]


def _fitted(budget: int, make: Any) -> list[bytes]:
    """The largest ``make(keys)`` that fits ``budget`` instructions."""
    low, high = 1, budget
    while low < high:
        middle = (low + high + 1) // 2
        if len(make(middle)) <= budget:
            low = middle
        else:
            high = middle - 1
    return make(low)


def _tree(count: int) -> list[bytes]:
    return _subtree(list(range(UNUSED_NR_BASE, UNUSED_NR_BASE + count)))


def _subtree(keys: list[int]) -> list[bytes]:
    """Binary search: jge pivot → (ja right) else left. A leaf denies its key, allows the rest."""
    if len(keys) == 1:
        return [bpf.jeq(keys[0], 0, 1), bpf.ret(bpf.EPERM), bpf.ret(bpf.SECCOMP_RET_ALLOW)]
    middle = len(keys) // 2
    left, right = _subtree(keys[:middle]), _subtree(keys[middle:])
    return [bpf.jump(bpf.BPF_JGE_K, keys[middle], 0, 1), bpf.ja(len(left)), *left, *right]


def _allowlist(budget: int, call_nr: int, arch: str) -> list[bytes]:
    essentials = [nr for nr in ESSENTIAL_SYSCALLS[arch].values() if nr != call_nr]
    padding = max(0, (budget - 1) // 2 - len(essentials) - 1)
    allowed = [*essentials, *range(UNUSED_NR_BASE, UNUSED_NR_BASE + padding), call_nr]
    body: list[bytes] = []
    for nr in allowed:
        body += [bpf.jeq(nr, 0, 1), bpf.ret(bpf.SECCOMP_RET_ALLOW)]
    return body + [bpf.ret(bpf.EPERM)]


def _call_nr(call: str, arch: str) -> int:
    return GETPPID_NR[arch] if call == "getppid" else ESSENTIAL_SYSCALLS[arch]["read"]


def _bitmap_kernel() -> bool:
    parts = kernel_release().split(".")
    try:
        return (int(parts[0]), int(parts[1].split("-")[0])) >= BITMAP_KERNEL
    except (IndexError, ValueError):
        return False


def _rows(
    curves: Mapping[str, list[tuple[float, float]]],
    measured: Mapping[tuple[str, int], Mapping[str, Any]],
    call: str,
    unfiltered: Distribution,
    after: Distribution,
    filters_before: int | None,
    filters_after: int | None,
    defeat_cache: bool,
) -> list[dict[str, Any]]:
    layer = "native"
    cache = (
        "every filter tests an argument first, so the kernel's constant-action bitmap cannot "
        "skip it"
        if defeat_cache
        else "the filters compare syscall numbers only: on Linux ≥ 5.11 the kernel can prove "
        "the verdict for the call and skip the filter (the constant-action bitmap)"
    )
    rows = [
        dist_row(
            f"{call} in the worker (sandbox filter only)",
            unfiltered,
            "ns/call",
            "C loop, GIL released, before any experiment filter; the sandbox's own filter is "
            "already attached",
            layer=layer,
        )
    ]
    for shape, curve in curves.items():
        xs, ys = [x for x, _ in curve], [y for _, y in curve]
        longest = max(xs)
        result = measured[(shape, int(longest))]
        rows.append(
            dist_row(
                f"{shape}: {call} with a {int(longest)}-instruction filter",
                result["after"],
                "ns/call",
                f"{SHAPE_LABELS[shape]}; {result['added_ns']:+.1f} ns (fastest repetition "
                f"against fastest) over {min(result['before']):.1f} ns just before it was "
                f"installed; {cache}",
                layer=layer,
            )
        )
        if len(set(xs)) >= 2:
            fit = fit_line(xs, ys)
            rows.append(
                row(
                    f"{shape}: ns added per instruction",
                    round(fit.slope, 4),
                    "ns/instruction",
                    f"least-squares slope of the added cost over {len(xs)} lengths "
                    f"({int(min(xs))}–{int(longest)} instructions); intercept "
                    f"{fit.intercept:+.1f} ns (the cost of any filter at all: the slow syscall "
                    f"entry path)" + (f", r² {fit.r2:.2f}" if fit.r2 is not None else ""),
                )
            )
    rows += [
        row(
            "filters attached to the worker",
            filters_after,
            "filters",
            f"{filters_before} before the sweep and {filters_after} after (Seccomp_filters in "
            f"/proc/self/status): each experiment filter lived and died in its own child; "
            f"{call} here costs {after.median:.1f} ns after the sweep against "
            f"{unfiltered.median:.1f} ns before",
        ),
        row(
            "kernel",
            kernel_release(),
            "",
            "constant-action bitmap (Linux ≥ 5.11): "
            + ("yes" if _bitmap_kernel() else "no, every filter runs on every call"),
        ),
    ]
    return rows
