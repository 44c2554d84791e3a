from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

from django import forms

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.fields import warmup_field
from sysops.experiments.mmap import probe
from sysops.sandbox import Policy

MIB = 1 << 20
# What a run may ask of the sandbox at most: the biggest form (a 256 MiB private file map,
# written: the file and every page's copy) plus the interpreter fits well inside.
MEMORY_CEILING_BYTES = 1 << 30
INTERPRETER_BYTES = 128 * MIB  # the worker's own Python, with room to spare
ADDRESS_SPACE_BASE_BYTES = 512 * MIB  # the worker's virtual size before any map, generously
TMPFS_SLACK_BYTES = 8 * MIB
# Bounds the work of a run: bytes touched over all variants and repetitions. At the ~2–10 ms per
# MiB a first touch costs on a VM, 8 GiB stays within a few minutes, file refills included.
MAX_TOTAL_BYTES = 8 << 30
WALL_BASE_S = 30.0
WALL_S_PER_MIB = 0.015  # generous: first touch, refill and two read-backs of a file map
MEMINFO_PATH = "/proc/meminfo"

SHARING = [("private", "MAP_PRIVATE"), ("shared", "MAP_SHARED")]
POPULATE = [
    ("none", "none (fault on first touch)"),
    ("map_populate", "MAP_POPULATE"),
    ("willneed", "madvise(MADV_WILLNEED)"),
]
THP = [
    ("default", "the host's default"),
    ("hugepage", "madvise(MADV_HUGEPAGE)"),
    ("nohugepage", "madvise(MADV_NOHUGEPAGE)"),
]
LAYERS = [("native", "C touch loop (_mem)"), ("python", "Python mmap module")]
VARIANT_FIELDS = {"sharing": SHARING, "populate": POPULATE, "thp": THP, "layers": LAYERS}


def _policy_default(name: str) -> int:
    return next(f.default for f in dataclasses.fields(Policy) if f.name == name)


def needed_memory_bytes(kind: str, size_bytes: int) -> int:
    """The file (on the sandbox's tmpfs, charged to the run) and the map's own pages — for a
    written private file map, both — plus the interpreter."""
    return INTERPRETER_BYTES + size_bytes * (2 if kind == "file" else 1)


