from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django import forms
from django.conf import settings

from sysops.experiments.base import Chart, Experiment, ExperimentForm
from sysops.experiments.file_io.probe import (
    BLOCK_MAX_BYTES,
    BLOCK_MIN_BYTES,
    CHART_BATCHES,
    FILE_MAX_MIB,
    LAYER_LABELS,
    MODE_LABELS,
    OPERATIONS_MAX,
    WARMUP_MAX,
)
from sysops.worker.toolkit import hostfacts

MIB = 1 << 20
FILE_SIZES_MIB = [(mib, f"{mib} MiB") for mib in (1, 2, 4, 8, 16, 32, 64, 128, FILE_MAX_MIB)]
# Modes where one operation waits for the disk: fewer of them fit in a run.
DISK_WAIT_MODES = ("fsync", "fdatasync", "osync", "odsync", "odirect", "read_cold")
DISK_WAIT_OPERATIONS_MAX = 20_000
# Bytes moved per layer, whatever the mode: bounds the page-cache modes' memory copying.
TOTAL_BYTES_MAX = 2 << 30
# Generous per-operation bounds for the wall limit (a busy VM disk takes milliseconds).
DISK_WAIT_OP_MAX_S = 0.02
MEMORY_OP_MIN_S = 1e-4
MEMORY_BYTES_PER_S = 50e6
PREPARE_BYTES_PER_S = 20e6
WALL_BASE_S = 30.0
# The file, and room for the probe's own small files around it.
SCRATCH_SLACK_BYTES = 1 << 20
# Used when the disk's logical block size cannot be read: a multiple of 4096 suits both sizes.
FALLBACK_LOGICAL_BLOCK_BYTES = 4096


def scratch_logical_block_bytes() -> int:
    """O_DIRECT's unit on the disk that will hold the scratch image (its loop device, with
    direct I/O, takes the same logical block size)."""
    path = Path(settings.SYSOPS_SCRATCH_DIR)
    while not path.exists() and path != path.parent:
        path = path.parent
    return hostfacts.logical_block_size(path) or FALLBACK_LOGICAL_BLOCK_BYTES


