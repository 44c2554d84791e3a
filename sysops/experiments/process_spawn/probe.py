"""Process spawn: fork, vfork, posix_spawn and Python's subprocess, against the parent's size.

Sandbox side: standard library, ``sysops.native`` and the probe toolkit only. The parent is
this worker process with ``mib`` MiB of private anonymous memory written page by page (4 KiB
pages: MADV_NOHUGEPAGE), so fork has that many page-table entries to copy. At each parent
size every method runs ``warmup + repetitions`` spawn cycles; the C module ``_spawn`` times the
native methods (vfork can only be done from C), and ``subprocess.Popen`` is timed from Python.

Moments of a cycle, in µs after the spawn call began:
- returned: the spawn call returned in the parent;
- child start: the child's first instruction after fork/vfork returned in it (stamped in a
  shared page; posix_spawn's and subprocess's children run only libc or CPython code there);
- exec done: the parent saw EOF on an O_CLOEXEC pipe, which a successful execve closes;
  Popen itself returns only after that (its own error pipe works the same way);
- reaped: waitpid returned the child's status — the whole cost of one child.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from sysops.native import load
from sysops.worker.emit import Emitter
from sysops.worker.toolkit import hostfacts
from sysops.worker.toolkit.params import bounded_int, choice, int_list, subset
from sysops.worker.toolkit.rows import dist_row, facts_rows, row
from sysops.worker.toolkit.sweep import slope_row_fields, sweep
from sysops.worker.toolkit.timing import gc_paused

METHOD_LABELS = {
    "fork_exit": "fork + _exit",
    "fork_execve": "fork + execve",
    "vfork_execve": "vfork + execve",
    "posix_spawn": "posix_spawn",
    "subprocess": "Python subprocess.Popen",
}
METHODS = tuple(METHOD_LABELS)
TARGETS = ("/bin/true",)
# The moments of a cycle, in the order they happen.
MOMENT_LABELS = {
    "returned": "spawn call returned",
    "child_start": "child start",
    "exec_done": "exec done",
    "reaped": "reaped",
}
MOMENTS = tuple(MOMENT_LABELS)
# Defensive bounds, as wide as the web form's: a probe must never run unbounded.
PARENT_MIB_MAX = 1024
POINTS_MAX = 8
REPETITIONS_MAX = 500
WARMUP_MAX = 20
MIB = 1 << 20
SECCOMP_NOTE = (
    "Measured inside the sandbox, whose seccomp filter adds about 10–60 ns to every syscall; "
    "a spawn makes dozens, so that is noise here."
)

Cycle = tuple[int, int, int, int]  # ns after the start: returned, child start, exec done, reaped


class ParentMemory:
    """The touched anonymous memory of the process that spawns, resized between sweep points."""

    def __init__(self, spawn: Any) -> None:
        self.spawn = spawn
        self.mib = 0
        self.address: int | None = None

    def resize(self, mib: int) -> None:
        if mib == self.mib:
            return
        self.release()
        if mib:
            self.address = self.spawn.map_touched(mib * MIB)
            self.mib = mib

    def release(self) -> None:
        if self.address is not None:
            self.spawn.unmap(self.address, self.mib * MIB)
        self.address, self.mib = None, 0


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    methods, sizes_mib, target, repetitions, warmup = _checked(params)
    spawn = load("_spawn")
    base_rss_bytes = hostfacts.smaps_rollup().get("Rss")
    emit.log(
        f"{', '.join(methods)} of {target} at parent sizes {sizes_mib} MiB: {warmup} warm-up + "
        f"{repetitions} measured cycles per method and size"
    )
    cycles: dict[tuple[str, int], list[Cycle]] = {}
    memory = ParentMemory(spawn)

    def measure(method: str, x: float) -> float:
        mib = int(x)
        memory.resize(mib)
        with gc_paused():
            measured = _cycles(spawn, method, target, warmup + repetitions)[warmup:]
        cycles[(method, mib)] = measured
        emit.sample(f"{method}_returned", mib, _median_us([c[0] for c in measured]))
        return _median_us([c[3] for c in measured])

    try:
        emit.phase("measure")
        curves = sweep(sizes_mib, methods, measure, emit, label=lambda x: f"{x:g} MiB")
    finally:
        memory.release()
    emit.result(_rows(methods, sizes_mib, target, cycles, curves, base_rss_bytes, warmup))


def _checked(params: Mapping[str, Any]) -> tuple[list[str], list[int], str, int, int]:
    return (
        subset(params, "methods", METHODS),
        int_list(params, "parent_sizes_mib", 0, PARENT_MIB_MAX, POINTS_MAX),
        choice(params, "target", TARGETS, TARGETS[0]),
        bounded_int(params, "repetitions", 1, REPETITIONS_MAX),
        bounded_int(params, "warmup", 0, WARMUP_MAX, 2),
    )


def _cycles(spawn: Any, method: str, target: str, count: int) -> list[Cycle]:
    if method != "subprocess":
        return spawn.cycles(method, target, count)
    out = []
    for _ in range(count):
        start_ns = time.monotonic_ns()
        # Popen returns once its CLOEXEC error pipe closes, i.e. after the child's execve.
        child = subprocess.Popen([target], env={}, close_fds=True)
        returned_ns = time.monotonic_ns() - start_ns
        status = child.wait()
        reaped_ns = time.monotonic_ns() - start_ns
        if status != 0:
            raise RuntimeError(f"{target} exited with status {status} under subprocess")
        out.append((returned_ns, -1, returned_ns, reaped_ns))
    return out


def _median_us(values_ns: list[int]) -> float:
    return round(statistics.median(values_ns) / 1e3, 2)


def _rows(
    methods: list[str],
    sizes_mib: list[int],
    target: str,
    cycles: Mapping[tuple[str, int], list[Cycle]],
    curves: Mapping[str, list[tuple[float, float]]],
    base_rss_bytes: int | None,
    warmup: int,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    smallest, largest = sizes_mib[0], sizes_mib[-1]
    for method in methods:
        label, layer = METHOD_LABELS[method], _layer(method)
        if len(sizes_mib) > 1:
            fit = slope_row_fields(curves[method])
            rows.append(
                row(
                    f"{label}: cost per MiB of parent",
                    fit["slope"],
                    "µs/MiB",
                    f"Least-squares slope of the median spawn-to-reaped time over "
                    f"{len(sizes_mib)} parent sizes ({smallest}–{largest} MiB): "
                    f"{fit['intercept']} µs at 0 MiB, r² {fit['r2']}. {_slope_note(method)}",
                    layer=layer,
                    slope=fit,
                )
            )
        for mib in sorted({smallest, largest}):
            measured = cycles[(method, mib)]
            for index, moment in enumerate(MOMENTS):
                values = [c[index] / 1e3 for c in measured if c[index] >= 0]
                if not values or (mib == smallest != largest and moment != "reaped"):
                    continue
                rows.append(
                    dist_row(
                        f"{label} from a {mib} MiB parent: {MOMENT_LABELS[moment]}",
                        values,
                        "µs",
                        f"{_moment_note(method, moment)} {warmup} warm-up cycles at each size "
                        "were discarded first.",
                        layer=layer,
                        parent_mib=mib,
                    )
                )
    facts = {
        "target program": target,
        "page size (bytes)": hostfacts.page_size(),
        # /sys/kernel/mm is not bound into the sandbox; the maps here use 4 KiB pages anyway.
        "transparent huge pages": hostfacts.thp().get("enabled") or "not visible in the sandbox",
        "parent RSS before the touched memory (MiB)": (
            None if base_rss_bytes is None else round(base_rss_bytes / MIB, 1)
        ),
        "RLIMIT_AS (soft, bytes)": hostfacts.rlimits(("RLIMIT_AS",))["RLIMIT_AS"][0],
        "kernel": hostfacts.kernel_release(),
    }
    rows += facts_rows(
        facts,
        "host fact. The parent's touched memory is private anonymous, written page by page, "
        "with MADV_NOHUGEPAGE (4 KiB pages whatever the THP mode). " + SECCOMP_NOTE,
    )
    return rows


def _layer(method: str) -> str:
    return "python" if method == "subprocess" else "native"


def _slope_note(method: str) -> str:
    if method.startswith("fork"):
        return (
            "fork copies the parent's page tables and marks every private page copy-on-write, "
            "and the child's exit tears that copy down: cost grows with the parent."
        )
    if method == "vfork_execve":
        return "vfork borrows the parent's memory until execve: nothing to copy, flat."
    if method == "posix_spawn":
        return "glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK: no copy, flat."
    return (
        "CPython's _posixsubprocess uses vfork where it can (3.10+): flat, plus the "
        "interpreter's own work around it."
    )


def _moment_note(method: str, moment: str) -> str:
    layer = (
        "Timed from Python around subprocess.Popen (monotonic clock)."
        if method == "subprocess"
        else "Timed in C, GIL released, CLOCK_MONOTONIC read by parent and child."
    )
    return {
        "returned": "From the spawn call to its return in the parent. vfork and posix_spawn "
        "return only after the child's execve (the parent is suspended till then); Popen too.",
        "child_start": "From the spawn call to the child's first instruction after fork/vfork "
        "returned in it, stamped into a shared page.",
        "exec_done": "From the spawn call to EOF on an O_CLOEXEC pipe, which the kernel "
        "closes inside the child's successful execve.",
        "reaped": "From the spawn call to waitpid returning the child's status: the whole cost "
        "of one child, the target's run included.",
    }[moment] + f" {layer}"
