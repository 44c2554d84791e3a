"""The file-io probe run directly (outside the sandbox) on a real scratch disk."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sysops.agent import scratch
from sysops.experiments.file_io import probe
from tests.probes.harness import run_probe

BASE = {
    "block_bytes": 4096,
    "file_mib": 2,
    "operations": 200,
    "warmup": 5,
    "layers": ["python", "native"],
}
RUN_IDS = itertools.count(45_000)


@pytest.fixture
def disk() -> Iterator[str]:
    """A scratch disk as the runner makes one (this process's uid owns it)."""
    if os.geteuid() != 0:
        pytest.skip("a scratch disk is a loop-mounted image: it needs root")
    parent = Path(tempfile.mkdtemp(prefix="sysops-test-scratch-"))
    made = scratch.create(next(RUN_IDS), 8 << 20, parent, os.geteuid())
    yield str(made.mount_point)
    assert scratch.remove(made) == []
    shutil.rmtree(parent)


def test_every_operation_is_timed_in_both_layers(disk):
    events = run_probe(probe.run, {**BASE, "mode": "buffered", "directory": disk})
    rows = events.rows()
    for layer, label in (("python", "Python os"), ("native", "native C")):
        latency = rows[f"buffered write latency ({label})"]
        assert latency["layer"] == layer and latency["unit"] == "µs"
        assert latency["dist"]["n"] == 200
        assert latency["dist"]["min"] <= latency["dist"]["median"] <= latency["dist"]["p99"]
        assert rows[f"throughput ({label})"]["value"] > 0
        # The live chart: a median and a max per batch, x in operations measured.
        medians = events.samples(f"{layer}_median")
        assert medians and max(s["x"] for s in medians) == 200
        assert len(events.samples(f"{layer}_max")) == len(medians)
        # The histogram holds every measured operation once.
        assert sum(s["y"] for s in events.samples(f"{layer}_histogram")) == 200
    assert rows["buffered write latency (native C)"]["ratio_to_native"] == 1
    assert rows["measures a disk"]["value"] == "yes"
    assert rows["disk behind the scratch image"]["value"].startswith("ext4 on ")


def test_a_cold_read_goes_to_the_disk_and_a_cached_one_does_not(disk):
    medians = {}
    for mode in ("read_cached", "read_cold"):
        events = run_probe(
            probe.run, {**BASE, "mode": mode, "layers": ["native"], "directory": disk}
        )
        (latency,) = [r for m, r in events.rows().items() if m.endswith("latency (native C)")]
        medians[mode] = latency["dist"]["median"]
    # A memory copy of 4 KiB against a read from the device, with wide margins.
    assert medians["read_cold"] > 3 * medians["read_cached"]


def test_o_direct_with_a_block_off_the_disk_alignment_is_explained(disk):
    events = run_probe(
        probe.run, {**BASE, "mode": "odirect", "block_bytes": 1000, "directory": disk}
    )
    refused = events.rows()["O_DIRECT write"]
    assert refused["value"] == 22 and refused["note"].startswith("EINVAL")
    assert "STATX_DIOALIGN" in refused["note"]


@pytest.mark.parametrize(
    "bad",
    [
        {"operations": 10**9},
        {"block_bytes": 1},
        {"file_mib": 100_000},
        {"mode": "mmap"},
        {"layers": []},
        {"directory": "relative/dir"},
    ],
)
def test_it_refuses_unbounded_or_unknown_params(bad):
    with pytest.raises(ValueError):
        probe._checked({**BASE, "mode": "buffered", "directory": "/", **bad})
