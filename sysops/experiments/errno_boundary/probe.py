"""errno-boundary: calls the kernel refuses, seen at three layers, and what a refusal costs.

Sandbox side: standard library, ``sysops.native`` and the probe toolkit only. Each case is one
call the kernel answers with an error; it is made from the bare ``syscall`` instruction in C (the
kernel's own answer: -errno), from libc's wrapper in C (-1, errno set) and from Python's os module
(an OSError subclass). The fast cases are timed in loops, repetitions interleaved across cases and
layers; the interrupted reads take as long as their timer and are timed one by one.
"""

from __future__ import annotations

import ctypes
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit.faults import Fault, fault_of, fault_rows, layer_trials
from sysops.worker.toolkit.params import bounded_int, subset
from sysops.worker.toolkit.rows import dist_row, errno_fields, row
from sysops.worker.toolkit.stats import Distribution
from sysops.worker.toolkit.timing import interleaved

LAYERS = ("raw", "libc", "python")
LAYER_LABELS = {
    "raw": "syscall instruction (C)",
    "libc": "libc wrapper (C)",
    "python": "Python os",
}
# pipe2 accepts O_CLOEXEC, O_NONBLOCK, O_DIRECT and O_NOTIFICATION_PIPE; this bit is none of them.
BAD_PIPE2_FLAG = 0x40000000
# Above PID_MAX_LIMIT (2^22): no process group can have this id, so setpgid(0, it) is refused
# (EPERM: "no such group in this session") and never moves the caller.
NO_SUCH_PGID = (1 << 30) - 1
# Defensive bounds, the web form's own: a probe must never run unbounded.
ITERATIONS_MAX = 100_000
# A fault injected by strace (the run's fault pass) into a read that would succeed.
FAULT_PATHS = {"read": "/dev/zero"}
FAULT_HOW = {
    "raw": "the syscall instruction returned -errno in rax: the kernel's own answer, no errno "
    "variable involved.",
    "libc": "libc's wrapper turned it into -1 and set errno, as for a real failure.",
    "python": "os raised OSError with the errno, as for a real failure.",
}
REPETITIONS_MAX = 200
WARMUP_MAX = 10
INTERRUPT_MS_MAX = 200
INTERRUPTIONS_MAX = 20
MAX_TOTAL_CALLS = 20_000_000


@dataclass(frozen=True)
class Case:
    id: str
    call: str  # the C module's name for the call
    label: str
    expected: int  # the errno the kernel should answer (0: it should succeed)
    why: str


CASES = (
    Case(
        "efault",
        "write",
        "write(pipe, bad pointer, 1)",
        14,
        "The buffer is a PROT_NONE page. The kernel's copy from user memory faults, its "
        "exception table turns the fault into EFAULT, and the caller lives: the same access from "
        "user space would be a SIGSEGV.",
    ),
    Case(
        "ebadf",
        "read",
        "read(closed fd, buf, 1)",
        9,
        "The descriptor number was just closed: the fd table has nothing there.",
    ),
    Case(
        "einval",
        "pipe2",
        "pipe2(fds, unknown flag)",
        22,
        f"pipe2 checks its flags before anything else; {BAD_PIPE2_FLAG:#x} is not one of them.",
    ),
    Case(
        "eacces",
        "execve",
        "execve(file without x bits)",
        13,
        "A regular file with no execute bit at all: refused even to root, who may skip every other "
        "permission check.",
    ),
    Case(
        "eperm",
        "setpgid",
        f"setpgid(0, {NO_SUCH_PGID})",
        1,
        "There is no process group with that id in this session, so the caller may not join it: "
        "EPERM is 'not allowed', where EACCES is 'the permission bits say no'.",
    ),
    Case(
        "eagain",
        "read",
        "read(empty O_NONBLOCK pipe, buf, 1)",
        11,
        "Nothing to read, and the descriptor may not block: come back later (EWOULDBLOCK).",
    ),
    Case(
        "eintr",
        "read",
        "blocking read, SIGALRM handler without SA_RESTART",
        4,
        "setitimer sends SIGALRM while the read waits on an empty pipe; the handler runs, and "
        "without SA_RESTART the read returns EINTR (the byte the handler wrote stays in the pipe).",
    ),
    Case(
        "eintr_restart",
        "read",
        "blocking read, SIGALRM handler with SA_RESTART",
        0,
        "The same interruption with SA_RESTART: after the handler the kernel restarts the read, "
        "which returns the byte the handler wrote. Not refused at all.",
    ),
)
CASE_BY_ID = {case.id: case for case in CASES}
INTERRUPTED = ("eintr", "eintr_restart")


@dataclass
class Outcome:
    """What one layer saw the last time it made a case's call."""

    result: int | str
    errno: int
    raised: str | None = None  # the Python exception's class and message
    handler_runs: int | None = None


