"""Descriptors: the per-process limit, a leak, close-on-exec, and which number the kernel picks.

Sandbox side: standard library and the probe toolkit only. RLIMIT_NOFILE's soft limit is set
for the run here with setrlimit (the runner raised the hard limit where the form asked for
more than the sandbox's default). Scenarios:

- ``emfile``: open /dev/null until the kernel refuses; the live chart is the open count;
- ``leak``: a loop that closes what it opens, then one that forgets to, both watched through
  /proc/self/fd;
- ``inherit``: two children exec'd while a marker file is open, once without O_CLOEXEC and
  once with it; each child lists its own /proc/self/fd;
- ``dup``: open/close/dup/dup2/F_DUPFD and the lowest-free-number rule.

Descriptors that must be opened *without* O_CLOEXEC, and dup/dup2/fcntl, go through libc by
ctypes: Python's os.open and os.dup always set close-on-exec (PEP 446), which would hide the
very thing shown.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import resource
import sys
import time
from collections.abc import Mapping
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import fds, hostfacts
from sysops.worker.toolkit.libc import check, libc
from sysops.worker.toolkit.params import bounded_int, choice
from sysops.worker.toolkit.rows import dist_row, errno_fields, errno_row, facts_rows, row
from sysops.worker.toolkit.timing import SampleFlusher, gc_paused

SCENARIOS = ("emfile", "leak", "inherit", "dup")
NOFILE_MIN = 16
NOFILE_MAX = 65_536
COUNT_MAX = 100_000
CHART_POINTS = 100  # open-count samples per loop: the count is linear between them
LEAK_CHART_POINTS = 50  # each costs a listing of /proc/self/fd, O(open descriptors)
FD_TABLE_ROWS_MAX = 64
REFUSED_CALLS = 1_000  # refused opens timed at the limit
CHILD_TIMEOUT_S = 10.0
TARGET_PATH = "/dev/null"
MARKER_DIR = "/tmp"
SECCOMP_NOTE = "Inside the sandbox, whose seccomp filter adds about 10–60 ns to every syscall."

# The child of the inherit scenario: what it sees in its own descriptor table after execve.
CHILD_LISTER = """
import json, os
table = []
for name in sorted(os.listdir("/proc/self/fd"), key=int):
    try:
        table.append([int(name), os.readlink("/proc/self/fd/" + name)])
    except OSError:
        table.append([int(name), None])
