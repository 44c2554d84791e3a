from __future__ import annotations

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm


class EpollEchoForm(ExperimentForm):
    clients = forms.IntegerField(min_value=1, max_value=256, initial=16)
    message_bytes = forms.IntegerField(
        min_value=1, max_value=65_536, initial=512, help_text="Bytes per request (≤ 64 KiB)."
    )
    duration_s = forms.FloatField(
        min_value=0.5, max_value=60, initial=5, help_text="Seconds of load (≤ 60)."
    )
    trigger_mode = forms.ChoiceField(
        label="Trigger mode",
        choices=[("level", "level-triggered (LT)"), ("edge", "edge-triggered (ET)")],
        initial="level",
        required=False,
        help_text="How the server registers its connections with epoll; ET reads and writes "
        "until EAGAIN on every event.",
    )

    def clean_trigger_mode(self) -> str:
        # A run stored before the option existed is re-validated without it: level, as then.
        return self.cleaned_data.get("trigger_mode") or "level"


CHARTS = [
    Chart(
        "rps",
        "Requests per second, each 250 ms window",
        "elapsed (s)",
        "requests/s",
        ("requests_per_s",),
        labels={"requests_per_s": "requests completed per second (requests/s)"},
    ),
    Chart(
        "latency",
        "Latency per request, each 250 ms window",
        "elapsed (s)",
        "µs",
        ("latency_p50_us", "latency_p99_us"),
        labels={
            "latency_p50_us": "median latency (µs)",
            "latency_p99_us": "p99 latency, windows of ≥ 100 requests (µs)",
        },
    ),
]

EXPERIMENT = Experiment(
    slug="epoll-echo",
    title="epoll echo server under load",
    explanation=(
        "A non-blocking echo server on epoll runs in one process of the sandbox; N client "
        "connections in another send messages of S bytes, each waiting for its echo before "
        "sending the next (closed loop), for D seconds, over the sandbox's own loopback. Every "
        "250 ms the page gets requests/s and the latency p50/p99 of that window; at the end, "
        "every byte sent is checked to have come back, byte for byte. The server is "
        "level-triggered (epoll reports a socket for as long as it is readable; one recv per "
        "event is enough) or edge-triggered (reported once per arrival; the server must read "
        "and write until EAGAIN or strand data), and counts its own syscalls per request."
    ),
    syscalls=("epoll_create1", "epoll_ctl", "epoll_wait", "accept4", "recvfrom", "sendto", "fork"),
    look_for=(
        "Throughput against the number of clients (one server process, one core); latency "
        "p99 pulling away from p50 as the server saturates; what larger messages cost; "
        "edge- against level-triggered: ET saves the epoll_ctl calls that toggle EPOLLOUT but "
        "pays a recv that fails with EAGAIN on every wake-up."
    ),
    form_class=EpollEchoForm,
    probe="sysops.experiments.epoll_echo.probe",
    charts=lambda params: CHARTS,
    wall_s=lambda params: float(params["duration_s"]) + 20.0,
    limits=lambda params: {"nofile": 2048},
    rate_metric="requests/s",
    sampled_params=lambda params: {
        **params,
        "clients": min(int(params["clients"]), 4),
        "duration_s": 0.5,
    },
)
