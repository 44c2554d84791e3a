from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm

MEASUREMENTS = [
    ("connect", "connect/accept latency (the three-way handshake)"),
    ("rtt", "request/response round trip"),
    ("throughput", "bulk throughput"),
]
LAYERS = [("python", "Python socket"), ("native", "native C loop")]
SIZE_BYTES_MAX = 1 << 20
COUNT_MAX = 1_000_000
CONNECT_COUNT_MAX = 100_000
# Syscalls one operation makes at most (both ends), for refusing a full trace over the cap:
# a connection is socket, connect, poll, getsockopt, close + poll, accept4, close.
TRACE_CALLS_PER_OP = 8


class TcpForm(ExperimentForm):
    measurement = forms.ChoiceField(choices=MEASUREMENTS, initial="rtt")
    message_bytes = forms.IntegerField(
        label="Message size (bytes)",
        min_value=1,
        max_value=SIZE_BYTES_MAX,
        initial=64,
        help_text="1 B … 1 MiB; each way for a round trip, per send() for throughput; "
        "unused by connect.",
    )
    count = forms.IntegerField(
        min_value=1,
        max_value=COUNT_MAX,
        initial=100_000,
        help_text="Connections, round trips or messages per layer (connections ≤ 100,000); "
        "the run stops at this count or the duration, whichever comes first.",
    )
    duration_s = forms.FloatField(
        label="Duration (s)",
        min_value=0.05,
        max_value=60,
        initial=2,
        help_text="Seconds per layer at most (≤ 60).",
    )
    layers = forms.MultipleChoiceField(
        choices=LAYERS,
        initial=["python", "native"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Both ends run the chosen layer; the ratio is to the native loop.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        count = data.get("count")
        if data.get("measurement") == "connect" and count and count > CONNECT_COUNT_MAX:
            self.add_error(
                "count",
                f"At most {CONNECT_COUNT_MAX:,} connections: each one leaves a TIME_WAIT socket "
                "behind for a minute.",
            )
        if count:
            calls = count * TRACE_CALLS_PER_OP * len(data.get("layers") or LAYERS)
            self.refuse_full_trace_over_cap(data, calls, "a smaller count")
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    layers = params.get("layers") or [k for k, _ in LAYERS]
    names = dict(LAYERS)
    if params.get("measurement") == "throughput":
        return [
            Chart(
                id="throughput",
                title="Bulk throughput, each ~100 ms slice",
                x_label="elapsed (s)",
                y_label="MB/s",
                series=tuple(layers),
                labels={layer: f"{names[layer]} (MB/s)" for layer in layers},
            )
        ]
    what = "connect latency" if params.get("measurement") == "connect" else "round trip"
    series = tuple(f"{layer}_{stat}" for layer in layers for stat in ("median", "max"))
    return [
        Chart(
            id=params.get("measurement") or "rtt",
            title=f"{what.capitalize()}: median and max of each ~100 ms slice",
            x_label="elapsed (s)",
            y_label="µs",
            series=series,
            labels={
                f"{layer}_{stat}": f"{names[layer]} {stat} (µs)"
                for layer in layers
                for stat in ("median", "max")
            },
            y_log=True,
        )
    ]


EXPERIMENT = Experiment(
    slug="tcp",
    title="TCP from the syscalls up",
    explanation=(
        "Two processes on the sandbox's own loopback (127.0.0.1 of its private network "
        "namespace: nothing leaves the machine). A forked server makes socket, bind, listen and "
        "accept4; the client connects with a non-blocking connect, which returns EINPROGRESS "
        "while the three-way handshake runs, then poll says writable and getsockopt(SO_ERROR) "
        "says it worked. Three measurements: connect latency (a new connection each time, "
        "closed at once), request/response round trips of a message of S bytes each way, and "
        "bulk throughput (the client sends S-byte messages as fast as it can, the server reads "
        "them all). Each runs in the Python socket layer or in C loops with the GIL released, "
        "at both ends; the loops count their send and recv calls, so the table says how many "
        "syscalls one message took. The end is shutdown(SHUT_WR) and close: the server sees "
        "EOF, answers with its own FIN, and the client's recv returns 0."
    ),
    syscalls=(
        "socket",
        "bind",
        "listen",
        "accept4",
        "connect",
        "poll",
        "getsockopt",
        "sendto",
        "recvfrom",
        "shutdown",
        "close",
    ),
    look_for=(
        "In the trace: connect returning EINPROGRESS, the server's accept4 under another pid, "
        "the sendto/recvfrom pairs, shutdown then close. In the table: a loopback round trip "
        "costs tens of µs here — two process wake-ups — far more than the syscalls; the Python "
        "layer adds little to a round trip but more to connect; large messages take several "
        "send or recv calls each (syscalls per message above 1); throughput grows with the "
        "message size until the copy, not the call, is the cost."
    ),
    form_class=TcpForm,
    probe="sysops.experiments.tcp.probe",
    charts=charts,
    wall_s=lambda params: float(params["duration_s"]) * len(params["layers"]) + 30.0,
    # Each end may spin a CPU for the whole run: RLIMIT_CPU (per process) must cover it.
    limits=lambda params: {"cpu_s": int(float(params["duration_s"]) * len(params["layers"])) + 30},
    sampled_params=lambda params: {
        **params,
        "count": min(int(params["count"]), 5),
        "duration_s": min(float(params["duration_s"]), 0.5),
    },
)
