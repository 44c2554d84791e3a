from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm

LAYERS = [
    ("wasm_to_host", "wasm → host (Python) call"),
    ("host_to_wasm", "host (Python) → wasm call"),
    ("wasm_to_wasm", "wasm → wasm call"),
    ("python", "Python → Python call"),
    ("native", "C → C call"),
    ("syscall", "getppid system call from C"),
]
COPIES = [
    ("wasm_write", "host → wasm memory"),
    ("wasm_read", "wasm memory → host"),
    ("kernel_read", "read(2) from /dev/zero"),
    ("python_copy", "copy inside Python"),
]
SIZES = [
    (64, "64 B"),
    (512, "512 B"),
    (4_096, "4 KiB"),
    (32_768, "32 KiB"),
    (262_144, "256 KiB"),
    (1_048_576, "1 MiB"),
]
# A call crossing into or out of Python costs microseconds (tens under load): this bounds the
# slowest layers' calls in a run to well inside the wall and CPU limits.
MAX_HOST_CALLS = 500_000


class WasmBoundaryForm(ExperimentForm):
    layers = forms.MultipleChoiceField(
        choices=LAYERS,
        initial=[key for key, _ in LAYERS],
        widget=forms.CheckboxSelectMultiple,
    )
    iterations = forms.IntegerField(
        min_value=100,
        max_value=50_000,
        initial=5_000,
        help_text="Calls per repetition (×100 for the wasm → wasm and C loops, ×10 for the"
        " syscall).",
    )
    repetitions = forms.IntegerField(
        min_value=3, max_value=100, initial=10, help_text="Measured repetitions per layer."
    )
    warmup = forms.IntegerField(
        label="Warm-up",
        min_value=0,
        max_value=10,
        initial=1,
        help_text="Repetitions run first and discarded.",
    )
    sizes = forms.TypedMultipleChoiceField(
        choices=SIZES,
        coerce=int,
        initial=[size for size, _ in SIZES],
        widget=forms.CheckboxSelectMultiple,
        label="Buffer sizes",
        help_text="Each copied across the boundary, both ways.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        iterations, reps, warmup = (data.get(k) for k in ("iterations", "repetitions", "warmup"))
        if None not in (iterations, reps, warmup):
            total = iterations * (reps + warmup)
            if total > MAX_HOST_CALLS:
                self.add_error(
                    "iterations",
                    f"That is {total:,} calls per layer; keep iterations × (repetitions + "
                    f"warm-up) at or below {MAX_HOST_CALLS:,}.",
                )
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    return [
        Chart(
            id="calls",
            title="ns per call, each repetition",
            x_label="repetition",
            y_label="ns / call",
            series=tuple(params.get("layers") or [k for k, _ in LAYERS]),
            labels={key: f"{name} (ns/call)" for key, name in LAYERS},
            y_log=True,
            points=True,
        ),
        Chart(
            id="copies",
            title="Copying a buffer across the boundary",
            x_label="buffer size (bytes)",
            y_label="ns / copy",
            series=tuple(k for k, _ in COPIES),
            labels={key: f"{name} (ns/copy)" for key, name in COPIES},
            x_log=True,
            y_log=True,
            x_marks=((65_536, "one wasm page"),),
        ),
    ]


EXPERIMENT = Experiment(
    slug="wasm-boundary",
    title="WebAssembly's boundary, beside a system call",
    explanation=(
        "A WebAssembly sandbox, like the kernel, is a boundary code crosses to ask for "
        "something. A tiny module, written in the text format and compiled by wasmtime at run "
        "time (the wasmtime Python package; Cranelift compiles it to machine code), calls a "
        "host function N times; Python calls into the module N times; the module calls one of "
        "its own functions N times. Beside them, the same call in a Python loop and in a C "
        "loop, and a getppid system call. Then a buffer of each size is copied into the "
        "module's linear memory and out of it, against read(2) from /dev/zero (the kernel "
        "copying across its boundary) and a plain copy in Python. The module's results are "
        "checked: the host function was called N times, the buffer arrived whole. wasmtime "
        "runs inside the worker's sandbox: its package (Python code and native library) is "
        "staged into the code directory, since the worker's interpreter sees no site-packages."
    ),
    syscalls=("getppid", "read", "mmap", "mprotect"),
    look_for=(
        "A call inside the module costing about what a C call does (nanoseconds: compiled code, "
        "no boundary); the crossing into or out of the module costing microseconds here, more "
        "than the system call — because the host is Python, and the crossing goes through "
        "wasmtime's C API and ctypes, not because wasm itself is slow; copies whose fixed "
        "cost dominates small buffers and whose throughput approaches memcpy's for large ones."
    ),
    form_class=WasmBoundaryForm,
    probe="sysops.experiments.wasm_boundary.probe",
    charts=charts,
    wall_s=lambda params: 240.0,
    # Every layer runs on the CPU the whole time (no waiting): the default 30 s is too little
    # for the largest runs allowed.
    limits=lambda params: {"cpu_s": 180},
    sampled_params=lambda params: {
        **params,
        "iterations": 100,
        "repetitions": 1,
        "warmup": 0,
        "sizes": list(params.get("sizes") or [64])[:2],
        "copies_max": 5,
    },
)
