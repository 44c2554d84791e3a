from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments import limits
from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.descriptors.probe import COUNT_MAX, NOFILE_MAX, NOFILE_MIN, SCENARIOS
from sysops.sandbox import Policy

SCENARIO_LABELS = {
    "emfile": "open until EMFILE",
    "leak": "a leak: open without close, watched through /proc/self/fd",
    "inherit": "inherited descriptors: a child with and without O_CLOEXEC",
    "dup": "dup, dup2 and the lowest-free-number rule",
}
# A short traced pass: the same scenario, with few descriptors.
SAMPLED_NOFILE = 64
SAMPLED_COUNT = 50


class DescriptorsForm(ExperimentForm):
    scenario = forms.ChoiceField(
        choices=[(name, SCENARIO_LABELS[name]) for name in SCENARIOS], initial="emfile"
    )
    count = forms.IntegerField(
        min_value=1,
        max_value=COUNT_MAX,
        initial=2_000,
        help_text="The leak: iterations of each loop (the one that closes, the one that leaks).",
    )
    nofile = forms.IntegerField(
        label="RLIMIT_NOFILE",
        min_value=NOFILE_MIN,
        max_value=NOFILE_MAX,
        initial=1_024,
        help_text="The soft limit on descriptors set for the run.",
    )

    def clean_nofile(self) -> int:
        nofile = self.cleaned_data["nofile"]
        ceiling = limits.ceiling("nofile")
        if nofile > ceiling:
            raise forms.ValidationError(
                f"This server allows runs at most {int(ceiling):,} descriptors "
                f"({limits.CEILING_SETTINGS['nofile']})."
            )
        return nofile


def charts(params: Mapping[str, Any]) -> list[Chart]:
    scenario = params.get("scenario")
    if scenario == "emfile":
        return [
            Chart(
                id="open_fds",
                title="Open descriptors while opening /dev/null until the kernel refuses",
                x_label="open() calls",
                y_label="open descriptors",
                series=("open_fds",),
                labels={"open_fds": "open descriptors (count)"},
            )
        ]
    if scenario == "leak":
        return [
            Chart(
                id="leak",
                title="Open descriptors, counted in /proc/self/fd as each loop runs",
                x_label="loop iterations",
                y_label="open descriptors",
                series=("closed", "leak"),
                labels={
                    "closed": "open + close (open descriptors)",
                    "leak": "open, never closed (open descriptors)",
                },
            )
        ]
    return []


EXPERIMENT = Experiment(
    slug="descriptors",
    timing=False,  # its results are not timings: it may run beside others
    title="Descriptors: limits, leaks and close-on-exec",
    explanation=(
        "A file descriptor is a small number indexing the process's table of open files. The "
        "kernel hands out the lowest free number, refuses an open past RLIMIT_NOFILE with "
        "EMFILE (ENFILE is the whole system's table), keeps every descriptor a program forgets "
        "to close until it exits, and copies the table into a child on fork — where execve "
        "then closes only those marked close-on-exec (O_CLOEXEC). Each scenario shows one of "
        "these, with the descriptor table itself (readlink of /proc/self/fd) under the results."
    ),
    syscalls=("open", "openat", "close", "dup", "dup2", "fcntl", "setrlimit", "execve", "readlink"),
    look_for=(
        "The open count climbing to exactly the limit and the errno the kernel answers there; a "
        "leak's straight line against the flat loop that closes; the marker file present in the "
        "child's table without O_CLOEXEC and absent with it (and which other descriptors the "
        "worker lets its children inherit); dup landing on the lowest free number while dup2 "
        "takes the one asked for."
    ),
    form_class=DescriptorsForm,
    probe="sysops.experiments.descriptors.probe",
    charts=charts,
    wall_s=lambda params: 120.0,
    # Raise the hard limit only where the run asks for more than the sandbox's default; the
    # probe sets the soft limit itself.
    limits=lambda params: {"nofile": max(Policy.nofile, int(params["nofile"]))},
    sampled_params=lambda params: {
        **params,
        "nofile": min(int(params["nofile"]), SAMPLED_NOFILE),
        "count": min(int(params["count"]), SAMPLED_COUNT),
    },
)
