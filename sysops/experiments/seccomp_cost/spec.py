from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.fields import IntListField

SHAPES = [
    ("linear", "linear chain of compares (deny-list)"),
    ("tree", "binary search tree of syscall numbers"),
    ("allowlist", "allow-list ending in deny (the call last)"),
]
SHAPE_LABELS = {
    "linear": "linear chain",
    "tree": "binary search tree",
    "allowlist": "allow-list, call last",
}
CALLS = [("getppid", "getppid()"), ("read", "read 1 byte from /dev/zero")]
LENGTHS_DEFAULT = "16, 64, 128, 256, 512, 1000"
LENGTH_MIN, LENGTH_MAX = 8, 1_000
POINTS_MAX = 10
# Bounds a run's work: every point runs iterations × (2 warm-up + 2 × repetitions) calls.
MAX_TOTAL_CALLS = 100_000_000


class SeccompCostForm(ExperimentForm):
    shapes = forms.MultipleChoiceField(
        choices=SHAPES, initial=["linear", "tree"], widget=forms.CheckboxSelectMultiple
    )
    lengths = IntListField(
        label="Filter lengths",
        min_value=LENGTH_MIN,
        max_value=LENGTH_MAX,
        max_items=POINTS_MAX,
        initial=LENGTHS_DEFAULT,
        help_text=f"Instructions, comma-separated, {LENGTH_MIN}–{LENGTH_MAX}, at most "
        f"{POINTS_MAX} points (an allow-list is never shorter than the calls it must allow).",
    )
    call = forms.ChoiceField(choices=CALLS, initial="getppid")
    defeat_cache = forms.BooleanField(
        label="Test an argument first",
        required=False,
        initial=True,
        help_text="Filters that read an argument cannot be skipped by the kernel's "
        "constant-action bitmap (Linux ≥ 5.11); untick to see the bitmap make them free.",
    )
    iterations = forms.IntegerField(
        min_value=1_000, max_value=1_000_000, initial=100_000, help_text="Calls per repetition."
    )
    repetitions = forms.IntegerField(
        min_value=3, max_value=50, initial=7, help_text="Repetitions before and after."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        shapes, lengths = data.get("shapes") or [], data.get("lengths") or []
        iterations, repetitions = data.get("iterations"), data.get("repetitions")
        if shapes and lengths and iterations and repetitions:
            total = len(shapes) * len(lengths) * iterations * (2 + 2 * repetitions)
            self.refuse_full_trace_over_cap(data, total)
            if total > MAX_TOTAL_CALLS:
                self.add_error(
                    "iterations",
                    f"That is {total:,} calls in all; keep shapes × lengths × iterations × "
                    f"(2 + 2 × repetitions) at or below {MAX_TOTAL_CALLS:,}.",
                )
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    shapes = tuple(params.get("shapes") or [key for key, _ in SHAPES])
    return [
        Chart(
            id="added",
            title="ns added per call by the filter",
            x_label="filter length (instructions)",
            y_label="ns added / call",
            series=shapes,
            labels={shape: f"{SHAPE_LABELS[shape]} (ns added/call)" for shape in shapes},
        )
    ]


EXPERIMENT = Experiment(
    slug="seccomp-cost",
    title="seccomp: the price of a BPF filter on every syscall",
    explanation=(
        "A seccomp filter is a small classic-BPF program the kernel runs on every system call "
        "of a process, before the call itself: containers, browsers and this playground's own "
        "sandbox use one. Here a forked child times a cheap call in a C loop, installs a filter "
        "of a chosen length and shape (after prctl(PR_SET_NO_NEW_PRIVS)), and times it again; "
        "the difference is the filter's cost per call, swept against the filter's length. A "
        "linear chain of compares costs in proportion to its length; a binary search over "
        "syscall numbers costs in proportion to its depth; an allow-list costs whatever it "
        "takes to reach the call. Since Linux 5.11 the kernel evaluates a new filter once per "
        "syscall number and, when the verdict can depend on nothing but the number, skips the "
        "filter for that call from then on (the constant-action bitmap): untick 'test an "
        "argument first' to see that. Each filter lives and dies in its child, and the worker "
        "checks that it never runs under one (Seccomp_filters in /proc/self/status)."
    ),
    syscalls=("seccomp", "prctl", "getppid", "read"),
    look_for=(
        "The slope of the linear chain (well under a nanosecond per instruction: the kernel "
        "JIT-compiles classic BPF), the tree staying flat, the allow-list paying for the "
        "position of the call, and the intercept: any filter at all sends every syscall "
        "through the kernel's slower entry path. Every figure sits on top of the sandbox's "
        "own filter, which the worker already runs under."
    ),
    form_class=SeccompCostForm,
    probe="sysops.experiments.seccomp_cost.probe",
    charts=charts,
    wall_s=lambda params: 180.0,
    man_sections={"seccomp": 2, "prctl": 2},
    sampled_params=lambda params: {
        **params,
        "lengths": (params.get("lengths") or [16])[:2],
        "iterations": 1_000,
        "repetitions": 3,
    },
)