@dataclass(frozen=True)
class Config:
    cases: list[Case]
    layers: list[str]
    iterations: int
    repetitions: int
    warmup: int
    interrupt_us: int
    interruptions: int


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    config = _checked(params)
    from sysops.native import load  # here, so that a missing build fails the run readably

    native = load("_errno")
    fault = fault_of(params, tuple(FAULT_PATHS))
    if fault is not None:
        _fault_pass(native, config.layers, fault, emit)
        return
    outcomes: dict[tuple[str, str], Outcome] = {}
    timings: dict[tuple[str, str], list[float]] = {}
    with _fixtures(native) as fx:
        fast = [case for case in config.cases if case.id not in INTERRUPTED]
        if fast:
            measures = {
                f"{case.id}-{layer}": _measure(native, fx, case, layer, config.iterations, outcomes)
                for case in fast
                for layer in config.layers
            }
            emit.log(
                f"{len(fast)} refused calls × {len(config.layers)} layers: {config.iterations:,} "
                f"calls per repetition, {config.warmup} warm-up + {config.repetitions} measured"
            )
            per_call = interleaved(measures, config.repetitions, config.warmup, emit)
            for case in fast:
                for layer in config.layers:
                    timings[(case.id, layer)] = per_call[f"{case.id}-{layer}"]
        for case in config.cases:
            if case.id in INTERRUPTED:
                emit.phase(f"interrupted read: {case.label}")
                for layer in config.layers:
                    timings[(case.id, layer)], outcomes[(case.id, layer)] = _interrupted(
                        native, fx, case, layer, config
                    )
    emit.result(_rows(config, outcomes, timings))


def _fault_pass(native: Any, layers: list[str], fault: Fault, emit: Emitter) -> None:
    """A read that would succeed (one byte of /dev/zero), failed on purpose by strace: what
    each layer gets back, each in a child of its own."""

    def layer_call(layer: str) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            # Opened in the trial's child, which keeps none of the parent's descriptors.
            fd = os.open(FAULT_PATHS[fault.syscall], os.O_RDONLY | os.O_CLOEXEC)
            if layer == "python":
                return lambda: os.read(fd, 1)

            def native_read() -> object:
                done = native.refused("read", layer, 1, fd=fd)
                if done["errno"]:
                    # What C saw, carried up as an exception only to be reported.
                    raise OSError(done["errno"], f"{layer} read returned {done['result']}")
                return done["result"]

            return native_read

        return make

    emit.log(f"{fault.describe()}: each layer makes {fault.when + 2} reads of /dev/zero")
    trials = layer_trials({layer: layer_call(layer) for layer in layers}, fault)
    emit.result(fault_rows(fault, trials, LAYER_LABELS, FAULT_HOW))


def _checked(params: Mapping[str, Any]) -> Config:
    return Config(
        cases=[CASE_BY_ID[c] for c in subset(params, "cases", [case.id for case in CASES])],
        layers=subset(params, "layers", LAYERS),
        iterations=bounded_int(params, "iterations", 1, ITERATIONS_MAX),
        repetitions=bounded_int(params, "repetitions", 1, REPETITIONS_MAX),
        warmup=bounded_int(params, "warmup", 0, WARMUP_MAX, 2),
        interrupt_us=bounded_int(params, "interrupt_ms", 1, INTERRUPT_MS_MAX, 10) * 1000,
        interruptions=bounded_int(params, "interruptions", 1, INTERRUPTIONS_MAX, 3),
    )


@dataclass(frozen=True)
class Fixtures:
    bad_address: int
    bad_buffer: Any  # a ctypes array over the PROT_NONE page: a buffer Python never touches
    pipe_read: int
    pipe_write: int
    nonblocking_read: int
    closed_fd: int
    no_exec_path: str


@contextmanager
def _fixtures(native: Any) -> Iterator[Fixtures]:
    pipe_read, pipe_write = os.pipe2(os.O_CLOEXEC)
    nonblocking_read, nonblocking_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    closed_fd = os.dup(pipe_read)
    os.close(closed_fd)  # nothing opens a descriptor while the cases run: it stays closed
    fd, no_exec_path = tempfile.mkstemp(prefix="no-exec-")
    os.close(fd)
    os.chmod(no_exec_path, 0o644)
    bad_address = native.bad_address()
    try:
        yield Fixtures(
            bad_address=bad_address,
            bad_buffer=(ctypes.c_char * 1).from_address(bad_address),
            pipe_read=pipe_read,
            pipe_write=pipe_write,
            nonblocking_read=nonblocking_read,
            closed_fd=closed_fd,
            no_exec_path=no_exec_path,
        )
    finally:
        for fd in (pipe_read, pipe_write, nonblocking_read, nonblocking_write):
            os.close(fd)
        os.unlink(no_exec_path)


