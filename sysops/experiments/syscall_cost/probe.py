"""Syscall cost, the layer ladder: one syscall timed from Python, ctypes, Go, C and the vDSO.

Sandbox side: standard library, ``sysops.native`` and the probe toolkit only. Each layer is a
function ``measure(iterations) -> elapsed_ns`` around a tight loop; the toolkit interleaves the
repetitions across layers (rep 0: python, ctypes, native; rep 1: …) so that drift — frequency, a
noisy neighbour — hits every layer alike, and discards the first ``warmup`` repetitions.

The Go layers are timed by the Go program (``sysops.native.golang``), a child of the worker kept
for the whole run: each of its repetitions is one request answered with the loop's elapsed ns,
so Go takes its turn in every repetition like the other layers.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from sysops.worker.emit import Emitter

if TYPE_CHECKING:
    from sysops.native.golang import GoServer
from sysops.worker.fingerprint import fingerprint
from sysops.worker.toolkit.faults import Fault, fault_of, fault_rows, layer_trials
from sysops.worker.toolkit.params import bounded_int, choice, subset
from sysops.worker.toolkit.rows import dist_row, with_ratios
from sysops.worker.toolkit.timing import interleaved

CALLS = ("getppid", "read", "write", "clock_gettime")
# The ladder, from the most wrapped to the least.
LAYERS = ("python", "ctypes", "cgo", "go_syscall", "go_raw", "native", "vdso")
GO_LAYERS = ("cgo", "go_syscall", "go_raw")
LAYER_LABELS = {
    "python": "Python os",
    "ctypes": "ctypes → libc",
    "cgo": "Go → cgo → libc",
    "go_syscall": "Go syscall.Syscall (entersyscall/exitsyscall)",
    "go_raw": "Go syscall.RawSyscall (what syscall.Getppid does)",
    "native": "native C loop (syscall(2))",
    "vdso": "vDSO (libc clock_gettime from C)",
}
# Defensive bounds, wider than the web form's: a probe must never run unbounded.
ITERATIONS_MAX = 10_000_000
REPETITIONS_MAX = 1_000
WARMUP_MAX = 100
WARMUP_DEFAULT = 3
# The vDSO serves clock_gettime in user space only when it can read these clocks there.
VDSO_CLOCKSOURCES = ("tsc", "kvm-clock", "arch_sys_counter", "hyperv_clocksource_tsc_page")

Measure = Callable[[int], int]
# The file each transfer call uses (and a fault pass fails on): (path, open flags).
DEVICES = {"read": ("/dev/zero", os.O_RDONLY), "write": ("/dev/null", os.O_WRONLY)}
# A fault injected by strace (the run's fault pass): into these calls, seen from these layers.
FAULT_CALLS = ("read", "write")
FAULT_LAYERS = ("python", "ctypes", "native")
FAULT_HOW = {
    "python": "os raised OSError with the errno, as Python does for every failed call.",
    "ctypes": "libc returned -1 and set errno; the probe read it with ctypes.get_errno().",
    "native": "the C loop's syscall(2) returned -1 with errno set; the extension raised "
    "OSError from it.",
}


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    call, layers, iterations, repetitions, warmup = _checked(params)
    fault = fault_of(params, FAULT_CALLS)
    if fault is not None:
        _fault_pass(call, [layer for layer in layers if layer in FAULT_LAYERS], fault, emit)
        return
    if "vdso" in layers and call != "clock_gettime":
        emit.log(f"the vdso layer applies only to clock_gettime; skipped for {call}")
        layers.remove("vdso")
    if not layers:
        raise ValueError(f"no layer left to measure for {call}")

    with ExitStack() as stack:
        fd = stack.enter_context(_open_fd(call))
        go = None
        if any(layer in GO_LAYERS for layer in layers):
            # Imported here so that the other layers run without the Go program built.
            from sysops.native.golang import GoServer

            go = stack.enter_context(GoServer(pass_fds=(fd,) if fd >= 0 else ()))
        measures = {layer: _measure(layer, call, fd, go) for layer in layers}
        # Calling each layer once checks that it works before any timing is shown.
        for measure in measures.values():
            measure(1)
        emit.log(
            f"{call}: {iterations:,} calls per repetition, {warmup} warm-up + {repetitions} "
            f"measured repetitions, layers {', '.join(layers)}"
        )
        per_call_ns = interleaved(
            {layer: _per_call(measure, iterations) for layer, measure in measures.items()},
            repetitions,
            warmup,
            emit,
        )

    emit.result(_rows(call, layers, per_call_ns, _go_facts() if go else ""))


def _fault_pass(call: str, layers: list[str], fault: Fault, emit: Emitter) -> None:
    """Each layer makes a few calls under the injected fault, in a child of its own."""
    if fault.syscall != call or not layers:
        raise ValueError(
            f"a fault into {fault.syscall} needs call={fault.syscall} and a C, "
            "ctypes or Python layer"
        )

    def layer_call(layer: str) -> Callable[[], Callable[[], object]]:
        def make() -> Callable[[], object]:
            # Opened in the trial's child, which keeps none of the parent's descriptors (and
            # closed when it exits).
            measure = _measure(layer, call, _open_device(call), None)
            return lambda: measure(1)

        return make

    emit.log(f"{fault.describe()}: each layer makes {fault.when + 2} calls in a child of its own")
    trials = layer_trials({layer: layer_call(layer) for layer in layers}, fault)
    emit.result(fault_rows(fault, trials, LAYER_LABELS, FAULT_HOW))


def _checked(params: Mapping[str, Any]) -> tuple[str, list[str], int, int, int]:
    return (
        choice(params, "call", CALLS),
        subset(params, "layers", LAYERS),  # canonical order, no repeats
        bounded_int(params, "iterations", 1, ITERATIONS_MAX),
        bounded_int(params, "repetitions", 1, REPETITIONS_MAX),
        bounded_int(params, "warmup", 0, WARMUP_MAX, WARMUP_DEFAULT),
    )


@contextmanager
def _open_fd(call: str) -> Iterator[int]:
    """/dev/zero to read from, /dev/null to write to: the cheapest files there are, so the
    figure is the syscall path rather than a file system."""
    if call not in DEVICES:
        yield -1
        return
    fd = _open_device(call)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_device(call: str) -> int:
    path, flags = DEVICES[call]
    return os.open(path, flags | os.O_CLOEXEC)


def _per_call(measure: Measure, iterations: int) -> Callable[[], float]:
    return lambda: measure(iterations) / iterations


def _measure(layer: str, call: str, fd: int, go: GoServer | None) -> Measure:
    if layer == "python":
        return _python_measure(call, fd)
    if layer == "ctypes":
        return _ctypes_measure(call, fd)
    if layer in GO_LAYERS:
        assert go is not None
        return lambda iterations: go.loop_ns(layer, call, iterations, fd)
    # Imported here so that the Python and ctypes layers run even without the built extension.
    from sysops.native import loop_ns

    native_call = "clock_gettime_vdso" if layer == "vdso" else call
    return lambda iterations: loop_ns(native_call, iterations, fd)


def _python_measure(call: str, fd: int) -> Measure:
    # Each loop binds its function to a local name, so the loop costs one call per iteration
    # and no attribute or global lookups.
    perf_counter_ns = time.perf_counter_ns
    if call == "getppid":

        def measure(iterations: int) -> int:
            getppid = os.getppid
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                getppid()
            return perf_counter_ns() - start_ns

    elif call == "read":

        def measure(iterations: int) -> int:
            read = os.read
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                read(fd, 1)
            return perf_counter_ns() - start_ns

    elif call == "write":

        def measure(iterations: int) -> int:
            write, byte = os.write, b"x"
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                write(fd, byte)
            return perf_counter_ns() - start_ns

    else:

        def measure(iterations: int) -> int:
            clock_gettime_ns, clock = time.clock_gettime_ns, time.CLOCK_MONOTONIC
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                clock_gettime_ns(clock)
            return perf_counter_ns() - start_ns

    return measure


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _ctypes_measure(call: str, fd: int) -> Measure:
    libc = ctypes.CDLL(None, use_errno=True)
    perf_counter_ns = time.perf_counter_ns
    # One loop per call with the arguments prepared up front, as in the Python layer: building
    # a buffer or a byref per call would be timed as part of the layer.
    if call == "getppid":
        getppid = libc.getppid
        getppid.argtypes, getppid.restype = (), ctypes.c_int

        def loop(iterations: int) -> tuple[int, int]:
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                result = getppid()
            return perf_counter_ns() - start_ns, result

    elif call in ("read", "write"):
        transfer = getattr(libc, call)
        transfer.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)
        transfer.restype = ctypes.c_ssize_t
        buffer = ctypes.create_string_buffer(b"x", 1)

        def loop(iterations: int) -> tuple[int, int]:
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                result = transfer(fd, buffer, 1)
            return perf_counter_ns() - start_ns, result

    else:
        clock_gettime = libc.clock_gettime
        clock_gettime.argtypes = (ctypes.c_int, ctypes.POINTER(_Timespec))
        clock_gettime.restype = ctypes.c_int
        clock, timespec_ref = time.CLOCK_MONOTONIC, ctypes.byref(_Timespec())

        def loop(iterations: int) -> tuple[int, int]:
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                result = clock_gettime(clock, timespec_ref)
            return perf_counter_ns() - start_ns, result

    def measure(iterations: int) -> int:
        elapsed_ns, last_result = loop(iterations)
        # ctypes reports failure only as -1 and errno. Checking the last call keeps the loop
        # bare; these calls on these files do not fail intermittently.
        if last_result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{call} via ctypes: {os.strerror(err)}")
        return elapsed_ns

    return measure


def _go_facts() -> str:
    from sysops.native.golang import go_version

    return f" Built with {go_version() or 'an unknown Go release'}; run with GOMAXPROCS=1."


def _rows(
    call: str, layers: list[str], per_call_ns: Mapping[str, list[float]], go_facts: str
) -> list[dict]:
    clocksource = fingerprint()["clocksource"]
    rows = [
        dist_row(
            f"{call} via {LAYER_LABELS[layer]}",
            per_call_ns[layer],
            "ns/call",
            _note(call, layer, clocksource) + (go_facts if layer in GO_LAYERS else ""),
            layer=layer,
        )
        for layer in layers
    ]
    return with_ratios(rows)


def _note(call: str, layer: str, clocksource: str | None) -> str:
    if layer in GO_LAYERS:
        return _go_note(call, layer)
    if call == "clock_gettime":
        vdso = _vdso_note(clocksource)
        return {
            "python": "time.clock_gettime_ns(CLOCK_MONOTONIC) in a Python loop; it calls libc's "
            f"clock_gettime, which goes through the vDSO. {vdso}",
            "ctypes": "libc clock_gettime(CLOCK_MONOTONIC) through ctypes: libc takes its vDSO "
            f"path, so this is the ctypes call overhead plus a vDSO clock read. {vdso}",
            "native": "syscall(SYS_clock_gettime) in a C loop, GIL released: forced into the "
            "kernel every time — what clock_gettime would cost without the vDSO.",
            "vdso": f"libc clock_gettime(CLOCK_MONOTONIC) in a C loop. {vdso}",
        }[layer]
    target = {
        "getppid": "getppid()",
        "read": "read of 1 byte from /dev/zero",
        "write": "write of 1 byte to /dev/null",
    }[call]
    return {
        "python": f"{target} from a Python for-loop (os module): interpreter dispatch, argument "
        "and result conversion, the loop itself, and the syscall.",
        "ctypes": f"{target} through ctypes into libc: the foreign-call machinery (argument "
        "conversion, libffi) dominates; libc then makes the syscall.",
        "native": f"{target} as syscall(2) in a C loop, GIL released: the kernel entry and exit "
        "under this kernel's mitigations, with almost nothing else.",
    }[layer]


def _go_note(call: str, layer: str) -> str:
    target = {
        "getppid": "getppid",
        "read": "a 1-byte read from /dev/zero",
        "write": "a 1-byte write to /dev/null",
        "clock_gettime": "clock_gettime(CLOCK_MONOTONIC) forced into the kernel as a syscall",
    }[call]
    return {
        "cgo": f"{target} in a Go loop, each call crossing into C through cgo to libc: the "
        "runtime's entersyscall/exitsyscall plus the switch to the system stack, on top of the "
        "call itself.",
        "go_syscall": f"{target} via syscall.Syscall in a Go loop: the runtime's entersyscall "
        "and exitsyscall around every call, which let the scheduler hand this thread's P to "
        "another thread if the call blocks.",
        "go_raw": f"{target} via syscall.RawSyscall in a Go loop: the bare kernel entry, the "
        "scheduler not told. Go's own syscall.Getppid is generated as a raw call like this one, "
        "since getppid cannot block.",
    }[layer]


def _vdso_note(clocksource: str | None) -> str:
    if clocksource is None:
        return (
            "Through the vDSO, clock_gettime reads the clock in user space and never enters the "
            "kernel — if the clocksource allows it (tsc, kvm-clock; not hpet or acpi_pm, nor xen "
            "in some configurations); the clocksource could not be read here."
        )
    if clocksource in VDSO_CLOCKSOURCES:
        return (
            "Through the vDSO, clock_gettime reads the clock in user space and never enters the "
            f"kernel: the clocksource here is {clocksource}, which the vDSO can read."
        )
    return (
        f"The clocksource here is {clocksource}, which the vDSO cannot read in user space (it "
        "can with tsc or kvm-clock): libc falls back to a real syscall, so the vDSO path costs "
        "about as much as the forced syscall."
    )