def host_memory_bytes() -> int | None:
    try:
        with open(MEMINFO_PATH) as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MmapForm(ExperimentForm):
    kind = forms.ChoiceField(
        choices=[
            ("anonymous", "anonymous"),
            ("file", "file-backed (a file on the sandbox's /tmp)"),
        ],
        initial="anonymous",
    )
    sharing = forms.MultipleChoiceField(
        choices=SHARING,
        initial=["private"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Both, to compare copy-on-write with write-through.",
    )
    size_kib = forms.IntegerField(
        label="Size (KiB)",
        min_value=probe.SIZE_KIB_MIN,
        max_value=probe.SIZE_KIB_MAX,
        initial=16 * 1024,
        help_text="4 KiB … 256 MiB (262144 KiB), a multiple of the page size.",
    )
    pattern = forms.ChoiceField(
        choices=[
            ("sequential", "sequential (every byte, in order)"),
            ("random", "random (one byte per page, shuffled pages)"),
            ("page", "one byte per page, in order"),
        ],
        initial="page",
    )
    access = forms.ChoiceField(
        choices=[("write", "write"), ("read", "read")],
        initial="write",
        help_text="A read of an untouched anonymous private page maps the shared zero page.",
    )
    populate = forms.MultipleChoiceField(
        choices=POPULATE, initial=["none", "map_populate"], widget=forms.CheckboxSelectMultiple
    )
    thp = forms.MultipleChoiceField(
        label="Transparent huge pages",
        choices=THP,
        initial=["default"],
        widget=forms.CheckboxSelectMultiple,
    )
    layers = forms.MultipleChoiceField(
        choices=LAYERS, initial=["native", "python"], widget=forms.CheckboxSelectMultiple
    )
    repetitions = forms.IntegerField(
        min_value=1, max_value=probe.REPETITIONS_MAX, initial=10, help_text="Per variant."
    )
    warmup = warmup_field(max_value=probe.WARMUP_MAX, initial=1)

    sweep = forms.BooleanField(
        label="Sweep the size",
        required=False,
        initial=False,
        help_text="Also measure every variant at 4 KiB, 16 KiB, … ×4 up to the size above: a "
        "curve of ns/page against size, with its fitted slope and change point.",
    )

    def clean_size_kib(self) -> int:
        size_kib = self.cleaned_data["size_kib"]
        page_bytes = os.sysconf("SC_PAGESIZE")
        if size_kib * 1024 % page_bytes:
            raise forms.ValidationError(
                f"A map is whole pages: use a multiple of {page_bytes // 1024} KiB."
            )
        return size_kib

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        chosen = {name: data.get(name) for name in VARIANT_FIELDS}
        if not all(chosen.values()):
            return data
        count = len(probe.variants(chosen))
        if count > probe.MAX_VARIANTS:
            self.add_error(
                "populate",
                f"That is {count} variants (sharing × populate × huge pages × layers); choose at "
                f"most {probe.MAX_VARIANTS}.",
            )
            return data
        size_kib, reps, warmup = (data.get(k) for k in ("size_kib", "repetitions", "warmup"))
        if None in (size_kib, reps, warmup):
            return data
        total_bytes = (
            touched_kib(size_kib, bool(data.get("sweep"))) * 1024 * count * (reps + warmup)
        )
        if total_bytes > MAX_TOTAL_BYTES:
            self.add_error(
                "repetitions",
                f"That touches {total_bytes / MIB:,.0f} MiB in all; keep size (with every size "
                f"of a sweep) × variants × (repetitions + warm-up) at or below "
                f"{MAX_TOTAL_BYTES / MIB:,.0f} MiB.",
            )
        kind = data.get("kind")
        if kind:
            needed = needed_memory_bytes(kind, size_kib * 1024)
            host = host_memory_bytes()
            ceiling = min(MEMORY_CEILING_BYTES, host // 2 if host else MEMORY_CEILING_BYTES)
            if needed > ceiling:
                self.add_error(
                    "size_kib",
                    f"This map needs about {needed / MIB:,.0f} MiB of memory in the sandbox "
                    f"(the {'file and its map' if kind == 'file' else 'map'} plus the "
                    f"interpreter); runs here may use at most {ceiling / MIB:,.0f} MiB.",
                )
        return data


def touched_kib(size_kib: int, swept: bool) -> int:
    """KiB one variant's repetition touches: the size, plus every point of a sweep."""
    return size_kib + (sum(probe.sweep_points_kib(size_kib)) if swept else 0)


def chosen_variants(params: Mapping[str, Any]) -> list[probe.Variant]:
    return probe.variants(
        {
            name: params.get(name) or [k for k, _ in choices]
            for name, choices in VARIANT_FIELDS.items()
        }
    )


def _variant_chart(chosen: list[probe.Variant], prefix: str, unit: str, **chart: Any) -> Chart:
    """One series per variant, named ``<prefix><variant id>`` as the probe emits them."""
    return Chart(
        series=tuple(f"{prefix}{v.id}" for v in chosen),
        labels={f"{prefix}{v.id}": f"{v.label} ({unit})" for v in chosen},
        **chart,
    )


def charts(params: Mapping[str, Any]) -> list[Chart]:
    chosen = chosen_variants(params)
    per_repetition = [
        _variant_chart(
            chosen,
            "",
            "ns/page",
            id="touch",
            title="First touch: ns per page, each repetition",
            x_label="repetition",
            y_label="ns / page",
            points=True,
        ),
        _variant_chart(
            chosen,
            "faults-",
            "faults/page",
            id="faults",
            title="Page faults per page touched, each repetition",
            x_label="repetition",
            y_label="faults / page",
            points=True,
        ),
    ]
    if not params.get("sweep"):
        return per_repetition
    sweep = _variant_chart(
        chosen,
        "sweep-",
        "ns/page",
        id="sweep",
        title="First touch against map size (median of the repetitions)",
        x_label="map size (KiB)",
        y_label="ns / page",
        x_log=True,
        y_log=True,
        x_marks=((2048, "2 MiB: one huge page"),),
    )
    return [sweep, *per_repetition]


def _total_mib(params: Mapping[str, Any]) -> float:
    count = len(chosen_variants(params))
    reps = int(params.get("repetitions", 1)) + int(params.get("warmup", 0))
    return touched_kib(int(params["size_kib"]), bool(params.get("sweep"))) / 1024 * count * reps


def wall_s(params: Mapping[str, Any]) -> float:
    return WALL_BASE_S + WALL_S_PER_MIB * _total_mib(params)


def limits(params: Mapping[str, Any]) -> dict[str, Any]:
    """Raised only as far as this run needs, never lowered below the sandbox's defaults."""
    size_bytes = int(params["size_kib"]) * 1024
    kind = params.get("kind", "anonymous")
    raised = {
        "memory_bytes": max(_policy_default("memory_bytes"), needed_memory_bytes(kind, size_bytes)),
        "address_space_bytes": max(
            _policy_default("address_space_bytes"), ADDRESS_SPACE_BASE_BYTES + size_bytes
        ),
        # A first touch is CPU time in the kernel: the CPU limit follows the wall limit.
        "cpu_s": max(_policy_default("cpu_s"), int(wall_s(params))),
    }
    if kind == "file":
        raised["tmpfs_bytes"] = max(_policy_default("tmpfs_bytes"), size_bytes + TMPFS_SLACK_BYTES)
        raised["file_size_bytes"] = max(_policy_default("file_size_bytes"), size_bytes)
    return raised


EXPERIMENT = Experiment(
    slug="mmap",
    title="mmap: memory maps and page faults",
    explanation=(
        "mmap hands out address space, not memory: the kernel only records the range. The first "
        "touch of each page traps into the kernel as a page fault, which finds or makes the page "
        "(a zeroed page, the shared zero page for a read, a page-cache page of the file, a "
        "private copy for a write to a MAP_PRIVATE file map) and maps it. Here a C loop (GIL "
        "released) or Python's mmap module touches every page of a fresh map once, each "
        "repetition, and the page counts the faults that pass took (getrusage, this thread, around "
        "the loop only), the time per page, the RSS it added and the huge pages it got "
        "(AnonHugePages in smaps_rollup). MAP_POPULATE takes the faults inside mmap instead; "
        "MADV_WILLNEED only reads a file ahead into the page cache and maps nothing. For a file "
        "map the file is refilled before each repetition and read back with pread after the "
        "touch, after msync and after munmap: a MAP_SHARED write is in the file, a MAP_PRIVATE "
        "one never is. The file lives on the sandbox's /tmp, a tmpfs: its page cache is its "
        "storage, so msync has no disk to write to. Python's mmap.mmap(-1, n) is MAP_SHARED by "
        "default (shmem-backed); this experiment passes the flags explicitly. Sweeping the "
        "size draws ns/page against the map size, with the fitted µs per MiB and the size "
        "after which the curve changes."
    ),
    syscalls=("mmap", "madvise", "munmap", "msync", "getrusage", "pread64", "pwrite64"),
    look_for=(
        "One fault per page without populate, and almost none with MAP_POPULATE — whose mmap call "
        "now takes the time instead. MADV_HUGEPAGE (where THP is 'madvise' or 'always') turning "
        "512 faults into one per 2 MiB, AnonHugePages going up, and the first touch costing the "
        "zeroing of 2 MiB at once. MAP_SHARED anonymous memory faulting dearer than MAP_PRIVATE. "
        "File read faults taking fewer faults than pages: the kernel maps neighbouring page-cache "
        "pages on each fault (fault-around). MAP_POPULATE on a shared map of a file on a disk "
        "filesystem still taking a write fault per page (its pages are mapped read-only until "
        "written, so the kernel learns which are dirty); on tmpfs it does not. The file read "
        "back: every written page changed for MAP_SHARED, none for MAP_PRIVATE."
    ),
    form_class=MmapForm,
    probe="sysops.experiments.mmap.probe",
    charts=charts,
    wall_s=wall_s,
    limits=limits,
    # One small pass of every variant: each mmap, madvise, msync and munmap in the trace.
    sampled_params=lambda params: {
        **params,
        "size_kib": min(int(params["size_kib"]), 1024),
        "repetitions": 1,
        "warmup": 0,
        "sweep": False,
    },
)
