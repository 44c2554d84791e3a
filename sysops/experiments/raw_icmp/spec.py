from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.raw_icmp.probe import (
    COUNT_MAX,
    INTERVAL_MS_MAX,
    PAYLOAD_BYTES_MAX,
    REPLY_TIMEOUT_S,
    RUN_TIME_MAX_S,
    TTL_MAX,
    TTL_MIN,
)

SENDING_TIME_MAX_MS = 60_000  # count × interval: a run of echoes lasts at most a minute
SAMPLED_COUNT = 3
IP_OPTIONS = [
    ("none", "none (IHL 5, a 20-byte header)"),
    ("record_route", "record route (IHL 15: 40 bytes of options)"),
]


class RawIcmpForm(ExperimentForm):
    count = forms.IntegerField(
        min_value=1, max_value=COUNT_MAX, initial=50, help_text=f"Echo requests (≤ {COUNT_MAX:,})."
    )
    payload_bytes = forms.IntegerField(
        label="Payload size",
        min_value=0,
        max_value=PAYLOAD_BYTES_MAX,
        initial=56,
        help_text=f"Bytes of data after the ICMP header (0 … {PAYLOAD_BYTES_MAX:,}; ping: 56).",
    )
    interval_ms = forms.IntegerField(
        label="Interval (ms)",
        min_value=0,
        max_value=INTERVAL_MS_MAX,
        initial=10,
        help_text="From one send to the next; 0 sends the next as soon as the reply is in.",
    )
    ttl = forms.IntegerField(
        label="TTL",
        min_value=TTL_MIN,
        max_value=TTL_MAX,
        initial=64,
        help_text="IP_TTL of our requests (or the TTL byte of our own header).",
    )
    hdrincl = forms.BooleanField(
        label="Build the IP header myself (IP_HDRINCL)",
        required=False,
        initial=False,
    )
    ip_options = forms.ChoiceField(
        label="IP options",
        choices=IP_OPTIONS,
        initial="none",
        help_text="Record route makes the header longer than 20 bytes (IHL > 5).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        count, interval_ms = data.get("count"), data.get("interval_ms")
        if count is not None and interval_ms is not None:
            sending_ms = count * interval_ms
            if sending_ms > SENDING_TIME_MAX_MS:
                self.add_error(
                    "interval_ms",
                    f"{count:,} echoes every {interval_ms:,} ms take {sending_ms / 1000:,.0f} s;"
                    f" keep count × interval at or below {SENDING_TIME_MAX_MS // 1000} s.",
                )
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    return [
        Chart(
            id="rtt",
            title="Round trip of each echo",
            x_label="sequence number",
            y_label="µs",
            series=("rtt_us", "stamped_us", "kernel_us"),
            points=True,
            labels={
                "rtt_us": "sendto → reply read, Python (µs)",
                "stamped_us": "sendto → reply stamped, as ping (µs)",
                "kernel_us": "kernel: request in → reply in (µs)",
            },
        )
    ]


def wall_s(params: Mapping[str, Any]) -> float:
    # Every echo lost would wait REPLY_TIMEOUT_S; the probe stops sending at RUN_TIME_MAX_S.
    worst_s = int(params["count"]) * (int(params["interval_ms"]) / 1000 + REPLY_TIMEOUT_S)
    return min(worst_s, RUN_TIME_MAX_S) + 30.0


EXPERIMENT = Experiment(
    slug="raw-icmp",
    title="Raw ICMP: an echo, and the IP header decoded by hand",
    explanation=(
        "The worker opens socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) — allowed because the sandbox "
        "keeps CAP_NET_RAW for its own network namespace — and sends ICMP echo requests to "
        "127.0.0.1, building each ICMP header and its checksum itself (and, with IP_HDRINCL, the "
        "IP header too). A raw socket hands back whole IP packets: every reply is decoded field "
        "by field — version, IHL, TOS, total length, identification, flags, fragment offset, "
        "TTL, protocol, header checksum, source, destination, then ICMP type, code, checksum, "
        "identifier and sequence — and both checksums are verified (RFC 1071). The page draws "
        "packets as the 32-bit-wide diagrams of RFC 791, times each echo, and shows the same "
        "socket call refused once a child has dropped the capability, next to the "
        "unprivileged ICMP 'ping socket' (SOCK_DGRAM). See raw(7), icmp(7), capabilities(7)."
    ),
    syscalls=("socket", "setsockopt", "sendto", "recvmsg", "poll", "capget", "capset"),
    look_for=(
        "Our own echo requests arriving on the raw socket before the replies (loopback delivers "
        "them to every raw ICMP socket); the reply's TTL of 64 whatever TTL you sent; the IHL "
        "growing to 15 with record route, and the route recorded in the options; what the "
        "kernel rewrites in a header you built with IP_HDRINCL; EPERM once CAP_NET_RAW is gone "
        "although the uid is still 0; the kernel's own turnaround of a few µs against the "
        "round trip Python sees — and how much that grows with an interval between echoes, "
        "when the process sleeps and wakes cold, while the kernel-stamped figure barely moves."
    ),
    form_class=RawIcmpForm,
    probe="sysops.experiments.raw_icmp.probe",
    charts=charts,
    wall_s=wall_s,
    # A few echoes show every call: the socket options, sendto, poll and both recvmsg calls.
    sampled_params=lambda params: {
        **params,
        "count": min(int(params["count"]), SAMPLED_COUNT),
        "interval_ms": 0,
    },
)
