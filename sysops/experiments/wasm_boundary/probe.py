"""wasm-boundary: what crossing into and out of WebAssembly costs, beside a system call.

Sandbox side: standard library, ``sysops.native``, the probe toolkit and ``wasmtime`` (the
PyPI package: its Python code and its native library, staged whole into the code dir, which is
on the worker's PYTHONPATH; see sysops/sandbox/stage.py STAGED_PACKAGES). The module is built
from WebAssembly text at run time, so no toolchain is needed.

Layers, interleaved per repetition (``timing.interleaved``), each timed over a loop of calls:
wasm→host (the module calls an imported Python function), host→wasm (Python calls an exported
function), wasm→wasm (a call inside the module), the same call in a Python loop and in a C loop,
and a getppid system call from C. Then the copy sweep: a buffer of each size written into the
module's linear memory and read back out, against read(2) from /dev/zero (the kernel's copy
across its own boundary) and a plain copy inside Python.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit.params import bounded_int, subset
from sysops.worker.toolkit.rows import dist_row, row, with_ratios
from sysops.worker.toolkit.sweep import sweep
from sysops.worker.toolkit.timing import gc_paused, interleaved

LAYERS = ("wasm_to_host", "host_to_wasm", "wasm_to_wasm", "python", "native", "syscall")
LAYER_LABELS = {
    "wasm_to_host": "wasm → host (Python) call",
    "host_to_wasm": "host (Python) → wasm call",
    "wasm_to_wasm": "wasm → wasm call",
    "python": "Python → Python call",
    "native": "C → C call (native)",
    "syscall": "getppid system call from C",
}
COPIES = ("wasm_write", "wasm_read", "kernel_read", "python_copy")
COPY_LABELS = {
    "wasm_write": "host → wasm linear memory (Memory.write)",
    "wasm_read": "wasm linear memory → host (Memory.read)",
    "kernel_read": "kernel → process: read(2) from /dev/zero",
    "python_copy": "inside Python: bytearray slice copy",
}
SIZES_BYTES = (64, 512, 4_096, 32_768, 262_144, 1_048_576)
# Layers far cheaper than a crossing out of Python run this many times more calls per
# repetition, so that one repetition lasts long enough to time: a few ns a call in compiled
# code, a few hundred for the syscall.
CALLS_FACTOR = {"wasm_to_wasm": 100, "native": 100, "syscall": 10}
ITERATIONS_MAX = 100_000
REPETITIONS_MAX = 100
WARMUP_MAX = 10
COPY_BUDGET_BYTES = 64 << 20  # per size and variant: copies = budget / size, within bounds
COPIES_MIN, COPIES_MAX = 20, 20_000
# Linear memory: 17 pages of 64 KiB, room for the largest buffer; wasmtime's defaults reserve
# 4 GiB of address space per memory (plus guards), over the sandbox's address-space limit.
WASM_PAGE_BYTES = 65_536
MEMORY_PAGES = SIZES_BYTES[-1] // WASM_PAGE_BYTES + 1
MEMORY_RESERVATION_BYTES = 64 << 20
MEMORY_GUARD_BYTES = 64 << 10


def _calls_in_a_loop(export: str, callee: str) -> str:
    """A function ``export(n)`` that calls ``callee`` n times, passing the running value and
    getting it back plus one, and returns it (n when every call was made)."""
    return f"""
  (func (export "{export}") (param $n i32) (result i32)
    (local $i i32) (local $acc i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $acc (call {callee} (local.get $acc)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $acc))"""


WAT = f"""
(module
  (import "host" "tick" (func $tick (param i32) (result i32)))
  (memory (export "memory") {MEMORY_PAGES})
  (func $add_one (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
  ;; the host → wasm callee: as little as a function can do
  (func (export "add_one") (param i32) (result i32) (call $add_one (local.get 0)))
  ;; n calls out to the host, then the same loop calling a function inside the module
  {_calls_in_a_loop("call_host", "$tick")}
  {_calls_in_a_loop("call_wasm", "$add_one")}
  ;; the sum of len bytes at ptr: proves a buffer written from the host arrived whole
  (func (export "sum") (param $ptr i32) (param $len i32) (result i32)
    (local $end i32) (local $acc i32)
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $ptr) (local.get $end)))
      (local.set $acc (i32.add (local.get $acc) (i32.load8_u (local.get $ptr))))
      (local.set $ptr (i32.add (local.get $ptr) (i32.const 1)))
      (br $next)))
    (local.get $acc))
)
"""

Measure = Callable[[], float]


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    layers = subset(params, "layers", LAYERS)
    iterations = bounded_int(params, "iterations", 1, ITERATIONS_MAX)
    repetitions = bounded_int(params, "repetitions", 1, REPETITIONS_MAX)
    warmup = bounded_int(params, "warmup", 0, WARMUP_MAX, 1)
    sizes = subset(params, "sizes", SIZES_BYTES)
    # Not on the form: the sampled trace's short pass sets it, so that its trace is not
    # thousands of read(2) calls of the copy sweep.
    copies_max = bounded_int(params, "copies_max", 1, COPIES_MAX, COPIES_MAX)

    wasm = Wasm()
    emit.log(
        f"wasmtime {wasm.version}: module compiled from text in {wasm.compile_ms:.1f} ms; "
        f"{iterations:,} calls per repetition ("
        + ", ".join(f"{layer} ×{factor}" for layer, factor in CALLS_FACTOR.items())
        + f"), {warmup} warm-up + {repetitions} measured repetitions"
    )
    measures = {layer: _measure(layer, iterations, wasm) for layer in layers}
    for measure in measures.values():
        measure()  # each layer works (and checks its result) before any timing is shown
    per_call_ns = interleaved(measures, repetitions, warmup, emit)
    rows = with_ratios(
        [
            dist_row(
                LAYER_LABELS[layer],
                per_call_ns[layer],
                "ns/call",
                _note(layer, wasm.version),
                layer=layer,
            )
            for layer in layers
        ]
    )

    emit.phase("copy sweep")
    with gc_paused():
        curves = sweep(
            sizes,
            COPIES,
            lambda variant, size: _copy_ns(wasm, variant, int(size), copies_max),
            emit,
        )
    rows += [_copy_row(variant, curves[variant]) for variant in COPIES]
    rows.append(row("wasmtime", wasm.version, "", "host fact: the wasmtime Python package"))
    emit.result(rows)


class Wasm:
    """The module, compiled and instantiated, with its host function counting its calls."""

    def __init__(self) -> None:
        import wasmtime  # staged into the code dir: the worker's -S interpreter has no site

        self.version = importlib.metadata.version("wasmtime")
        config = wasmtime.Config()
        config.memory_reservation = MEMORY_RESERVATION_BYTES
        config.memory_guard_size = MEMORY_GUARD_BYTES
        self.store = wasmtime.Store(wasmtime.Engine(config))
        start_ns = time.perf_counter_ns()
        module = wasmtime.Module(self.store.engine, WAT)
        self.compile_ms = (time.perf_counter_ns() - start_ns) / 1e6
        self.host_calls = 0

        def tick(value: int) -> int:
            self.host_calls += 1
            return value + 1

        i32 = wasmtime.ValType.i32()
        host = wasmtime.Func(self.store, wasmtime.FuncType([i32], [i32]), tick)
        exports = wasmtime.Instance(self.store, module, [host]).exports(self.store)
        self.call_host = exports["call_host"]
        self.call_wasm = exports["call_wasm"]
        self.add_one = exports["add_one"]
        self.sum = exports["sum"]
        self.memory = exports["memory"]


def _measure(layer: str, iterations: int, wasm: Wasm) -> Measure:
    perf_counter_ns = time.perf_counter_ns
    store = wasm.store
    if layer == "wasm_to_host":

        def measure() -> float:
            wasm.host_calls = 0
            start_ns = perf_counter_ns()
            result = wasm.call_host(store, iterations)
            elapsed_ns = perf_counter_ns() - start_ns
            _check(layer, result, iterations)
            _check("host function calls", wasm.host_calls, iterations)
            return elapsed_ns / iterations

    elif layer == "host_to_wasm":

        def measure() -> float:
            add_one, value = wasm.add_one, 0
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                value = add_one(store, value)
            elapsed_ns = perf_counter_ns() - start_ns
            _check(layer, value, iterations)
            return elapsed_ns / iterations

    elif layer == "wasm_to_wasm":
        calls = iterations * CALLS_FACTOR[layer]

        def measure() -> float:
            start_ns = perf_counter_ns()
            result = wasm.call_wasm(store, calls)
            elapsed_ns = perf_counter_ns() - start_ns
            _check(layer, result, calls)
            return elapsed_ns / calls

    elif layer == "python":

        def add_one(value: int) -> int:
            return value + 1

        def measure() -> float:
            value = 0
            start_ns = perf_counter_ns()
            for _ in range(iterations):
                value = add_one(value)
            elapsed_ns = perf_counter_ns() - start_ns
            _check(layer, value, iterations)
            return elapsed_ns / iterations

    elif layer == "native":
        from sysops.native import load

        call_loop_ns = load("_boundary").call_loop_ns
        calls = iterations * CALLS_FACTOR[layer]

        def measure() -> float:
            elapsed_ns, result = call_loop_ns(calls)
            _check(layer, result, calls)
            return elapsed_ns / calls

    else:
        from sysops.native import loop_ns

        calls = iterations * CALLS_FACTOR[layer]

        def measure() -> float:
            return loop_ns("getppid", calls) / calls

    return measure


def _check(what: str, got: int, expected: int) -> None:
    # The loops return what they computed (one added per call): a short count means calls
    # were skipped, and the figure would be a lie.
    if got != expected:
        raise RuntimeError(f"{what}: expected {expected:,} calls, the result says {got:,}")


def _copy_ns(wasm: Wasm, variant: str, size: int, copies_max: int) -> float:
    """ns per copy of ``size`` bytes, over enough copies to time."""
    copies = min(copies_max, max(COPIES_MIN, COPY_BUDGET_BYTES // size))
    buffer = bytearray((i * 7 + 1) % 251 for i in range(size))
    perf_counter_ns, store, memory = time.perf_counter_ns, wasm.store, wasm.memory
    if variant == "wasm_write":
        start_ns = perf_counter_ns()
        for _ in range(copies):
            memory.write(store, buffer, 0)
        elapsed_ns = perf_counter_ns() - start_ns
        # The module sums what arrived: the bytes crossed whole.
        _check(f"sum of {size} bytes in linear memory", wasm.sum(store, 0, size), sum(buffer))
    elif variant == "wasm_read":
        start_ns = perf_counter_ns()
        for _ in range(copies):
            out = memory.read(store, 0, size)
        elapsed_ns = perf_counter_ns() - start_ns
        _check(f"length of {size} bytes read", len(out), size)
    elif variant == "kernel_read":
        fd = os.open("/dev/zero", os.O_RDONLY | os.O_CLOEXEC)
        try:
            start_ns = perf_counter_ns()
            for _ in range(copies):
                got = os.readv(fd, [buffer])
            elapsed_ns = perf_counter_ns() - start_ns
        finally:
            os.close(fd)
        _check(f"bytes read of {size}", got, size)
    else:
        target = bytearray(size)
        start_ns = perf_counter_ns()
        for _ in range(copies):
            target[:] = buffer
        elapsed_ns = perf_counter_ns() - start_ns
    return round(elapsed_ns / copies, 1)


def _copy_row(variant: str, curve: list[tuple[float, float]]) -> dict[str, Any]:
    """The crossing's fixed cost (a copy of the smallest size) and its throughput (the largest):
    a line fitted over sizes that span decades would be all slope."""
    (small_bytes, small_ns), (large_bytes, large_ns) = curve[0], curve[-1]
    note = f"ns per copy of {small_bytes:,.0f} bytes, about what the crossing costs by itself"
    if large_bytes > small_bytes:
        note += f"; {large_bytes / large_ns:.2f} bytes/ns (GB/s) at {large_bytes:,.0f} bytes"
    return row(
        f"copy {COPY_LABELS[variant]}, {small_bytes:,.0f} B",
        small_ns,
        "ns/copy",
        note + ".",
        layer=variant,
    )


def _note(layer: str, version: str) -> str:
    return {
        "wasm_to_host": f"The module (wasmtime {version}, Cranelift-compiled) calls an imported "
        "host function in a loop; the host is Python, reached through wasmtime's C API and "
        "ctypes: most of the cost is the Python side of the crossing. The host function counts "
        "its calls, and the count is checked.",
        "host_to_wasm": f"Python calls an exported function of the module (wasmtime {version}) "
        "in a loop: wasmtime-py's argument checks and conversion, the C API, entering the "
        "sandboxed code and back.",
        "wasm_to_wasm": "A call between two functions of the module, compiled to machine code: "
        "about what a C call costs, since nothing crosses a boundary.",
        "python": "The same loop in Python: an int → int Python function called from a for-loop.",
        "native": "The same loop in C: an int → int function called through a pointer, so it is "
        "not inlined (sysops/native/_boundary.c).",
        "syscall": "getppid(2) via syscall(2) in a C loop: the kernel's boundary on this host, "
        "for scale; measured inside the sandbox, it includes its seccomp filter (~10–60 ns).",
    }[layer]
