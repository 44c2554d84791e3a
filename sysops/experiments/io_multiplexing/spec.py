from __future__ import annotations

import resource
from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.fields import IntListField
from sysops.experiments.io_multiplexing.probe import (
    ACTIVE_MAX,
    CALLS_MAX,
    CALLS_MIN,
    COUNT_MAX,
    COUNTS_MAX_ITEMS,
    DESCRIPTOR_VISITS_MAX,
    FD_SETSIZE,
    LAYER_LABELS,
    MECHANISM_LABELS,
    MECHANISMS,
    descriptor_visits,
    nofile_needed,
    variant,
)

LAYERS = [
    ("native", "native C (select/poll/epoll_wait in a C loop)"),
    ("python", "Python's select module"),
]
# Syscalls per descriptor to set a point up (pipe2 and close in the helper, the SCM_RIGHTS
# batches, close here) and per cycle around each wait call (a write and a read per ready
# pipe): for the trace cap.
SETUP_SYSCALLS_PER_DESCRIPTOR = 5
WALL_S = 150.0


class IoMultiplexingForm(ExperimentForm):
    mechanisms = forms.MultipleChoiceField(
        choices=list(MECHANISM_LABELS.items()),
        initial=list(MECHANISMS),
        widget=forms.CheckboxSelectMultiple,
    )
    counts = IntListField(
        min_value=1,
        max_value=COUNT_MAX,
        max_items=COUNTS_MAX_ITEMS,
        label="Descriptor counts",
        initial="1, 10, 100, 1000, 10000",
        help_text=f"Watched descriptors (pipes) at each point: up to {COUNTS_MAX_ITEMS} counts, "
        f"each 1..{COUNT_MAX:,}. select stops at FD_SETSIZE ({FD_SETSIZE}).",
    )
    active = forms.IntegerField(
        label="Ready descriptors per call",
        min_value=0,
        max_value=ACTIVE_MAX,
        initial=1,
        help_text="How many of them hold a byte at each wait call (≤ the smallest count).",
    )
    layers = forms.MultipleChoiceField(
        choices=LAYERS, initial=["native"], widget=forms.CheckboxSelectMultiple
    )
    calls = forms.IntegerField(
        min_value=CALLS_MIN,
        max_value=CALLS_MAX,
        initial=300,
        help_text="Timed wait calls per mechanism at each count (after 10% warm-up).",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        counts, active, calls = data.get("counts"), data.get("active"), data.get("calls")
        mechanisms, layers = data.get("mechanisms") or [], data.get("layers") or []
        if counts and active is not None and active > counts[0]:
            self.add_error(
                "active", f"At most the smallest count ({counts[0]:,}) can be ready at once."
            )
        if counts and calls and mechanisms and layers:
            visits = descriptor_visits(counts, calls, len(mechanisms) * len(layers))
            if visits > DESCRIPTOR_VISITS_MAX:
                self.add_error(
                    "calls",
                    f"calls × Σ counts × mechanisms × layers is {visits:,}; keep it at or below "
                    f"{DESCRIPTOR_VISITS_MAX:,} (fewer calls, or smaller counts).",
                )
            if active is not None:
                events = _trace_events(counts, calls, active, len(mechanisms) * len(layers))
                self.refuse_full_trace_over_cap(data, events, "fewer calls or smaller counts")
        return data


def _trace_events(counts: list[int], calls: int, active: int, variants: int) -> int:
    per_point = [
        SETUP_SYSCALLS_PER_DESCRIPTOR * n
        + variants * (n + (calls + max(1, calls // 10)) * (2 * active + 1))
        for n in counts
    ]
    return sum(per_point)


def _nofile(counts: list[int]) -> int:
    """What the sweep needs, but never above this host's hard limit: asking more makes the
    sandbox set-up fail, while a little less only leaves the largest counts out (the probe
    says which, and why)."""
    _, host_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = nofile_needed(counts)
    return needed if host_hard == resource.RLIM_INFINITY else min(needed, host_hard)


def charts(params: Mapping[str, Any]) -> list[Chart]:
    layers = params.get("layers") or ["native"]
    mechanisms = params.get("mechanisms") or list(MECHANISMS)
    series = tuple(variant(layer, m) for layer in layers for m in mechanisms)
    return [
        Chart(
            id="cost",
            title="One wait call against the number of watched descriptors",
            x_label="watched descriptors",
            y_label="ns per call (median)",
            series=series,
            labels={
                variant(layer, m): f"{MECHANISM_LABELS[m]}, {LAYER_LABELS[layer]} (ns)"
                for layer in layers
                for m in mechanisms
            },
            x_log=True,
            y_log=True,
            x_marks=((FD_SETSIZE, "FD_SETSIZE"),),
        )
    ]


EXPERIMENT = Experiment(
    slug="io-multiplexing",
    title="select vs poll vs epoll as descriptors grow",
    explanation=(
        "One wait call, timed alone, watching N pipes of which k hold a byte: select, poll, "
        "and epoll level- and edge-triggered, for each N you list, mechanisms interleaved at "
        "every point. select and poll hand the kernel the whole list on every call and the "
        "kernel asks every descriptor whether it is ready: the cost grows with N. epoll keeps "
        "the interest list in the kernel between calls and each descriptor puts itself on a "
        "ready list when data arrives, so epoll_wait looks only at what is ready: flat in N. "
        "select also has a hard wall: an fd_set is a bitmap of FD_SETSIZE = 1024 bits, so it "
        "cannot watch descriptor 1024 or above (Python raises ValueError; in C, FD_SET past "
        "the end writes past the structure, so this run refuses instead). The run raises its "
        "own descriptor limit to hold them (a helper process keeps the idle pipes' write "
        "ends and passes their read ends over a unix socket, so a watched pipe costs one "
        "descriptor here). Two short scenarios run first: "
        "select on descriptor 1024, and an edge-triggered reader that reads only part of what "
        "arrived, next to a level-triggered one."
    ),
    syscalls=(
        "select",
        "poll",
        "epoll_create1",
        "epoll_ctl",
        "epoll_wait",
        "pipe2",
        "sendmsg",
        "recvmsg",
        "fcntl",
        "socketpair",
        "ioctl",
        "setrlimit",
    ),
    look_for=(
        "select and poll rising as a straight line on the log-log chart (tens of ns per "
        "descriptor), epoll flat; at 1,000 descriptors select costing tens of times epoll; "
        "select's curve ending before the FD_SETSIZE mark. In a trace: the edge-triggered "
        "epoll_wait returning 0 while FIONREAD still shows 100 bytes queued, and the "
        "level-triggered one returning 1."
    ),
    form_class=IoMultiplexingForm,
    probe="sysops.experiments.io_multiplexing.probe",
    charts=charts,
    wall_s=lambda params: WALL_S,
    limits=lambda params: {"nofile": _nofile(params["counts"])},
    # A few calls at the small counts show every kind of call without 10,000 epoll_ctl lines.
    sampled_params=lambda params: {
        **params,
        "counts": [c for c in params["counts"] if c <= 100] or [min(params["counts"])],
        "calls": CALLS_MIN,
    },
)
