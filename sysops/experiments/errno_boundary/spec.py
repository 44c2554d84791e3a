from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.errno_boundary import probe
from sysops.experiments.fields import warmup_field

CASES = [
    (
        case.id,
        f"{case.label}: " + ({0: "resumes", 4: "EINTR"}.get(case.expected) or case.id.upper()),
    )
    for case in probe.CASES
]
LAYERS = [(layer, label) for layer, label in probe.LAYER_LABELS.items()]
# The slowest layer refuses in about 3–6 µs here (Python raising, execve's path walk): 20M calls
# stay within a couple of minutes.
SLOWEST_CALL_S = 6e-6
WALL_BASE_S = 30.0


class ErrnoBoundaryForm(ExperimentForm):
    cases = forms.MultipleChoiceField(
        choices=CASES,
        initial=[case.id for case in probe.CASES],
        widget=forms.CheckboxSelectMultiple,
    )
    layers = forms.MultipleChoiceField(
        choices=LAYERS, initial=list(probe.LAYERS), widget=forms.CheckboxSelectMultiple
    )
    iterations = forms.IntegerField(
        min_value=1,
        max_value=probe.ITERATIONS_MAX,
        initial=1_000,
        help_text="Refused calls per repetition (the interrupted reads are one call each).",
    )
    repetitions = forms.IntegerField(min_value=1, max_value=probe.REPETITIONS_MAX, initial=20)
    warmup = warmup_field(max_value=probe.WARMUP_MAX, initial=2)
    interrupt_ms = forms.IntegerField(
        label="Interrupt after (ms)",
        min_value=1,
        max_value=probe.INTERRUPT_MS_MAX,
        initial=10,
        help_text="setitimer's delay before SIGALRM interrupts the blocking read.",
    )
    interruptions = forms.IntegerField(
        min_value=1,
        max_value=probe.INTERRUPTIONS_MAX,
        initial=3,
        help_text="Interrupted reads per layer (each takes the delay above).",
    )

    fault_paths = probe.FAULT_PATHS

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        cases, layers = data.get("cases") or [], data.get("layers") or []
        numbers = [data.get(k) for k in ("iterations", "repetitions", "warmup")]
        if not cases or not layers or None in numbers:
            return data
        total = total_calls(data)
        if total > probe.MAX_TOTAL_CALLS:
            self.add_error(
                "iterations",
                f"That is {total:,} refused calls; keep iterations × (repetitions + warm-up) × "
                f"calls × layers at or below {probe.MAX_TOTAL_CALLS:,}.",
            )
        self.refuse_full_trace_over_cap(data, total)
        return data


def _fast_cases(params: Mapping[str, Any]) -> list[str]:
    return [c for c in params.get("cases") or [] if c not in probe.INTERRUPTED]


def total_calls(params: Mapping[str, Any]) -> int:
    reps = int(params["repetitions"]) + int(params.get("warmup", 0))
    return int(params["iterations"]) * reps * len(_fast_cases(params)) * len(params["layers"])


def wall_s(params: Mapping[str, Any]) -> float:
    interrupted = len([c for c in params.get("cases") or [] if c in probe.INTERRUPTED])
    waits_s = (
        interrupted
        * len(params["layers"])
        * int(params.get("interruptions", 3))
        * int(params.get("interrupt_ms", 10))
        / 1e3
    )
    return WALL_BASE_S + total_calls(params) * SLOWEST_CALL_S + 2 * waits_s


def charts(params: Mapping[str, Any]) -> list[Chart]:
    layers = params.get("layers") or list(probe.LAYERS)
    cases = _fast_cases(params)
    series = [f"{case}-{layer}" for case in cases for layer in layers]
    return [
        Chart(
            id="refusal",
            title="Time of one refused call, each repetition",
            x_label="repetition",
            y_label="ns / call",
            series=tuple(series),
            labels={
                f"{case}-{layer}": f"{probe.CASE_BY_ID[case].label} via "
                f"{probe.LAYER_LABELS[layer]} (ns/call)"
                for case in cases
                for layer in layers
            },
            points=True,
            y_log=True,
        )
    ]


EXPERIMENT = Experiment(
    slug="errno-boundary",
    timing=False,  # its results are not timings: it may run beside others
    title="errno: the user/kernel safety boundary",
    explanation=(
        "The kernel never trusts what a process hands it. A pointer is checked as it is used: "
        "when a copy from user memory faults, the kernel's exception table turns the fault into "
        "EFAULT and the process carries on (touching the same address itself would be a "
        "SIGSEGV). A descriptor, a flag, a permission are checked likewise, and every refusal is "
        "an error number. Each call here is refused on purpose and made at three layers: the "
        "bare syscall instruction from C, where the kernel's whole answer is the return value "
        "(-errno); libc's wrapper, which returns -1 and sets the thread's errno; and Python's os "
        "module, which raises the OSError subclass for that errno. A blocking read interrupted "
        "by SIGALRM (setitimer) shows EINTR without SA_RESTART and the read resuming with it; "
        "Python hides EINTR altogether (PEP 475). Each refused call is timed: a refusal still "
        "costs a kernel entry."
    ),
    syscalls=(
        "write",
        "read",
        "pipe2",
        "execve",
        "setpgid",
        "setitimer",
        "rt_sigaction",
        "mmap",
    ),
    look_for=(
        "The same errno at every layer, in three shapes: -14 from the instruction, -1 and "
        "errno 14 from libc, OSError from Python (PermissionError for EACCES and EPERM, "
        "BlockingIOError for EAGAIN). EFAULT costing more than EBADF or EINVAL: the kernel really "
        "tried the copy and took a fault first. The Python layer's price for building the "
        "exception. The interrupted read: EINTR in C without SA_RESTART, the byte with it, and "
        "Python never raising. The worker still alive at the end. In the trace pane: the same "
        "calls failing, with the errno explanations."
    ),
    form_class=ErrnoBoundaryForm,
    probe="sysops.experiments.errno_boundary.probe",
    charts=charts,
    wall_s=wall_s,
    limits=lambda params: {"cpu_s": max(30, int(wall_s(params)))},
    # A handful of each call and one interrupted read per layer: every refusal in the trace.
    sampled_params=lambda params: {
        **params,
        "iterations": min(int(params["iterations"]), 3),
        "repetitions": 1,
        "warmup": 0,
        "interruptions": 1,
    },
)
