from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.fields import warmup_field
from sysops.experiments.syscall_cost import probe

CALLS = [
    ("getppid", "getppid()"),
    ("read", "read 1 byte from /dev/zero"),
    ("write", "write 1 byte to /dev/null"),
    ("clock_gettime", "clock_gettime(CLOCK_MONOTONIC)"),
]
LAYERS = [
    ("python", "Python os"),
    ("ctypes", "ctypes → libc"),
    ("cgo", "Go → cgo → libc"),
    ("go_syscall", "Go syscall.Syscall (with entersyscall)"),
    ("go_raw", "Go syscall.RawSyscall (raw, like syscall.Getppid)"),
    ("native", "native C loop (syscall(2))"),
    ("vdso", "vDSO (libc clock_gettime from C)"),
]
# Bounds a run: the slowest layer (Python, ~0.1–1 µs a call) stays well inside the wall limit.
MAX_TOTAL_CALLS = 200_000_000


class SyscallCostForm(ExperimentForm):
    call = forms.ChoiceField(choices=CALLS, initial="getppid")
    layers = forms.MultipleChoiceField(
        choices=LAYERS,
        initial=["python", "ctypes", "native"],
        widget=forms.CheckboxSelectMultiple,
        help_text="vDSO applies to clock_gettime only.",
    )
    iterations = forms.IntegerField(
        min_value=1_000, max_value=1_000_000, initial=100_000, help_text="Calls per repetition."
    )
    repetitions = forms.IntegerField(
        min_value=5, max_value=500, initial=30, help_text="Measured repetitions per layer."
    )
    warmup = warmup_field(max_value=20, initial=3)
    # A fault pass fails a call on the probe's own file for it.
    fault_paths = {call: probe.DEVICES[call][0] for call in probe.FAULT_CALLS}

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("inject_syscall") and data["inject_syscall"] != data.get("call"):
            self.add_error("inject_syscall", "Inject into the call being measured.")
        layers = data.get("layers") or []
        if "vdso" in layers and data.get("call") not in (None, "clock_gettime"):
            self.add_error("layers", "The vDSO layer applies only to clock_gettime.")
        iterations, reps, warmup = (data.get(k) for k in ("iterations", "repetitions", "warmup"))
        if layers and None not in (iterations, reps, warmup):
            total = iterations * (reps + warmup) * len(layers)
            if total > MAX_TOTAL_CALLS:
                self.add_error(
                    "iterations",
                    f"That is {total:,} calls in all; keep iterations × (repetitions + warm-up)"
                    f" × layers at or below {MAX_TOTAL_CALLS:,}.",
                )
            self.refuse_full_trace_over_cap(data, total)
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    return [
        Chart(
            id="cost",
            title="ns per call, each repetition",
            x_label="repetition",
            y_label="ns / call",
            series=tuple(params.get("layers") or [k for k, _ in LAYERS]),
            labels={key: f"{name} (ns/call)" for key, name in LAYERS},
            points=True,
        )
    ]


EXPERIMENT = Experiment(
    slug="syscall-cost",
    title="Syscall cost: the layer ladder",
    explanation=(
        "The same system call made from up to seven layers: a Python os function, ctypes into "
        "libc, Go calling libc through cgo, Go's syscall.Syscall (which tells the runtime's "
        "scheduler it is entering the kernel: entersyscall/exitsyscall), Go's "
        "syscall.RawSyscall (which does not; Go's own syscall.Getppid is such a raw call), a "
        "tight C loop calling syscall(2), and — for clock_gettime — libc's vDSO path, which "
        "reads the clock from a page the kernel maps into every process and never enters the "
        "kernel. The Go layers run in a small Go program (standard library only) that the "
        "worker starts inside the sandbox. Each layer is timed over many calls per repetition, "
        "after warm-up, repetitions interleaved across layers so drift hits all alike; the "
        "table gives min / median / p99 / max in ns per call and the ratio to the native loop."
    ),
    syscalls=("getppid", "read", "write", "clock_gettime"),
    look_for=(
        "How much of a Python call is the interpreter rather than the kernel; the kernel entry "
        "cost on this host (mitigations make it dearer); clock_gettime through the vDSO costing "
        "a fraction of the forced syscall. In Go, what entersyscall/exitsyscall add (Syscall "
        "against RawSyscall: tens of ns) and what a cgo crossing adds on top; RawSyscall costing "
        "about what the C loop does. Figures measured inside the sandbox include its seccomp "
        "filter on every call."
    ),
    form_class=SyscallCostForm,
    probe="sysops.experiments.syscall_cost.probe",
    charts=charts,
    wall_s=lambda params: 180.0,
    # A few short repetitions show every call the layers make without a flood of lines.
    sampled_params=lambda params: {
        **params,
        "iterations": min(int(params["iterations"]), 200),
        "repetitions": 2,
        "warmup": 0,
    },
)
