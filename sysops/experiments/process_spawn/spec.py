from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments import limits
from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.fields import IntListField, warmup_field
from sysops.experiments.process_spawn.probe import (
    METHOD_LABELS,
    METHODS,
    PARENT_MIB_MAX,
    POINTS_MAX,
    TARGETS,
)
from sysops.sandbox import Policy

MIB = 1 << 20
# Room beside the touched parent memory: the interpreter, its libraries and the children.
MEMORY_HEADROOM_BYTES = Policy.memory_bytes
ADDRESS_SPACE_HEADROOM_BYTES = Policy.address_space_bytes
# A generous guess per cycle for the wall limit: a fork + exit cycle costs ~60–120 µs per MiB of
# parent here when the host is quiet, and ~250 µs on a loaded 2-core VM.
CYCLE_BASE_S = 0.01
CYCLE_PER_MIB_S = 0.0005


def memory_bytes_needed(sizes_mib: list[int]) -> int:
    return MEMORY_HEADROOM_BYTES + max(sizes_mib) * MIB


def address_space_bytes_needed(sizes_mib: list[int]) -> int:
    return ADDRESS_SPACE_HEADROOM_BYTES + max(sizes_mib) * MIB


class ProcessSpawnForm(ExperimentForm):
    methods = forms.MultipleChoiceField(
        choices=[(m, METHOD_LABELS[m]) for m in METHODS],
        initial=list(METHODS),
        widget=forms.CheckboxSelectMultiple,
    )
    parent_sizes_mib = IntListField(
        label="Parent memory (MiB)",
        min_value=0,
        max_value=PARENT_MIB_MAX,
        min_items=2,
        max_items=POINTS_MAX,
        initial="0, 64, 128, 256, 512",
        help_text=(
            f"Touched memory in the spawning process, swept: 2 to {POINTS_MAX} sizes in "
            f"0…{PARENT_MIB_MAX} MiB, within the run's memory limit."
        ),
    )
    target = forms.ChoiceField(
        label="Target program", choices=[(t, t) for t in TARGETS], initial=TARGETS[0]
    )
    repetitions = forms.IntegerField(
        min_value=3, max_value=200, initial=15, help_text="Measured cycles per method and size."
    )
    warmup = warmup_field(
        max_value=10, initial=2, help_text="Cycles run first at each size and discarded."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        sizes = data.get("parent_sizes_mib")
        if sizes:
            for field, needed, what in (
                ("memory_bytes", memory_bytes_needed(sizes), "memory limit"),
                ("address_space_bytes", address_space_bytes_needed(sizes), "address-space limit"),
            ):
                ceiling = limits.ceiling(field)
                if needed > ceiling:
                    self.add_error(
                        "parent_sizes_mib",
                        f"A {max(sizes)} MiB parent needs a {what} of {needed // MIB} MiB; "
                        f"this server allows runs at most {int(ceiling) // MIB} MiB "
                        f"({limits.CEILING_SETTINGS[field]}).",
                    )
        if sizes and all(data.get(k) is not None for k in ("methods", "repetitions", "warmup")):
            # add_error above drops the field from data: the sizes are passed on explicitly.
            needed_s = wall_s({**data, "parent_sizes_mib": sizes})
            ceiling_s = limits.ceiling("wall_s")
            if needed_s > ceiling_s:
                self.add_error(
                    "repetitions",
                    f"That much work could take {needed_s:.0f} s, over this server's "
                    f"{ceiling_s:.0f} s limit for a run: fewer repetitions, sizes or methods.",
                )
        return data


def charts(params: Mapping[str, Any]) -> list[Chart]:
    methods = tuple(params.get("methods") or METHODS)
    return [
        Chart(
            id="cycle",
            title="One child, spawn to reaped, against the parent's size (median)",
            x_label="parent memory (MiB)",
            y_label="µs",
            series=methods,
            labels={m: f"{METHOD_LABELS[m]} (µs)" for m in methods},
        ),
        Chart(
            id="returned",
            title="Until the spawn call returns in the parent (median)",
            x_label="parent memory (MiB)",
            y_label="µs",
            series=tuple(f"{m}_returned" for m in methods),
            labels={f"{m}_returned": f"{METHOD_LABELS[m]} (µs)" for m in methods},
        ),
    ]


def wall_s(params: Mapping[str, Any]) -> float:
    cycles = (int(params["repetitions"]) + int(params["warmup"])) * len(params["methods"])
    per_size_s = [
        cycles * (CYCLE_BASE_S + mib * CYCLE_PER_MIB_S) for mib in params["parent_sizes_mib"]
    ]
    return 60.0 + sum(per_size_s)


EXPERIMENT = Experiment(
    slug="process-spawn",
    title="Process spawn: fork, vfork, posix_spawn and the parent's size",
    explanation=(
        "Five ways to start a child running /bin/true, from a parent holding more and more "
        "touched memory. fork copies the parent's page tables and marks its private pages "
        "copy-on-write, so its cost grows with the parent; vfork and posix_spawn (glibc clones "
        "with CLONE_VM | CLONE_VFORK) borrow the parent's memory until execve and stay flat; "
        "Python's subprocess uses vfork where it can. Each cycle is timed from the spawn call to "
        "its return in the parent, to the child's first instruction (fork and vfork: the child "
        "stamps a shared page), to the exec (an O_CLOEXEC pipe closing in the child's execve) "
        "and to waitpid reaping the child. The native methods are timed in C; the chart shows "
        "medians per parent size and the table the slope in µs per MiB."
    ),
    syscalls=(
        "fork",
        "vfork",
        "clone",
        "clone3",
        "posix_spawn",
        "execve",
        "wait4",
        "pipe2",
        "mmap",
    ),
    look_for=(
        "The fork lines climbing with the parent (tens of µs per MiB of page tables on this kind "
        "of host) while vfork, posix_spawn and subprocess stay flat; how much of fork + execve is "
        "the fork itself; in a sampled trace, clone or clone3, execve and wait4 under the "
        "children's own pids."
    ),
    form_class=ProcessSpawnForm,
    probe="sysops.experiments.process_spawn.probe",
    charts=charts,
    wall_s=wall_s,
    limits=lambda params: {
        "memory_bytes": memory_bytes_needed(params["parent_sizes_mib"]),
        "address_space_bytes": address_space_bytes_needed(params["parent_sizes_mib"]),
    },
    # Two small sizes and two cycles per method show every spawn's syscalls in a short trace.
    sampled_params=lambda params: {
        **params,
        "parent_sizes_mib": sorted(params["parent_sizes_mib"])[:2],
        "repetitions": 2,
        "warmup": 0,
    },
    man_sections={"posix_spawn": 3},
)
