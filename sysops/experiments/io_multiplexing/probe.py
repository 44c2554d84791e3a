"""select vs poll vs epoll as the number of watched descriptors grows.

Sandbox side: standard library, ``sysops.native`` and the probe toolkit only. For each count N
the probe opens N pipes and times one wait call (timeout 0) watching their N read ends while
k of them hold a byte: in C (``_iomux.wait_ns``) and, where asked, through Python's select
module, mechanisms interleaved at every point. A helper process makes the idle pipes and
passes their read ends over a unix socket, keeping the write ends: one descriptor per watched
pipe here, so 10,000 fit under a limit of about 10,000, and N read ends sit under FD_SETSIZE
as long as N does. select is not run where a watched descriptor is >= FD_SETSIZE; the run
shows instead what Python says and why C must not try.

Two short scenarios run first, each a handful of syscalls for the trace: Python's select on a
descriptor >= 1024, and an edge-triggered reader that does not drain its socket, next to a
level-triggered one.
"""

from __future__ import annotations

import fcntl
import os
import resource
import select
import socket
import termios
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit.harness import Child, ChildContext
from sysops.worker.toolkit.hostfacts import kernel_release, sysctl
from sysops.worker.toolkit.params import bounded_int, int_list, subset
from sysops.worker.toolkit.rows import dist_row, facts_rows, row, with_ratios
from sysops.worker.toolkit.stats import Distribution
from sysops.worker.toolkit.sweep import fit_line, sweep
from sysops.worker.toolkit.timing import gc_paused

MECHANISMS = ("select", "poll", "epoll_lt", "epoll_et")
MECHANISM_LABELS = {
    "select": "select",
    "poll": "poll",
    "epoll_lt": "epoll (level-triggered)",
    "epoll_et": "epoll (edge-triggered)",
}
LAYERS = ("native", "python")
LAYER_LABELS = {"native": "C", "python": "Python select module"}
FD_SETSIZE = 1024  # glibc's, fixed at compile time; _iomux reports the same
COUNT_MAX = 10_000
COUNTS_MAX_ITEMS = 8
ACTIVE_MAX = 64
CALLS_MIN, CALLS_MAX = 3, 20_000
# calls × Σ counts × variants: one descriptor looked at by one wait call (~10–40 ns each for
# select and poll), so a run stays within seconds of CPU whatever the form allowed.
DESCRIPTOR_VISITS_MAX = 200_000_000
# Descriptors a run needs beyond its pipes: the interpreter's, the epoll fd, the scenarios'.
FD_HEADROOM = 64
# Read ends passed per SCM_RIGHTS message (the kernel takes at most 253, SCM_MAX_FD).
FDS_PER_MESSAGE = 250
SCENARIO_MESSAGE_BYTES = 100


def variant(layer: str, mechanism: str) -> str:
    """The chart series of a mechanism in a layer: ``native_select``."""
    return f"{layer}_{mechanism}"


def nofile_needed(counts: Sequence[int]) -> int:
    """RLIMIT_NOFILE for a sweep: a descriptor per watched pipe (the idle pipes' write ends
    live in a helper process, under its own copy of the limit), two per ready pipe, headroom,
    and room for a descriptor at 1024 (the FD_SETSIZE scenario)."""
    return max(fds_needed(max(counts), ACTIVE_MAX), 2 * FD_SETSIZE)


def descriptor_visits(counts: Sequence[int], calls: int, variants: int) -> int:
    return calls * sum(counts) * variants


