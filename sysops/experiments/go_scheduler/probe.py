"""go-scheduler: what Go's entersyscall buys. With GOMAXPROCS=1, the Go program's main goroutine
blocks in a system call while another goroutine counts; the counter's progress shows whether the
runtime handed the only P to another thread while the first sat in the kernel.

Sandbox side: standard library, ``sysops.native.golang`` and the probe toolkit. The Go program
(``sysgo scheduler``, one process per variant) writes the counter's progress as sample events
on the worker's events fd itself, and its summary as a JSON line on stdout; this probe starts
it, fills the pipe for the read variant, counts the program's threads from outside at the
middle of the block (/proc/<pid>/task: inside, nothing may run during a RawSyscall), and turns
the summary into result rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

from sysops.native.golang import binary, go_env
from sysops.worker.emit import Emitter
from sysops.worker.toolkit.harness import EOF, read_json_line
from sysops.worker.toolkit.params import bounded_int, subset
from sysops.worker.toolkit.rows import row

# variant -> (the Go program's variant, GODEBUG). A RawSyscall read on a pipe is deliberately
# absent: if the writer needed the program's only P, the program would deadlock.
VARIANTS = {
    "syscall_read": ("syscall_read", ""),
    "syscall_sleep": ("syscall_sleep", ""),
    "raw_sleep_nopreempt": ("raw_sleep", "asyncpreemptoff=1"),
    "raw_sleep_preempt": ("raw_sleep", ""),
    "cgo_sleep": ("cgo_sleep", ""),
}
VARIANT_LABELS = {
    "syscall_read": "read(2) on a pipe via syscall.Syscall",
    "syscall_sleep": "nanosleep(2) via syscall.Syscall",
    "raw_sleep_nopreempt": "nanosleep(2) via syscall.RawSyscall, GODEBUG=asyncpreemptoff=1",
    "raw_sleep_preempt": "nanosleep(2) via syscall.RawSyscall, async preemption on",
    "cgo_sleep": "nanosleep(3) in C through cgo",
}
BLOCK_MS_MIN, BLOCK_MS_MAX = 20, 2_000
LEAD_MS_MIN, LEAD_MS_MAX = 10, 500
GOMAXPROCS = 1
START_TIMEOUT_S = 10.0  # the Go program's start and its lead-in
EXIT_TIMEOUT_S = 10.0


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    variants = subset(params, "variants", tuple(VARIANTS))
    block_ms = bounded_int(params, "block_ms", BLOCK_MS_MIN, BLOCK_MS_MAX)
    lead_ms = bounded_int(params, "lead_ms", LEAD_MS_MIN, LEAD_MS_MAX)
    emit.log(
        f"GOMAXPROCS={GOMAXPROCS}; each variant: count {lead_ms} ms, block {block_ms} ms in "
        f"the call, count {lead_ms} ms more"
    )
    rows: list[dict[str, Any]] = []
    for index, variant in enumerate(variants):
        emit.phase(variant)
        emit.progress(index / len(variants), VARIANT_LABELS[variant])
        report = _run_variant(variant, block_ms, lead_ms, emit)
        rows.extend(_rows(variant, report, block_ms))
    emit.progress(1.0, "done")
    rows.append(
        row(
            "Go release, GOMAXPROCS",
            f"{report['go_version']}, {report['gomaxprocs']}",
            "",
            "host fact: the Go program was built by the set-up with Debian's golang-go",
        )
    )
    emit.result(rows)


def _run_variant(variant: str, block_ms: int, lead_ms: int, emit: Emitter) -> dict[str, Any]:
    go_variant, godebug = VARIANTS[variant]
    with ExitStack() as stack:
        read_fd = write_fd = -1
        if go_variant == "syscall_read":
            read_fd, write_fd = os.pipe()
            stack.callback(os.close, read_fd)
            stack.callback(os.close, write_fd)
        job = {
            "variant": go_variant,
            "block_ms": block_ms,
            "lead_ms": lead_ms,
            "events_fd": emit.fd,
            "pipe_fd": read_fd,
            "series": variant,
        }
        # The parameters go in the argument: a read of stdin that blocked at start would leave
        # the runtime an idle thread, hiding the clone the block needs.
        process = subprocess.Popen(
            [str(binary()), "scheduler", json.dumps(job)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=go_env(GOMAXPROCS, godebug),
            pass_fds=tuple(fd for fd in (emit.fd, read_fd) if fd >= 0),
        )
        stack.callback(_reap, process)
        assert process.stdout is not None
        out = process.stdout.fileno()
        _expect(read_json_line(out, START_TIMEOUT_S + lead_ms / 1e3), variant, "blocking")
        time.sleep(block_ms / 2e3)
        threads_during = _threads(process.pid)
        if write_fd >= 0:
            time.sleep(block_ms / 2e3)
            os.write(write_fd, b"x")
        report = _expect(
            read_json_line(out, EXIT_TIMEOUT_S + (block_ms + 2 * lead_ms) * 10 / 1e3),
            variant,
            "its summary",
        )
        report["threads_during"] = threads_during
        return report


def _expect(answer: Any, variant: str, what: str) -> dict[str, Any]:
    if answer is None or answer is EOF:
        raise RuntimeError(f"the Go program ({variant}) did not report {what}")
    return answer


def _reap(process: subprocess.Popen[bytes]) -> None:
    try:
        process.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _threads(pid: int) -> int:
    """The process's OS threads, seen from outside: the entries of /proc/<pid>/task."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return -1


def _rows(variant: str, report: Mapping[str, Any], block_ms: int) -> list[dict[str, Any]]:
    label = VARIANT_LABELS[variant]
    blocked_ms = report["block_end_ms"] - report["block_start_ms"]
    # How long the counter ran while the call was in the kernel: its counts then, at its pace
    # when it has the P (the median pace between its records before the block).
    ran_share = report["ran_in_block_ms"] / blocked_ms if blocked_ms else 0.0
    resume = report["resume_after_ms"]
    eintrs = report["eintr_at_ms"]
    rows = [
        row(
            f"{label}: counter first ran after the block began",
            None if resume is None else round(resume, 2),
            "ms",
            "How long the counting goroutine waited for the P once the other entered the call"
            + (
                "; it could not run until the call returned."
                if resume is not None and resume >= 0.9 * blocked_ms
                else "."
            ),
            layer=variant,
        ),
        row(
            f"{label}: share of the block the counter ran",
            round(100 * ran_share, 1),
            "%",
            f"{report['count_in_block']:,} counts while the call was in the kernel, at the "
            f"counter's pace of {report['count_per_ms']:,.0f} per ms: about "
            f"{report['ran_in_block_ms']:.1f} of the {blocked_ms:.1f} ms.",
            layer=variant,
        ),
        row(
            f"{label}: time in the call",
            round(blocked_ms, 2),
            "ms",
            f"Asked for {block_ms} ms."
            + (
                f" The call returned EINTR {len(eintrs)} times (first at "
                f"{eintrs[0] - report['block_start_ms']:.1f} ms): the runtime's preemption "
                "signal (SIGURG), aimed at a goroutine it thought was running, and resumed."
                if eintrs
                else ""
            ),
            layer=variant,
        ),
        row(
            f"{label}: OS threads before → during the block",
            f"{report['threads_before']} → {report['threads_during']}",
            "threads",
            "/proc/self/task just before the call; /proc/<pid>/task half way through it, "
            "from outside. No thread was idle at the start (see the explanation): a new one "
            "during the block is the runtime's hand-off of the P.",
            layer=variant,
            threads_before=report["threads_before"],
            threads_during=report["threads_during"],
        ),
    ]
    return rows
