"""A test-only experiment with known syscalls, for the tracer; registered with the test ones."""

from __future__ import annotations

from django import forms

from sysops.experiments.base import Experiment, ExperimentForm


class WorkloadForm(ExperimentForm):
    case = forms.ChoiceField(choices=[("calls", "calls"), ("getppid_loop", "getppid_loop")])
    count = forms.IntegerField(min_value=0, max_value=2_000_000, initial=0)


EXPERIMENT = Experiment(
    slug="workload",
    timing=False,  # its results are not timings: it may run beside others
    title="Known syscalls (tests only)",
    explanation="Makes syscalls known in advance so a trace can be checked against them.",
    syscalls=("openat", "write", "mmap", "connect", "clone", "getppid"),
    look_for="",
    form_class=WorkloadForm,
    probe="sysops.experiments.workload.probe",
    charts=lambda params: [],
    wall_s=lambda params: 120.0,
    hidden=True,
)