@dataclass(frozen=True)
class Params:
    mechanisms: list[str]
    layers: list[str]
    counts: list[int]
    active: int
    calls: int

    @property
    def warmup(self) -> int:
        return max(1, self.calls // 10)


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    p = _checked(params)
    nofile = _raise_nofile_soft_limit()
    emit.phase("FD_SETSIZE")
    rows = _fd_setsize_rows()
    emit.phase("edge vs level")
    rows += _trigger_rows(_trigger_scenario())
    emit.phase("sweep")
    timer_ns = _timer_overhead_ns() if "native" in p.layers else None
    results, skipped = _sweep(p, nofile, emit)
    rows += _sweep_rows(p, results, skipped, timer_ns)
    rows += facts_rows(
        {
            "RLIMIT_NOFILE": nofile,
            "fs.pipe-user-pages-soft": sysctl("fs.pipe-user-pages-soft"),
            "kernel": kernel_release(),
        }
    )
    emit.result(rows)


def _checked(params: Mapping[str, Any]) -> Params:
    p = Params(
        mechanisms=subset(params, "mechanisms", MECHANISMS),
        layers=subset(params, "layers", LAYERS),
        counts=int_list(params, "counts", 1, COUNT_MAX, COUNTS_MAX_ITEMS),
        active=bounded_int(params, "active", 0, ACTIVE_MAX),
        calls=bounded_int(params, "calls", CALLS_MIN, CALLS_MAX),
    )
    if p.active > min(p.counts):
        raise ValueError(f"active ({p.active}) must not exceed the smallest count ({p.counts[0]})")
    visits = descriptor_visits(p.counts, p.calls, len(p.mechanisms) * len(p.layers))
    if visits > DESCRIPTOR_VISITS_MAX:
        raise ValueError(
            f"calls × descriptors × variants is {visits:,}, over {DESCRIPTOR_VISITS_MAX:,}"
        )
    return p


def _raise_nofile_soft_limit() -> int:
    """The soft limit raised to the hard one (the sandbox sets both from the experiment's
    declared need, within the operator's bounds); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


# --- FD_SETSIZE ------------------------------------------------------------------------------


def _fd_setsize_rows() -> list[dict[str, Any]]:
    explanation = (
        "An fd_set is a fixed bitmap of FD_SETSIZE = 1024 bits: select can watch descriptors "
        "0..1023 only, however many a process may open. poll and epoll take descriptors by "
        "value and have no such limit."
    )
    low_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    try:
        high_fd = fcntl.fcntl(low_fd, fcntl.F_DUPFD_CLOEXEC, FD_SETSIZE)
    except OSError as exc:
        return [
            row(
                "Python select.select on fd ≥ 1024",
                "not tried",
                "",
                f"no descriptor ≥ {FD_SETSIZE} could be opened ({exc.strerror}). {explanation}",
            )
        ]
    finally:
        os.close(low_fd)
    rows = []
    try:
        try:
            select.select([high_fd], [], [], 0)
            python_outcome, python_note = "no error", "this Python accepted it"
        except ValueError as exc:
            python_outcome, python_note = "ValueError", f"“{exc}”"
        rows.append(
            row(
                f"Python select.select on fd {high_fd}",
                python_outcome,
                "",
                f"{python_note}: CPython checks the descriptor before FD_SET. {explanation}",
                layer="python",
            )
        )
        try:
            _native().wait_ns("select", [high_fd], [], [], 1)
            native_outcome, native_note = "ran", "the C guard did not stop it"
        except ValueError as exc:
            native_outcome, native_note = "refused", str(exc)
        rows.append(
            row(
                f"C select on fd {high_fd}",
                native_outcome,
                "",
                f"{native_note} (the sweep never calls C select past the cliff either)",
                layer="native",
            )
        )
    finally:
        os.close(high_fd)
    rows.append(row("FD_SETSIZE", _native().FD_SETSIZE, "descriptors", explanation))
    return rows


# --- edge- vs level-triggered ----------------------------------------------------------------


def _trigger_scenario() -> dict[str, list[int]]:
    """For each mode: events reported by three epoll_waits on one socket: after two messages
    arrive; after only one of them was read; after one more byte arrives. Then the bytes a
    reader gets by reading until EAGAIN. Short on purpose: in a trace, each step is a line."""
    outcome = {}
    for mode, flags in (
        ("level", select.EPOLLIN),
        ("edge", select.EPOLLIN | select.EPOLLET),
    ):
        reader, writer = socket.socketpair()
        epoll = select.epoll()
        try:
            reader.setblocking(False)
            epoll.register(reader.fileno(), flags)
            writer.send(b"a" * SCENARIO_MESSAGE_BYTES + b"b" * SCENARIO_MESSAGE_BYTES)
            first = len(epoll.poll(0))
            reader.recv(SCENARIO_MESSAGE_BYTES)  # one message: the socket is not drained
            second = len(epoll.poll(0))
            queued = _bytes_queued(reader)
            writer.send(b"c")  # new data: a new edge
            third = len(epoll.poll(0))
            drained = _read_until_eagain(reader)
            outcome[mode] = [first, second, queued, third, drained]
        finally:
            epoll.close()
            reader.close()
            writer.close()
    return outcome


def _bytes_queued(sock: socket.socket) -> int:
    buffer = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buffer)
    return int.from_bytes(buffer, "little")


def _read_until_eagain(sock: socket.socket) -> int:
    total = 0
    while True:
        try:
            data = sock.recv(SCENARIO_MESSAGE_BYTES)
        except BlockingIOError:
            return total
        if not data:
            return total
        total += len(data)


def _trigger_rows(outcome: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    level, edge = outcome["level"], outcome["edge"]
    steps = [
        ("200 bytes arrive; epoll_wait", "events", 0),
        ("read 100 of them; epoll_wait again", "events", 1),
        ("bytes still queued (FIONREAD)", "bytes", 2),
        ("1 more byte arrives; epoll_wait", "events", 3),
        ("read until EAGAIN", "bytes", 4),
    ]
    detail = {
        "panel": "iomux_trigger",
        "steps": [
            {"step": text, "unit": unit, "level": level[i], "edge": edge[i]}
            for text, unit, i in steps
        ],
    }
    return [
        row(
            "level-triggered: epoll_wait after a partial read",
            level[1],
            "events",
            f"{level[2]} bytes still queued, so the socket is still readable and epoll says so "
            "again: a level-triggered reader may read a little at a time.",
        ),
        row(
            "edge-triggered: epoll_wait after a partial read",
            edge[1],
            "events",
            f"{edge[2]} bytes still queued, yet epoll_wait returns 0: an edge is reported once, "
            "when data arrives. A reader that stops before EAGAIN strands them until the peer "
            f"sends again (then it gets all {edge[4]} bytes, by reading until EAGAIN).",
            detail=detail,
        ),
    ]


# --- the sweep -------------------------------------------------------------------------------


class _Pipes:
    """``count`` pipes whose read ends are watched; ``active`` of them have their write ends
    here, to make them ready. The write ends of the idle ones are held by a helper process
    (they must stay open somewhere: a pipe with no writer reports POLLHUP, i.e. ready), so
    this process spends one descriptor per watched pipe, not two."""

    def __init__(self, count: int, active: int) -> None:
        self.idle_read: list[int] = []
        self.ready_read: list[int] = []
        self.ready_write: list[int] = []
        self.holder: Child | None = None
        try:
            if count > active:
                self._receive_idle(count - active)
            for _ in range(active):
                read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                self.ready_read.append(read_fd)
                self.ready_write.append(write_fd)
        except BaseException:
            self.close()
            raise
        # The ready ones spread evenly through the list: no mechanism gets them all first.
        self.watched = list(self.idle_read)
        for i, fd in enumerate(self.ready_read):
            self.watched.insert(i * count // active, fd)

    def _receive_idle(self, idle: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with ours:
            try:
                self.holder = Child.start(
                    lambda ctx: _hold_write_ends(ctx, theirs, idle),
                    name="write-end holder",
                    keep_fds=[theirs.fileno()],
                )
            finally:
                theirs.close()
            while len(self.idle_read) < idle:
                _, fds, _, _ = socket.recv_fds(ours, 1, FDS_PER_MESSAGE, socket.MSG_CMSG_CLOEXEC)
                if not fds:
                    raise RuntimeError(
                        f"the write-end holder sent {len(self.idle_read)} of {idle} pipes"
                    )
                self.idle_read += fds

    def close(self) -> None:
        for fd in self.idle_read + self.ready_read + self.ready_write:
            os.close(fd)
        self.idle_read, self.ready_read, self.ready_write = [], [], []
        if self.holder is not None:
            self.holder.stop()
            self.holder.kill_if_running()
            self.holder = None


def _hold_write_ends(ctx: ChildContext, sock: socket.socket, count: int) -> dict[str, Any]:
    """In the helper: make ``count`` pipes, pass their read ends to the parent over ``sock``
    (SCM_RIGHTS, a batch at a time), keep the write ends open until told to stop."""
    ctx.report({"pipes": count})
    write_ends = []
    for start in range(0, count, FDS_PER_MESSAGE):
        read_ends = []
        for _ in range(min(FDS_PER_MESSAGE, count - start)):
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            read_ends.append(read_fd)
            write_ends.append(write_fd)
        socket.send_fds(sock, [b"p"], read_ends)
        for fd in read_ends:
            os.close(fd)
    sock.close()
    # Block until the parent closes the control pipe (EOF); not select: see harness.
    os.read(ctx.control_fd, 1)
    return {"held": len(write_ends)}


def fds_needed(count: int, active: int) -> int:
    # The helper peaks at its write ends plus one batch of read ends in hand; this process at
    # the read ends plus the ready pipes' two ends.
    return count + max(2 * active, FDS_PER_MESSAGE) + FD_HEADROOM


def _sweep(
    p: Params, nofile: int, emit: Emitter
) -> tuple[dict[tuple[str, int], list[float]], dict[int, str]]:
    """Per (variant, count): the ns of each call. Per count not run for every variant: why."""
    results: dict[tuple[str, int], list[float]] = {}
    skipped: dict[int, str] = {}
    variants = [variant(layer, m) for layer in p.layers for m in p.mechanisms]
    current: dict[str, Any] = {"count": None, "pipes": None}

    def pipes_for(count: int) -> _Pipes:
        if current["count"] != count:
            if current["pipes"] is not None:
                current["pipes"].close()
            current["pipes"], current["count"] = None, count
            current["pipes"] = _Pipes(count, p.active)
        return current["pipes"]

    def measure(name: str, x: float) -> float | None:
        count = int(x)
        if fds_needed(count, p.active) > nofile:
            skipped[count] = (
                f"{count:,} pipes need about {fds_needed(count, p.active):,} descriptors; "
                f"RLIMIT_NOFILE is {nofile:,}"
            )
            return None
        pipes = pipes_for(count)
        layer, mechanism = name.split("_", 1)
        if mechanism == "select" and max(pipes.watched) >= FD_SETSIZE:
            skipped.setdefault(
                count, f"select not run: its descriptors reach {max(pipes.watched)} ≥ FD_SETSIZE"
            )
            return None
        if layer == "native":
            values = _native().wait_ns(
                mechanism, pipes.watched, pipes.ready_read, pipes.ready_write, p.calls, p.warmup
            )
        else:
            values = _python_wait(mechanism, pipes, p.calls, p.warmup)
        results[(name, count)] = values
        return round(Distribution.of(values).median, 1)

    try:
        with gc_paused():
            sweep(
                p.counts,
                variants,
                measure,
                emit,
                label=lambda x: f"{int(x):,} descriptors",
            )
    finally:
        if current["pipes"] is not None:
            current["pipes"].close()
    return results, skipped


def _native() -> Any:
    # Loaded on first use, so that the Python layer runs even without the built extension.
    from sysops.native import load

    return load("_iomux")


def _python_wait(mechanism: str, pipes: _Pipes, calls: int, warmup: int) -> list[float]:
    """The same cycle as _iomux.wait_ns, through Python's select module: the wait call timed
    alone with perf_counter_ns, its answer checked, the bytes written before and read after."""
    ready_read, ready_write = pipes.ready_read, pipes.ready_write
    with _python_waiter(mechanism, pipes.watched) as wait:
        perf_counter_ns, write, read = time.perf_counter_ns, os.write, os.read
        values: list[float] = []
        for cycle in range(warmup + calls):
            for fd in ready_write:
                write(fd, b"x")
            start_ns = perf_counter_ns()
            reported = wait()
            elapsed_ns = perf_counter_ns() - start_ns
            if reported != len(ready_read):
                raise RuntimeError(
                    f"{mechanism} reported {reported} ready descriptors in cycle {cycle}, "
                    f"expected {len(ready_read)}"
                )
            for fd in ready_read:
                read(fd, 1)
            if cycle >= warmup:
                values.append(elapsed_ns)
    return values


@contextmanager
def _python_waiter(mechanism: str, watched: list[int]) -> Iterator[Callable[[], int]]:
    """A function making one wait call (timeout 0) and returning how many were ready."""
    if mechanism == "select":
        pick = select.select
        yield lambda: len(pick(watched, [], [], 0)[0])
        return
    if mechanism == "poll":
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        yield lambda: len(poller.poll(0))
        return
    flags = select.EPOLLIN | (select.EPOLLET if mechanism == "epoll_et" else 0)
    epoll = select.epoll()
    try:
        for fd in watched:
            epoll.register(fd, flags)
        max_events = len(watched)
        yield lambda: len(epoll.poll(0, max_events))
    finally:
        epoll.close()


def _timer_overhead_ns() -> float:
    return Distribution.of(_native().clock_pair_ns(1_000)).median


def _sweep_rows(
    p: Params,
    results: Mapping[tuple[str, int], list[float]],
    skipped: Mapping[int, str],
    timer_ns: float | None,
) -> list[dict[str, Any]]:
    timing = (
        "Each call timed alone: in C between two vDSO clock reads "
        f"(≈{timer_ns:.0f} ns here, included), in Python with perf_counter_ns. "
        if timer_ns is not None
        else "Each call timed alone with perf_counter_ns. "
    )
    note_tail = (
        f"{timing}{p.calls:,} calls after {p.warmup:,} warm-up; timeout 0. Measured in the "
        "sandbox, every syscall also passes its seccomp filter (≈10–60 ns)."
    )
    rows: list[dict[str, Any]] = []
    for count in p.counts:
        for mechanism in p.mechanisms:
            group = [
                dist_row(
                    f"{MECHANISM_LABELS[mechanism]} ({LAYER_LABELS[layer]}), {count:,} descriptors",
                    results[(variant(layer, mechanism), count)],
                    "ns/call",
                    f"{count:,} pipes watched, {p.active} ready per call. {note_tail}",
                    layer=layer,
                    mechanism=mechanism,
                    descriptors=count,
                )
                for layer in p.layers
                if (variant(layer, mechanism), count) in results
            ]
            rows += with_ratios(group)
    for layer in p.layers:
        for mechanism in p.mechanisms:
            curve = [
                (count, Distribution.of(results[(variant(layer, mechanism), count)]).median)
                for count in p.counts
                if (variant(layer, mechanism), count) in results
            ]
            if len(curve) >= 2:
                fit = fit_line([x for x, _ in curve], [y for _, y in curve])
                rows.append(
                    row(
                        f"{MECHANISM_LABELS[mechanism]} ({LAYER_LABELS[layer]}): cost per "
                        "watched descriptor",
                        round(fit.slope, 2),
                        "ns/descriptor",
                        "least-squares slope of the median against N "
                        f"({curve[0][0]:,}..{curve[-1][0]:,}); " + _slope_meaning(mechanism),
                        layer=layer,
                        mechanism=mechanism,
                    )
                )
    if "select" in p.mechanisms:
        ran = [c for c in p.counts if any((variant(lr, "select"), c) in results for lr in p.layers)]
        refused = [c for c, reason in skipped.items() if reason.startswith("select")]
        rows.append(
            row(
                "select: the FD_SETSIZE cliff",
                FD_SETSIZE,
                "descriptors",
                (f"select ran up to {max(ran):,} descriptors" if ran else "select never ran")
                + (
                    "; not run at "
                    + ", ".join(f"{c:,}" for c in refused)
                    + ": their descriptors reach past 1023, and no descriptor ≥ 1024 fits in "
                    "an fd_set"
                    if refused
                    else ""
                ),
            )
        )
    for count, reason in skipped.items():
        if not reason.startswith("select"):
            rows.append(row(f"{count:,} descriptors", "not run", "", reason))
    return rows


def _slope_meaning(mechanism: str) -> str:
    if mechanism in ("select", "poll"):
        return "the kernel looks at every watched descriptor on every call: O(N)."
    return (
        "epoll_wait looks only at its ready list, filled by the descriptors' wake-ups: "
        "about flat in N."
    )