def _native_args(case: Case, fx: Fixtures) -> dict[str, Any]:
    return {
        "efault": {"fd": fx.pipe_write, "arg": fx.bad_address},
        "ebadf": {"fd": fx.closed_fd},
        "einval": {"arg": BAD_PIPE2_FLAG},
        "eacces": {"path": fx.no_exec_path},
        "eperm": {"arg": NO_SUCH_PGID},
        "eagain": {"fd": fx.nonblocking_read},
    }[case.id]


def _python_call(case: Case, fx: Fixtures) -> Callable[[], object]:
    if case.id == "efault":
        # os.write hands the ctypes array's address to write(2) without reading it itself.
        return lambda: os.write(fx.pipe_write, fx.bad_buffer)
    if case.id == "ebadf":
        return lambda: os.read(fx.closed_fd, 1)
    if case.id == "einval":

        def pipe2() -> object:
            for fd in os.pipe2(BAD_PIPE2_FLAG):  # only if it was not refused
                os.close(fd)
            return 0

        return pipe2
    if case.id == "eacces":
        return lambda: os.execv(fx.no_exec_path, [fx.no_exec_path])
    if case.id == "eperm":
        return lambda: os.setpgid(0, NO_SUCH_PGID)
    return lambda: os.read(fx.nonblocking_read, 1)


def _measure(
    native: Any,
    fx: Fixtures,
    case: Case,
    layer: str,
    iterations: int,
    outcomes: dict[tuple[str, str], Outcome],
) -> Callable[[], float]:
    """ns per call of one repetition; the last call's outcome is kept for the table."""
    if layer != "python":
        args = _native_args(case, fx)

        def native_measure() -> float:
            done = native.refused(case.call, layer, iterations, **args)
            outcomes[(case.id, layer)] = Outcome(done["result"], done["errno"])
            return done["elapsed_ns"] / done["calls"]

        return native_measure

    call = _python_call(case, fx)
    perf_counter_ns = time.perf_counter_ns

    def python_measure() -> float:
        refused: OSError | None = None
        calls = 0
        start_ns = perf_counter_ns()
        for calls in range(1, iterations + 1):  # noqa: B007 - the count is used below
            try:
                call()
            except OSError as exc:
                refused = exc
            else:
                refused = None
                break
        elapsed_ns = perf_counter_ns() - start_ns
        outcomes[(case.id, layer)] = _python_outcome(refused)
        return elapsed_ns / calls

    return python_measure


def _python_outcome(refused: OSError | None) -> Outcome:
    if refused is None:
        return Outcome("returned (not refused)", 0)
    return Outcome(
        "raised", refused.errno or 0, raised=f"{type(refused).__name__}: {refused.strerror}"
    )


def _interrupted(
    native: Any, fx: Fixtures, case: Case, layer: str, config: Config
) -> tuple[list[float], Outcome]:
    restart = case.id == "eintr_restart"
    times_ns: list[float] = []
    outcome = Outcome(0, 0)
    for _ in range(config.interruptions):
        if layer == "python":
            elapsed_ns, outcome = _python_interrupted_read(fx, restart, config.interrupt_us)
        else:
            done = native.interrupted_read(
                layer, fx.pipe_read, fx.pipe_write, restart, config.interrupt_us
            )
            elapsed_ns = done["elapsed_ns"]
            outcome = Outcome(done["result"], done["errno"], handler_runs=done["handler_runs"])
        times_ns.append(float(elapsed_ns))
    return times_ns, outcome


def _python_interrupted_read(fx: Fixtures, restart: bool, delay_us: int) -> tuple[int, Outcome]:
    """Python's own handler, with its wakeup fd pointed at the pipe being read: the C-level part
    of Python's handler writes the signal number there while the read waits. Without SA_RESTART
    the read fails with EINTR, Python runs the handler and retries (PEP 475) and the retry reads
    that byte; with SA_RESTART the kernel restarts the read and the handler runs after it."""
    runs: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: runs.append(signum))
    signal.siginterrupt(signal.SIGALRM, not restart)
    os.set_blocking(fx.pipe_write, False)  # a wakeup fd must not block the handler
    previous_wakeup = signal.set_wakeup_fd(fx.pipe_write, warn_on_full_buffer=False)
    raised: OSError | None = None
    data = b""
    try:
        start_ns = time.perf_counter_ns()
        signal.setitimer(signal.ITIMER_REAL, delay_us / 1e6)
        try:
            data = os.read(fx.pipe_read, 1)
        except OSError as exc:
            raised = exc
        elapsed_ns = time.perf_counter_ns() - start_ns
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.set_wakeup_fd(previous_wakeup)
        signal.signal(signal.SIGALRM, previous)
        os.set_blocking(fx.pipe_write, True)
    if raised is not None:
        return elapsed_ns, _python_outcome(raised)
    return elapsed_ns, Outcome(
        f"{len(data)} byte (no exception)", 0, raised=None, handler_runs=len(runs)
    )


