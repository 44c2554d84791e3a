from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm

# A RawSyscall read on a pipe is not offered: it deadlocks the program (see the probe).
VARIANTS = [
    ("syscall_read", "read(2) on a pipe via syscall.Syscall"),
    ("syscall_sleep", "nanosleep(2) via syscall.Syscall"),
    ("raw_sleep_nopreempt", "nanosleep(2) via syscall.RawSyscall, asyncpreemptoff=1"),
    ("raw_sleep_preempt", "nanosleep(2) via syscall.RawSyscall, async preemption on"),
    ("cgo_sleep", "nanosleep(3) in C through cgo"),
]


class GoSchedulerForm(ExperimentForm):
    variants = forms.MultipleChoiceField(
        choices=VARIANTS,
        initial=["syscall_sleep", "raw_sleep_nopreempt", "raw_sleep_preempt", "cgo_sleep"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Each runs the Go program once, with GOMAXPROCS=1. A RawSyscall read on a "
        "pipe is not offered: it would deadlock the program.",
    )
    block_ms = forms.IntegerField(
        label="Block (ms)",
        min_value=20,
        max_value=2_000,
        initial=200,
        help_text="How long the call sleeps, or after how long the pipe is filled.",
    )
    lead_ms = forms.IntegerField(
        label="Lead-in and tail (ms)",
        min_value=10,
        max_value=500,
        initial=50,
        help_text="Counting alone before the block and after it.",
    )


def _variant_s(params: Mapping[str, Any]) -> float:
    """A generous bound on one variant's seconds: start-up, lead-in, a block stretched up to
    three times by preemption, tail."""
    return 1.0 + (2 * int(params.get("lead_ms") or 0) + 3 * int(params.get("block_ms") or 0)) / 1e3


def charts(params: Mapping[str, Any]) -> list[Chart]:
    chosen = params.get("variants") or [k for k, _ in VARIANTS]
    block_ms = float(params.get("block_ms") or 200)
    return [
        Chart(
            id="counter",
            title="The counting goroutine's progress while the other blocks",
            x_label="ms since the blocking call began",
            y_label="count",
            series=tuple(chosen),
            labels={key: f"{name} (count)" for key, name in VARIANTS},
            x_marks=((0.0, "call enters the kernel"), (block_ms, "call due back")),
        )
    ]


EXPERIMENT = Experiment(
    slug="go-scheduler",
    title="Go's scheduler and system calls: what entersyscall buys",
    explanation=(
        "Go runs goroutines on OS threads (Ms), each needing a processor (P) to run Go code; "
        "GOMAXPROCS=1 leaves one P. Here one goroutine blocks in a system call while another "
        "counts in a loop. Guides usually say that a goroutine entering a blocking call hands "
        "its P to another thread at once, so the others keep running. What actually happens: "
        "syscall.Syscall (and every cgo call) marks the P as 'in a syscall' "
        "(entersyscall), and the runtime's monitor thread, sysmon, retakes such a P once it "
        "has been there for a tick — sysmon sleeps 20 µs when busy, up to 10 ms when idle — "
        "and hands it to another thread, cloning a new one when none is idle (the program "
        "first parks goroutines locked to their threads until the runtime has to clone one, so "
        "that no idle thread is left from start-up and the clone shows). So the counter "
        "resumes after up to about 10 ms, not at once. syscall.RawSyscall tells the runtime "
        "nothing: the P stays with the blocked thread and the counter stops for the whole call "
        "(with GODEBUG=asyncpreemptoff=1). With asynchronous preemption on, sysmon sees a "
        "goroutine 'running' for over 10 ms and signals its thread (SIGURG): the sleep returns "
        "EINTR, the goroutine is preempted at its next function call, the counter gets the P, "
        "and the sleep, resumed for the time left, ends far later than asked. The chart is the "
        "counter's own record of its progress (it notes the time every few thousand counts, "
        "so a flat stretch is a time it was not running); the table gives how long it waited, "
        "its pace during the block and the OS threads before and during (/proc/self/task)."
    ),
    syscalls=("read", "nanosleep", "clone", "clone3", "futex", "tgkill"),
    look_for=(
        "The Syscall and cgo curves keep rising through the block after a pause of up to about "
        "10 ms (sysmon's retake), with one more OS thread during it when the runtime had no "
        "idle one; the RawSyscall curve flat for the whole block; with preemption on, a "
        "staircase of EINTRs about 10 ms apart and a sleep that lasts far longer than asked. "
        "In the sampled trace: sysmon's clone of a new M just after the blocking call began "
        "(glibc tries clone3 first; the sandbox's seccomp filter answers ENOSYS and it falls "
        "back to clone), the futex wake-ups between threads, the tgkill(…, SIGURG) of "
        "preemption."
    ),
    form_class=GoSchedulerForm,
    probe="sysops.experiments.go_scheduler.probe",
    charts=charts,
    wall_s=lambda params: 30.0 + len(params.get("variants") or VARIANTS) * _variant_s(params),
    # The counter spins the whole time (and with preemption on, the sleep lasts up to about
    # three times longer than asked): CPU time, not just wall time, grows with the run.
    limits=lambda params: {
        "cpu_s": int(30 + len(params.get("variants") or VARIANTS) * _variant_s(params))
    },
    sampled_params=lambda params: {
        **params,
        "variants": list(params.get("variants") or ["syscall_sleep"])[:2],
        "block_ms": min(int(params.get("block_ms") or 50), 50),
        "lead_ms": min(int(params.get("lead_ms") or 20), 20),
    },
    man_sections={"nanosleep": 2},
)
