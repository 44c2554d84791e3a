"""A test-only experiment for the live pipeline: registered when SYSOPS_TEST_EXPERIMENTS=1."""

from __future__ import annotations

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm


class SyntheticForm(ExperimentForm):
    samples = forms.IntegerField(min_value=1, max_value=2_000_000, initial=10_000)
    duration_s = forms.FloatField(
        min_value=0, max_value=30, initial=0, required=False, help_text="0: as fast as it can"
    )

    def clean_duration_s(self) -> float:
        return self.cleaned_data.get("duration_s") or 0.0


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
    wall_s=lambda params: 120.0 + params.get("duration_s", 0.0),
    hidden=True,
)