def _rows(
    config: Config,
    outcomes: Mapping[tuple[str, str], Outcome],
    timings: Mapping[tuple[str, str], list[float]],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    table: list[dict[str, Any]] = []
    seccomp = (
        "Measured inside the sandbox, whose seccomp filter adds about 10–60 ns to every syscall."
    )
    for case in config.cases:
        raw_median = (
            Distribution.of(timings[(case.id, "raw")]).median if "raw" in config.layers else 0
        )
        for layer in config.layers:
            outcome = outcomes[(case.id, layer)]
            fields = errno_fields(outcome.errno)
            dist = Distribution.of(timings[(case.id, layer)])
            interrupted = case.id in INTERRUPTED
            unit = "µs/call" if interrupted else "ns/call"
            shown = dist.scaled(1e-3) if interrupted else dist
            # Python retries an interrupted call itself (PEP 475): no errno reaches its code.
            expected = 0 if layer == "python" and interrupted else case.expected
            as_expected = fields["errno"] == expected
            what = (
                f"returned {outcome.result}"
                if layer != "python"
                else (outcome.raised or str(outcome.result))
            )
            note = (
                f"{what}; errno {fields['name']} ({fields['errno']}): {fields['message']}. "
                + ("" if as_expected else f"Expected {_name(expected)}. ")
                + _layer_note(case, layer, outcome)
                + (
                    f" Each call waits for its {config.interrupt_us // 1000} ms timer."
                    if interrupted
                    else f" {config.iterations:,} calls per repetition, after {config.warmup} "
                    f"warm-up. {seccomp}"
                )
            )
            rows.append(
                dist_row(
                    f"{case.label} via {LAYER_LABELS[layer]}",
                    shown,
                    unit,
                    note,
                    layer=layer,
                    errno=fields["errno"],
                    errno_name=fields["name"],
                )
            )
            if raw_median:
                # Against the bare instruction: what each layer adds to the same refusal.
                rows[-1]["ratio_to_native"] = round(dist.median / raw_median, 3)
            table.append(
                {
                    "case": case.label,
                    "layer": LAYER_LABELS[layer],
                    "result": str(outcome.result),
                    "errno": fields["errno"],
                    "name": fields["name"],
                    "message": fields["message"],
                    "raised": outcome.raised or ("—" if layer != "python" else "nothing"),
                    "handler_runs": outcome.handler_runs,
                    "median": round(shown.median, 2),
                    "min": round(shown.min, 2),
                    "max": round(shown.max, 2),
                    "unit": unit,
                    "n": shown.n,
                    "as_expected": as_expected,
                }
            )
    rows.insert(
        0,
        row(
            "refused calls, side by side",
            sum(1 for entry in table if entry["errno"]),
            "refusals",
            "Every call at every layer: what it returned, the errno, what Python raised, and how "
            "long the refusal took (median, min–max).",
            detail={"panel": "errno_boundary", "rows": table},
        ),
    )
    rows.append(
        row(
            "worker after the refused calls",
            "alive",
            "",
            f"pid {os.getpid()} went on to report this table: a bad pointer handed to the kernel "
            "is an error code, not a crash.",
        )
    )
    return rows


def _name(number: int) -> str:
    return errno_fields(number)["name"]


def _layer_note(case: Case, layer: str, outcome: Outcome) -> str:
    handler = (
        f" The handler ran {outcome.handler_runs} time(s)."
        if outcome.handler_runs is not None
        else ""
    )
    if layer == "raw":
        return (
            "The syscall instruction from inline assembly: the kernel's answer is the return "
            f"value itself, -errno on failure; there is no errno variable. {case.why}{handler}"
        )
    if layer == "libc":
        return (
            "libc's wrapper turns the kernel's -errno into -1 and stores the number in the "
            f"thread's errno.{handler}"
        )
    if case.id == "eintr":
        return (
            "Python installs its handlers without SA_RESTART and, since PEP 475, retries a call "
            "that failed with EINTR after running the handler: Python code never sees "
            "InterruptedError unless the handler raises. The retry read the byte Python's "
            f"wakeup fd wrote.{handler}"
        )
    if case.id == "eintr_restart":
        return (
            "signal.siginterrupt(SIGALRM, False) sets SA_RESTART: the kernel restarted the read, "
            "which read the byte Python's wakeup fd wrote, and Python ran its handler only after "
            f"the read returned.{handler}"
        )
    return "Python turns -1/errno into OSError, picking the subclass for the errno."
