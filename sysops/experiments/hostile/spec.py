"""A test-only experiment that attacks its sandbox; registered when SYSOPS_TEST_EXPERIMENTS=1."""

from __future__ import annotations

from django import forms

from sysops.experiments.base import Experiment, ExperimentForm

CASES = [
    "fork_bomb",
    "memory_hog",
    "busy_loop",
    "sleep",
    "big_write",
    "connect_out",
    "read_secret",
    "mount",
    "unshare",
    "ptrace",
    "kill_all",
    "tiocsti",
    "io_uring",
    "socket_families",
    "legacy_abi",
    "memfd_hog",
    "spin_cores",
    "event_flood",
    "bad_events",
    "host_view",
]


class HostileForm(ExperimentForm):
    case = forms.ChoiceField(choices=[(c, c) for c in CASES])
    sleep_s = forms.FloatField(min_value=0, max_value=60, initial=0, required=False)
    path = forms.CharField(max_length=4096, required=False)
    count = forms.IntegerField(min_value=0, max_value=2_000_000, required=False)
    wall_s = forms.FloatField(min_value=1, max_value=60, initial=20)
    cpu_s = forms.IntegerField(min_value=1, max_value=30, initial=2)


EXPERIMENT = Experiment(
    slug="hostile",
    timing=False,  # its results are not timings: it may run beside others
    title="Hostile worker (tests only)",
    explanation="Attacks its own sandbox; each case reports what the sandbox allowed.",
    syscalls=(),
    look_for="",
    form_class=HostileForm,
    probe="sysops.experiments.hostile.probe",
    charts=lambda params: [],
    wall_s=lambda params: float(params["wall_s"]),
    limits=lambda params: {"cpu_s": int(params["cpu_s"])},
    hidden=True,
)
