"""A test-only experiment for the live pipeline: registered when SYSOPS_TEST_EXPERIMENTS=1."""

from __future__ import annotations

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm


class SyntheticForm(ExperimentForm):
    samples = forms.IntegerField(min_value=1, max_value=2_000_000, initial=10_000)
    # A paced run lasts long enough to outlive a web server killed in the middle of it.
    interval_ms = forms.IntegerField(min_value=0, max_value=1000, initial=0, required=False)


EXPERIMENT = Experiment(
    slug="synthetic",
    timing=False,  # its results are not timings: it may run beside others
    title="Synthetic samples (tests only)",
    explanation="Emits a known number of samples as fast as the worker can.",
    syscalls=("write",),
    look_for="",
    form_class=SyntheticForm,
    probe="sysops.experiments.synthetic.probe",
    charts=lambda params: [Chart("synthetic", "Synthetic", "i", "value", ("synthetic",))],
    wall_s=lambda params: 120.0,
    hidden=True,
)