class FileIoForm(ExperimentForm):
    mode = forms.ChoiceField(choices=list(MODE_LABELS.items()), initial="fsync")
    block_bytes = forms.IntegerField(
        label="Block size (bytes)",
        min_value=BLOCK_MIN_BYTES,
        max_value=BLOCK_MAX_BYTES,
        initial=4096,
        help_text="Bytes per operation, 512 B … 1 MiB; O_DIRECT needs a multiple of the disk's "
        "logical block size.",
    )
    file_mib = forms.TypedChoiceField(
        label="File size",
        choices=FILE_SIZES_MIB,
        coerce=int,
        initial=16,
        help_text="Operations walk through the file block by block and wrap around.",
    )
    operations = forms.IntegerField(
        min_value=1,
        max_value=OPERATIONS_MAX,
        initial=2_000,
        help_text=f"Timed operations per layer (at most {DISK_WAIT_OPERATIONS_MAX:,} in the "
        "modes that wait for the disk).",
    )
    warmup = forms.IntegerField(
        label="Warm-up",
        min_value=0,
        max_value=WARMUP_MAX,
        initial=20,
        help_text="Operations run first and discarded.",
    )
    layers = forms.MultipleChoiceField(
        choices=list(LAYER_LABELS.items()),
        initial=["native"],
        widget=forms.CheckboxSelectMultiple,
        help_text="Both: batches alternate between them.",
    )
    misalign = forms.BooleanField(
        label="Misalign the buffer (O_DIRECT)",
        required=False,
        help_text="Start the buffer one byte into a page, to see the kernel refuse O_DIRECT.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        mode, block, ops = data.get("mode"), data.get("block_bytes"), data.get("operations")
        if mode == "odirect" and block:
            unit = scratch_logical_block_bytes()
            if block % unit:
                self.add_error(
                    "block_bytes",
                    f"O_DIRECT needs a multiple of the disk's logical block size ({unit} bytes "
                    f"here): try {max(unit, block // unit * unit)}.",
                )
        if data.get("misalign") and mode != "odirect":
            self.add_error("misalign", "Misalignment matters only to O_DIRECT.")
        if mode in DISK_WAIT_MODES and ops and ops > DISK_WAIT_OPERATIONS_MAX:
            self.add_error(
                "operations",
                f"At most {DISK_WAIT_OPERATIONS_MAX:,} operations in a mode that waits for the "
                "disk.",
            )
        if block and ops and ops * block > TOTAL_BYTES_MAX:
            self.add_error(
                "operations",
                f"That moves {ops * block / MIB:,.0f} MiB per layer; keep operations × block size "
                f"at or below {TOTAL_BYTES_MAX // MIB:,} MiB.",
            )
        return data


def batch_ops(params: Mapping[str, Any]) -> int:
    return max(1, math.ceil(int(params.get("operations") or 1) / CHART_BATCHES))


def charts(params: Mapping[str, Any]) -> list[Chart]:
    layers = params.get("layers") or list(LAYER_LABELS)
    per_batch = batch_ops(params)
    batch = "each operation" if per_batch == 1 else f"each batch of {per_batch:,} operations"
    labels = {}
    for layer in layers:
        labels[f"{layer}_median"] = f"{LAYER_LABELS[layer]}: median of {batch} (µs)"
        labels[f"{layer}_max"] = f"{LAYER_LABELS[layer]}: slowest of {batch} (µs)"
        labels[f"{layer}_histogram"] = f"{LAYER_LABELS[layer]} (operations)"
    return [
        Chart(
            id="latency",
            title=f"Latency per operation, live: one point per statistic for {batch}",
            x_label="operations measured",
            y_label="latency (µs)",
            series=tuple(f"{layer}_{stat}" for layer in layers for stat in ("median", "max")),
            labels=labels,
            points=True,
            y_log=True,
        ),
        Chart(
            id="histogram",
            title="Latency histogram (10 buckets per decade; x is a bucket's lower bound)",
            x_label="latency (µs)",
            y_label="operations",
            series=tuple(f"{layer}_histogram" for layer in layers),
            labels=labels,
            x_log=True,
        ),
    ]


def wall_s(params: Mapping[str, Any]) -> float:
    block = int(params["block_bytes"])
    if params["mode"] in DISK_WAIT_MODES:
        per_op_s = DISK_WAIT_OP_MAX_S
    else:
        per_op_s = max(MEMORY_OP_MIN_S, block / MEMORY_BYTES_PER_S)
    ops = (int(params["operations"]) + int(params["warmup"])) * len(params["layers"])
    prepare_s = 2 * int(params["file_mib"]) * MIB / PREPARE_BYTES_PER_S
    return WALL_BASE_S + prepare_s + ops * per_op_s


def scratch_bytes(params: Mapping[str, Any]) -> int:
    return int(params["file_mib"]) * MIB + SCRATCH_SLACK_BYTES


EXPERIMENT = Experiment(
    slug="file-io",
    title="File I/O: write, read and the sync modes",
    explanation=(
        "A file in the run's own scratch directory on a real disk (an ext4 image the runner "
        "mounts for the run; the sandbox's /tmp is a tmpfs, where fsync does nothing) is "
        "written in full and synced, then written or read block by block in one mode: plain "
        "buffered writes, each write followed by fsync or fdatasync, a file opened O_SYNC, "
        "O_DSYNC or O_DIRECT, reads served by the page cache, or cold reads of blocks just "
        "dropped from it with posix_fadvise(DONTNEED). Every operation is timed on its own, "
        "from Python's os module or from a C loop; the table gives min / median / p99 / p99.9 "
        "/ max in µs and the throughput, the histogram the whole distribution, and the page "
        "names the filesystem (statfs) and the device the figures come from."
    ),
    syscalls=(
        "openat",
        "pwrite",
        "pread",
        "preadv",
        "fsync",
        "fdatasync",
        "posix_fadvise",
        "statfs",
        "statx",
    ),
    look_for=(
        "The gap between a buffered write (a memory copy, microseconds) and one that waits for "
        "the disk (fsync, O_SYNC: tens of µs to milliseconds): that gap is what durability "
        "costs. fdatasync and O_DSYNC skip metadata the data does not need and can be cheaper "
        "than fsync and O_SYNC. O_DIRECT skips the page cache but is not a sync. The tail "
        "(p99, p99.9, max) of the disk modes is far from the median: journal commits and the "
        "device's own flushes. Python's layer adds about a microsecond per call, which only "
        "shows in the page-cache modes. And if the page says the filesystem is not a disk, "
        "every figure measures memory."
    ),
    form_class=FileIoForm,
    probe="sysops.experiments.file_io.probe",
    charts=charts,
    wall_s=wall_s,
    limits=lambda params: {"file_size_bytes": scratch_bytes(params), "cpu_s": 120},
    scratch_bytes=scratch_bytes,
    # A handful of operations on a small file show each call without a flood of lines.
    sampled_params=lambda params: {
        **params,
        "operations": min(int(params["operations"]), 20),
        "warmup": 0,
        "file_mib": 1,
    },
)
