from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm

SCENARIOS = [
    ("nodelay", "TCP_NODELAY: Nagle + delayed ACK on write-write-read"),
    ("buffers", "SO_RCVBUF / SO_SNDBUF: requested vs granted, small-buffer throughput"),
    ("reuseaddr", "SO_REUSEADDR and TIME_WAIT"),
    ("keepalive", "SO_KEEPALIVE / TCP_KEEPIDLE on an idle connection"),
    ("linger", "SO_LINGER 0: RST instead of FIN"),
    ("tos", "IP_TOS: the TOS byte the receiver sees"),
    ("rcvlowat", "SO_RCVLOWAT: when poll reports readable"),
]
# Seconds each scenario takes at most, beyond the parameterised ones, for the wall limit.
SCENARIO_WALL_S = {"buffers": 6.0, "reuseaddr": 1.0, "linger": 1.0, "tos": 1.0, "rcvlowat": 2.0}
NAGLE_STALL_S = 0.05  # per exchange with Nagle on, a little over the delayed-ACK minimum


class SocketOptionsForm(ExperimentForm):
    scenarios = forms.MultipleChoiceField(
        choices=SCENARIOS,
        initial=["nodelay"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Each scenario shows what its option changes.",
    )
    exchanges = forms.IntegerField(
        min_value=5,
        max_value=200,
        initial=20,
        help_text="TCP_NODELAY: request/response exchanges per variant (≈ 40 ms each with "
        "Nagle on).",
    )
    keepidle_s = forms.IntegerField(
        label="TCP_KEEPIDLE (s)",
        min_value=1,
        max_value=10,
        initial=1,
        help_text="Keepalive: idle seconds before the first probe; the scenario waits 1.5 s more.",
    )


def charts(params: Mapping[str, Any]) -> list[Chart]:
    chosen = params.get("scenarios") or [k for k, _ in SCENARIOS]
    out = []
    if "nodelay" in chosen:
        out.append(
            Chart(
                id="nodelay",
                title="Latency of each write-write-read exchange",
                x_label="exchange",
                y_label="ms",
                series=("nagle", "nodelay", "one_write"),
                labels={
                    "nagle": "write, write, read — Nagle on (ms)",
                    "nodelay": "write, write, read — TCP_NODELAY (ms)",
                    "one_write": "one write, read — Nagle on (ms)",
                },
                points=True,
                y_log=True,
            )
        )
    if "buffers" in chosen:
        out.append(
            Chart(
                id="buffers",
                title="Buffer size granted against requested",
                x_label="requested (bytes)",
                y_label="granted (bytes)",
                series=("so_rcvbuf", "so_sndbuf"),
                labels={"so_rcvbuf": "SO_RCVBUF (bytes)", "so_sndbuf": "SO_SNDBUF (bytes)"},
                x_log=True,
                y_log=True,
            )
        )
        out.append(
            Chart(
                id="rcvbuf_throughput",
                title="Throughput against the receiver's SO_RCVBUF",
                x_label="SO_RCVBUF requested (bytes)",
                y_label="MB/s",
                series=("throughput",),
                labels={"throughput": "bulk throughput, 64 KiB sends (MB/s)"},
                x_log=True,
            )
        )
    if "rcvlowat" in chosen:
        out.append(
            Chart(
                id="rcvlowat",
                title="poll() POLLIN against bytes queued",
                x_label="bytes queued (FIONREAD)",
                y_label="readable (1) or not (0)",
                series=("default", "rcvlowat"),
                labels={"default": "SO_RCVLOWAT 1 (default)", "rcvlowat": "SO_RCVLOWAT 500"},
                points=True,
            )
        )
    return out


def wall_s(params: Mapping[str, Any]) -> float:
    chosen = params.get("scenarios") or []
    total = 20.0 + sum(SCENARIO_WALL_S.get(name, 0.0) for name in chosen)
    if "nodelay" in chosen:
        total += int(params["exchanges"]) * NAGLE_STALL_S
    if "keepalive" in chosen:
        total += int(params["keepidle_s"]) + 2.0
    return total


EXPERIMENT = Experiment(
    slug="socket-options",
    title="Socket options, shown by their effect",
    explanation=(
        "setsockopt changes how the kernel treats one socket; getsockopt reads it back, at a "
        "level (SOL_SOCKET for the socket layer, IPPROTO_TCP, IPPROTO_IP) and in a unit of its "
        "own. Each scenario sets an option and shows what it does, on the sandbox's own "
        "loopback: TCP_NODELAY against the 40 ms stall that Nagle's algorithm and delayed ACKs "
        "make together when a request goes out as two small writes (a request in one write "
        "does not stall: nothing unacknowledged precedes it); SO_RCVBUF and SO_SNDBUF, which "
        "the kernel doubles and caps at 2 × net.core.rmem_max/wmem_max, and what a small "
        "receive buffer does to throughput; SO_REUSEADDR, which lets a server bind a port that "
        "a TIME_WAIT socket still holds (read from the sandbox's /proc/net/tcp); SO_KEEPALIVE "
        "with TCP_KEEPIDLE, whose probes show in TCP_INFO; SO_LINGER with a zero timeout, "
        "which makes close send RST so the peer gets ECONNRESET; IP_TOS, the byte the "
        "receiver finds in the IP header; SO_RCVLOWAT, which keeps poll quiet until enough "
        "bytes are queued."
    ),
    syscalls=(
        "setsockopt",
        "getsockopt",
        "socket",
        "bind",
        "listen",
        "accept4",
        "connect",
        "sendto",
        "recvfrom",
        "recvmsg",
        "poll",
        "ioctl",
        "shutdown",
        "close",
    ),
    look_for=(
        "The Nagle curve sitting near 40 ms while TCP_NODELAY and the single write stay "
        "under a millisecond; granted buffer sizes at exactly twice the request up to the "
        "cap; EADDRINUSE without SO_REUSEADDR and success with it (and failure when the old "
        "listener lacked it); ECONNRESET after SO_LINGER 0 and plain EOF after a normal close; "
        "in the trace, every setsockopt/getsockopt with its level and option name."
    ),
    form_class=SocketOptionsForm,
    probe="sysops.experiments.socket_options.probe",
    charts=charts,
    wall_s=wall_s,
    sampled_params=lambda params: {**params, "exchanges": min(int(params["exchanges"]), 5)},
)