print(json.dumps(table))
"""


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    scenario, count, nofile = _checked(params)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and nofile > hard:
        raise ValueError(
            f"RLIMIT_NOFILE {nofile} is over this run's hard limit {hard}: the server's "
            "ceiling on descriptors is lower than the form allowed"
        )
    emit.log(f"scenario {scenario}: RLIMIT_NOFILE soft {nofile}, hard {hard}")
    # Any soft limit up to the hard one is allowed; the hard limit stays as the sandbox set it.
    # Restored afterwards, for a caller that goes on (a test process).
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    try:
        limits = hostfacts.rlimits(("RLIMIT_NOFILE",))["RLIMIT_NOFILE"]
        rows = {
            "emfile": lambda: _emfile(nofile, emit),
            "leak": lambda: _leak(count, emit),
            "inherit": _inherit,
            "dup": lambda: _dup(nofile),
        }[scenario]()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    facts = {
        "RLIMIT_NOFILE (soft, hard)": f"{limits[0]}, {limits[1]}",
        "fs.nr_open (the kernel's ceiling on RLIMIT_NOFILE)": hostfacts.sysctl("fs.nr_open"),
        "kernel": hostfacts.kernel_release(),
    }
    emit.result(rows + facts_rows(facts, f"host fact. {SECCOMP_NOTE}"))


def _checked(params: Mapping[str, Any]) -> tuple[str, int, int]:
    return (
        choice(params, "scenario", SCENARIOS),
        bounded_int(params, "count", 1, COUNT_MAX, 1_000),
        bounded_int(params, "nofile", NOFILE_MIN, NOFILE_MAX),
    )


def _open_target() -> int:
    return os.open(TARGET_PATH, os.O_RDONLY | os.O_CLOEXEC)


def _close_all(numbers: list[int]) -> None:
    for fd in numbers:
        os.close(fd)


def _emfile(nofile: int, emit: Emitter) -> list[dict[str, Any]]:
    held = fds.open_fds()
    before = len(held)
    # Descriptors opened before the limit was lowered keep their numbers, even above it.
    above_limit = sum(1 for fd in held if fd >= nofile)
    opened: list[int] = []
    open_ns: list[int] = []
    refusal: OSError | None = None
    step = max(1, nofile // CHART_POINTS)
    flusher = SampleFlusher(emit)
    flusher.add("open_fds", 0, before)
    perf_counter_ns = time.perf_counter_ns
    try:
        with gc_paused():
            # One more open than the limit allows, at most: the loop cannot run away.
            for attempt in range(1, nofile + 2):
                start_ns = perf_counter_ns()
                try:
                    fd = _open_target()
                except OSError as exc:
                    refusal = exc
                    break
                open_ns.append(perf_counter_ns() - start_ns)
                opened.append(fd)
                if attempt % step == 0:
                    flusher.add("open_fds", attempt, before + len(opened))
                    flusher.maybe_flush(len(opened) / nofile, f"{before + len(opened)} open")
            flusher.add("open_fds", len(opened), before + len(opened))
            flusher.flush(1.0, f"{before + len(opened)} open")
            refused_ns = _time_refused(refusal) if refusal else []
        # The table needs one free descriptor: listing /proc/self/fd opens one too.
        spare = opened.pop() if refusal else None
        if spare is not None:
            os.close(spare)
        table = fds.table(FD_TABLE_ROWS_MAX)
    finally:
        _close_all(opened)
    total = before + len(opened) + (1 if refusal else 0)
    rows = [
        errno_row(
            "open() at the limit",
            refusal,
            f"after {len(opened) + (1 if refusal else 0):,} successful opens, with {total:,} "
            f"descriptors open and RLIMIT_NOFILE {nofile:,}. EMFILE is this process's limit; "
            "ENFILE would be the whole system's (fs.file-max).",
            layer="python",
            **({"errno_name": errno_fields(refusal)["name"]} if refusal else {}),
        ),
        row(
            "descriptors open when refused",
            total,
            "fds",
            f"{before} held before the loop (stdin, stdout, stderr, the worker's event pipe…) "
            "plus those the loop opened"
            + (
                f"; {above_limit} of them numbered above the limit, opened before it was lowered."
                if above_limit
                else "."
            ),
            below_limit=total - above_limit,
        ),
        row(
            "highest descriptor number",
            max(opened + [spare] if spare is not None else opened, default=None),
            "fd",
            "Numbers run from 0 to RLIMIT_NOFILE − 1: the limit caps the number as well as "
            "the count.",
        ),
    ]
    if open_ns:
        rows.append(
            dist_row(
                f"open({TARGET_PATH}) below the limit",
                open_ns,
                "ns",
                f"Each successful open, from Python (os.open). {SECCOMP_NOTE}",
                layer="python",
            )
        )
    if refused_ns:
        rows.append(
            dist_row(
                "open() refused at the limit",
                refused_ns,
                "ns",
                "A refused call still enters the kernel: it looks for a free number before it "
                "looks up the path, so the refusal is cheaper than a success.",
                layer="python",
            )
        )
    rows.append(_table_row("descriptor table at the limit (one closed to list it)", table))
    return rows


def _time_refused(refusal: OSError) -> list[int]:
    perf_counter_ns = time.perf_counter_ns
    values = []
    for _ in range(REFUSED_CALLS):
        start_ns = perf_counter_ns()
        try:
            os.close(_open_target())
        except OSError as exc:
            values.append(perf_counter_ns() - start_ns)
            if exc.errno != refusal.errno:
                break
        else:
            break  # a descriptor freed itself: no longer at the limit
    return values


def _leak(count: int, emit: Emitter) -> list[dict[str, Any]]:
    step = max(1, count // LEAK_CHART_POINTS)
    flusher = SampleFlusher(emit)
    with gc_paused():
        for i in range(1, count + 1):
            os.close(_open_target())
            if i % step == 0 or i == count:
                flusher.add("closed", i, len(fds.open_fds()))
                flusher.maybe_flush(i / (2 * count), f"closing loop {i:,}/{count:,}")
        after_closing = len(fds.open_fds())
        leaked: list[int] = []
        refusal: OSError | None = None
        try:
            for i in range(1, count + 1):
                try:
                    leaked.append(_open_target())  # and never closed: the leak
                except OSError as exc:
                    refusal = exc
                    break
                if i % step == 0 or i == count:
                    try:
                        flusher.add("leak", i, len(fds.open_fds()))
                    except OSError as exc:
                        # Listing /proc/self/fd needs a descriptor too: the table is full.
                        refusal = exc
                        break
                    flusher.maybe_flush(0.5 + i / (2 * count), f"leaking loop {i:,}/{count:,}")
            flusher.flush(1.0, "done")
            if refusal:
                os.close(leaked.pop())  # one free descriptor to list the table with
            after_leak = len(fds.open_fds())
            table = fds.table(FD_TABLE_ROWS_MAX)
        finally:
            _close_all(leaked)
    rows = [
        row(
            "open descriptors after the loop that closes",
            after_closing,
            "fds",
            f"{count:,} open + close: the count stays where it started.",
        ),
        row(
            "open descriptors after the leaking loop",
            after_leak + (1 if refusal else 0),
            "fds",
            f"{len(leaked) + (1 if refusal else 0):,} opens without a close: each stays in the "
            "table until the process exits — a long-running server dies of this.",
        ),
    ]
    if refusal:
        rows.append(
            errno_row(
                "the leak hit the limit",
                refusal,
                "The leaking loop ran into RLIMIT_NOFILE before its count (its open, or the "
                "listing of /proc/self/fd watching it, was refused).",
                errno_name=errno_fields(refusal)["name"],
            )
        )
    rows.append(_table_row("descriptor table after the leak", table))
    return rows


def _inherit() -> list[dict[str, Any]]:
    columns = []
    rows = []
    for cloexec in (False, True):
        marker = f"{MARKER_DIR}/marker-{'cloexec' if cloexec else 'plain'}"
        flags = os.O_RDWR | os.O_CREAT | (os.O_CLOEXEC if cloexec else 0)
        # libc's open: os.open would add O_CLOEXEC whatever was asked.
        fd = check(libc.open(os.fsencode(marker), flags, 0o600), f"open({marker})")
        try:
            listing = _child_listing()
        finally:
            os.close(fd)
            os.unlink(marker)
        seen = any(target == marker for _, target in listing)
        title = f"child of a parent holding fd {fd} {'with' if cloexec else 'without'} O_CLOEXEC"
        columns.append({"title": title, "marker": marker, "marker_fd": fd, "fds": listing})
        rows.append(
            row(
                f"child sees the fd opened {'with' if cloexec else 'without'} O_CLOEXEC",
                "yes" if seen else "no",
                "",
                (
                    f"fd {fd} ({marker}) "
                    + (
                        "was closed by the kernel inside execve: the child never had it."
                        if cloexec
                        else "survived execve: the child holds the same open file, offset and "
                        "all, and would keep it open after the parent closed it."
                    )
                ),
                seen=seen,
                fd=fd,
            )
        )
    rows.append(
        row(
            "children's descriptor tables",
            len(columns),
            "listings",
            "Each child lists /proc/self/fd after execve; the listing's own descriptor shows "
            "with no target (it was closed before readlink).",
            detail={"panel": "fd_listing", "columns": columns},
        )
    )
    return rows


def _child_listing() -> list[tuple[int, str | None]]:
    """Spawn a Python child (posix_spawn: fork + execve, descriptors inherited as they are),
    its stdout on a pipe, and return its /proc/self/fd listing."""
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-S", "-c", CHILD_LISTER],
            {},
            file_actions=[(os.POSIX_SPAWN_DUP2, write_fd, 1)],
        )
        os.close(write_fd)
        write_fd = -1
        output = b""
        deadline_s = time.monotonic() + CHILD_TIMEOUT_S
        while chunk := os.read(read_fd, 65_536):
            output += chunk
            if time.monotonic() > deadline_s:
                raise RuntimeError("the listing child did not finish")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"the listing child failed with status {status}")
    return [(int(fd), target) for fd, target in json.loads(output)[:FD_TABLE_ROWS_MAX]]


def _dup(nofile: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    held: list[int] = []

    def step(metric: str, got: int, expected: int, rule: str) -> None:
        rows.append(
            row(
                metric,
                got,
                "fd",
                f"{rule} Expected {expected}: {'so it was' if got == expected else 'NOT SO'}.",
                expected=expected,
                holds=got == expected,
                layer="ctypes",
            )
        )

    def lowest_free() -> int:
        taken = set(fds.open_fds())
        return next(n for n in range(nofile) if n not in taken)

    try:
        expected = lowest_free()
        a = check(libc.open(b"/dev/null", os.O_RDONLY), "open(/dev/null)")
        held.append(a)
        step("open(/dev/null) → a", a, expected, "open returns the lowest free number.")
        b = check(libc.open(b"/dev/zero", os.O_RDONLY), "open(/dev/zero)")
        c = check(libc.open(b"/proc/self/status", os.O_RDONLY), "open(/proc/self/status)")
        held += [b, c]
        check(libc.close(b), "close(b)")
        held.remove(b)
        d = check(libc.open(b"/dev/urandom", os.O_RDONLY), "open(/dev/urandom)")
        held.append(d)
        step("close(b), then open → d", d, b, "A closed number is free again: d reuses b's.")
        expected = lowest_free()
        e = check(libc.dup(a), "dup(a)")
        held.append(e)
        step("dup(a) → e", e, expected, "dup returns the lowest free number too.")
        target = min(100, nofile - 1)
        got = check(libc.dup2(a, target), f"dup2(a, {target})")
        held.append(got)
        step(f"dup2(a, {target})", got, target, "dup2 puts the copy exactly where asked.")
        before = fds.describe(c)["target"]
        got = check(libc.dup2(a, c), "dup2(a, c)")
        step(
            "dup2(a, c) over an open c",
            got,
            c,
            f"c was {before}; dup2 closed it silently and c is now {fds.describe(c)['target']}.",
        )
        floor = min(50, nofile // 2)
        taken = set(fds.open_fds())
        expected = next((n for n in range(floor, nofile) if n not in taken), -1)
        f = libc.fcntl(a, fcntl.F_DUPFD, floor)
        if f >= 0:
            held.append(f)
        step(f"fcntl(a, F_DUPFD, {floor})", f, expected, "F_DUPFD: the lowest free ≥ its floor.")
        ctypes.set_errno(0)
        refused = libc.dup2(a, nofile)
        err = ctypes.get_errno() if refused == -1 else 0
        if refused >= 0:
            held.append(refused)
        rows.append(
            errno_row(
                f"dup2(a, {nofile}) at RLIMIT_NOFILE",
                err,
                "A number at or above the soft limit is not a descriptor this process may "
                "have: dup2 answers EBADF (fcntl F_DUPFD would say EINVAL).",
                errno_name=errno_fields(err)["name"],
                layer="ctypes",
            )
        )
        rows.append(_table_row("descriptor table after the dups", fds.table(FD_TABLE_ROWS_MAX)))
    finally:
        _close_all(sorted(set(held)))
    return rows


def _table_row(metric: str, table: Mapping[str, Any]) -> dict[str, Any]:
    omitted = table["omitted"]
    return row(
        metric,
        table["count"],
        "fds",
        "Each descriptor with what it refers to (readlink of /proc/self/fd/N) and its "
        "close-on-exec flag" + (f"; {omitted:,} in the middle are not shown." if omitted else "."),
        detail={"panel": "fd_table", **table},
    )
