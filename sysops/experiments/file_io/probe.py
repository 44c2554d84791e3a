"""file-io: write and read a file in one mode (buffered, fsync'd, fdatasync'd, O_SYNC, O_DSYNC,
O_DIRECT, from the page cache, cold from the disk), timing every operation.

Sandbox side: standard library, ``sysops.worker`` and ``sysops.native`` only. The file lives in
the run's scratch directory (a real disk filesystem bound at /scratch by the runner; the
sandbox's /tmp is a tmpfs). It is written in full and synced first, untimed, so the measured
writes overwrite allocated blocks: the figure is the sync, not block allocation. Operations go
in batches; batches alternate between the layers (Python os, native C) so drift hits both
alike, and each batch becomes one live chart point per statistic (its median and its maximum).
"""

from __future__ import annotations

import contextlib
import errno
import math
import mmap
import os
import time
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import hostfacts, params
from sysops.worker.toolkit.rows import dist_row, errno_row, row, with_ratios
from sysops.worker.toolkit.stats import LogHistogram, SortedRuns
from sysops.worker.toolkit.timing import SampleFlusher, gc_paused

# Where the runner binds the run's scratch directory (sysops.sandbox.policy.SCRATCH_MOUNT; a
# probe imports nothing of the sandbox package).
SCRATCH_MOUNT = "/scratch"
FILE_NAME = "file-io.dat"

MODES = ("buffered", "fsync", "fdatasync", "osync", "odsync", "odirect", "read_cached", "read_cold")
MODE_LABELS = {
    "buffered": "buffered write",
    "fsync": "write + fsync",
    "fdatasync": "write + fdatasync",
    "osync": "O_SYNC write",
    "odsync": "O_DSYNC write",
    "odirect": "O_DIRECT write",
    "read_cached": "read from the page cache",
    "read_cold": "cold read (posix_fadvise DONTNEED first)",
}
# (open flags, the operation the native module times) per mode.
MODE_OPS = {
    "buffered": (os.O_WRONLY, "write"),
    "fsync": (os.O_WRONLY, "write_fsync"),
    "fdatasync": (os.O_WRONLY, "write_fdatasync"),
    "osync": (os.O_WRONLY | os.O_SYNC, "write"),
    "odsync": (os.O_WRONLY | os.O_DSYNC, "write"),
    "odirect": (os.O_WRONLY | os.O_DIRECT, "write"),
    "read_cached": (os.O_RDONLY, "read"),
    "read_cold": (os.O_RDONLY, "read_cold"),
}
LAYERS = ("python", "native")
LAYER_LABELS = {"python": "Python os", "native": "native C"}

# Defensive bounds, as wide as the form's: a probe never runs unbounded.
BLOCK_MIN_BYTES = 512
BLOCK_MAX_BYTES = 1 << 20
FILE_MAX_MIB = 256
OPERATIONS_MAX = 100_000
WARMUP_MAX = 1_000
# About this many batches per layer: one live chart point each (median and max of its batch).
CHART_BATCHES = 200
PREPARE_CHUNK_BYTES = 1 << 20
HISTOGRAM_BUCKETS_PER_DECADE = 10
NS_PER_US = 1_000
PANEL_STATS = ("n", "min", "median", "p90", "p99", "p999", "max")
SECCOMP_NOTE = (
    "Measured inside the sandbox: its seccomp filter adds about 10–60 ns to every syscall, "
    "negligible against a disk but not against a page-cache copy of a small block."
)


@dataclass
class Layer:
    name: str
    latencies: SortedRuns = field(default_factory=SortedRuns)
    histogram: LogHistogram = field(
        default_factory=lambda: LogHistogram(HISTOGRAM_BUCKETS_PER_DECADE)
    )
    warmup: int = 0
    done: int = 0  # operations run, warm-up included
    failure: int = 0  # the errno (or -1: a short transfer) that stopped it


def run(params_in: Mapping[str, Any], emit: Emitter) -> None:
    p = _checked(params_in)
    directory = p["directory"]
    fs = hostfacts.filesystem(directory)
    backing = _backing_facts(directory)
    fs_rows = _filesystem_rows(directory, fs, backing)
    emit.log(f"the file goes in {directory}: {_fs_name(fs, backing)}")
    if not (fs["is_disk"] and (backing is None or backing.get("is_disk", True))):
        emit.log(
            f"{directory} is on {_fs_name(fs, backing)}: not a disk; these figures measure memory",
            level="warning",
        )

    path = os.path.join(directory, FILE_NAME)
    emit.phase("prepare")
    emit.progress(0.0, f"writing the {p['file_bytes'] >> 20} MiB file and syncing it")
    try:
        _prepare(path, p["file_bytes"])
        refusal = _direct_io_refusal(path, p)
        if refusal is not None:
            emit.result([refusal, *fs_rows])
            return
        with _opened(path, p["mode"]) as fd:
            if p["mode"] == "read_cached":
                _read_through(fd, p["file_bytes"])  # the cache is what this mode measures
            layers = _measure(fd, p, emit)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    emit.result([*_rows(layers, p), *fs_rows])
    for layer in layers.values():
        for low, _, count in layer.histogram.buckets():
            emit.sample(series=f"{layer.name}_histogram", x=round(low, 3), y=count)


def _checked(raw: Mapping[str, Any]) -> dict[str, Any]:
    mode = params.choice(raw, "mode", MODES)
    block = params.bounded_int(raw, "block_bytes", BLOCK_MIN_BYTES, BLOCK_MAX_BYTES)
    file_mib = params.bounded_int(raw, "file_mib", 1, FILE_MAX_MIB)
    # Whole blocks only: every operation moves a full block at a block-aligned offset.
    file_bytes = (file_mib << 20) // block * block
    if file_bytes < block:
        raise ValueError(f"a {file_mib} MiB file cannot hold one {block}-byte block")
    directory = raw.get("directory", SCRATCH_MOUNT)
    if not isinstance(directory, str) or not os.path.isabs(directory):
        raise ValueError(f"directory must be an absolute path, got {directory!r}")
    if not os.path.isdir(directory):
        raise ValueError(
            f"no directory {directory}: this experiment needs the scratch directory the runner "
            "binds there (a real disk; the sandbox's own /tmp is a tmpfs)"
        )
    return {
        "mode": mode,
        "block_bytes": block,
        "file_bytes": file_bytes,
        "operations": params.bounded_int(raw, "operations", 1, OPERATIONS_MAX),
        "warmup": params.bounded_int(raw, "warmup", 0, WARMUP_MAX, 10),
        "layers": params.subset(raw, "layers", LAYERS),
        "misalign": params.flag(raw, "misalign"),
        "directory": directory,
    }


def _backing_facts(directory: str) -> dict[str, Any] | None:
    """What the runner says is behind the scratch mount (the disk under its loop device)."""
    facts = hostfacts.scratch_facts(directory) or {}
    backing = facts.get("backing")
    return {**backing, "loop_direct_io": facts.get("loop_direct_io")} if backing else None


def _fs_name(fs: Mapping[str, Any], backing: Mapping[str, Any] | None) -> str:
    name = f"{fs['type'] or 'an unknown filesystem'} ({fs['device'] or 'no device'})"
    if backing:
        name += f", an image on {backing.get('type')} ({backing.get('device')})"
    return name


def _filesystem_rows(
    directory: str, fs: Mapping[str, Any], backing: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    disk = fs["is_disk"] and (backing is None or backing.get("is_disk", True))
    if disk:
        verdict = "yes"
        note = (
            f"{fs['type']} by statfs: fsync, O_SYNC and O_DIRECT reach a block device here, so "
            "the figures are a disk's."
        )
        if backing:
            note += (
                f" It is the run's own ext4 image on {backing.get('type')} "
                f"{backing.get('device')}, through loop device {fs['device']} (direct I/O "
                f"{'on' if backing.get('loop_direct_io') else 'off'}), which adds its own hop "
                "to every flush, direct write and cold read (tens of µs), and more on a host "
                "whose CPUs are busy: the loop's kernel worker waits for one."
            )
    else:
        verdict = "NO"
        note = (
            f"{_fs_name(fs, backing)} by statfs is not a disk: fsync is a no-op there and "
            "O_DIRECT (which tmpfs accepts on recent kernels, misaligned buffers included) "
            "copies memory. The run works, and every figure measures RAM, not a disk."
        )
    where = {
        "panel": "file_io_disk",
        "is_disk": disk,
        "directory": directory,
        "type": fs["type"],
        "device": fs["device"],
        "backing": f"{backing.get('type')} on {backing.get('device')}" if backing else None,
    }
    rows = [
        row("measures a disk", verdict, "", note, detail=where),
        row("scratch filesystem", fs["type"] or "unknown", "", f"statfs magic {fs['magic']}"),
        row(
            "scratch device",
            fs["device"] or "unknown",
            "",
            f"mounted at {fs['mount_point']} (seen from inside the sandbox as {directory})",
        ),
    ]
    if backing:
        rows.append(
            row(
                "disk behind the scratch image",
                f"{backing.get('type')} on {backing.get('device')}",
                "",
                "where the runner keeps the run's ext4 image (var/ of the app)",
            )
        )
    rows.append(row("kernel", hostfacts.kernel_release(), "", "host fact"))
    return rows


def _prepare(path: str, file_bytes: int) -> None:
    """The whole file written and synced, so measured operations find its blocks allocated."""
    chunk = bytes(range(256)) * (PREPARE_CHUNK_BYTES // 256)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        written = 0
        while written < file_bytes:
            written += os.write(fd, chunk[: min(len(chunk), file_bytes - written)])
        os.fsync(fd)
    finally:
        os.close(fd)


def _direct_io_refusal(path: str, p: Mapping[str, Any]) -> dict[str, Any] | None:
    """For O_DIRECT: the row that explains why the kernel will refuse (EINVAL), or None."""
    if p["mode"] != "odirect":
        return None
    alignment = hostfacts.dio_alignment(path)
    if alignment is None:
        return None  # the filesystem does not say (tmpfs): the writes themselves will tell
    if alignment["offset_bytes"] == 0:
        return errno_row(
            "O_DIRECT write",
            errno.EINVAL,
            "this filesystem does not support O_DIRECT for this file (statx: no alignment).",
        )
    if p["block_bytes"] % alignment["offset_bytes"]:
        return errno_row(
            "O_DIRECT write",
            errno.EINVAL,
            f"O_DIRECT transfers must be multiples of {alignment['offset_bytes']} bytes here "
            f"(statx STATX_DIOALIGN); {p['block_bytes']} is not. Nothing was measured.",
        )
    return None


@contextlib.contextmanager
def _opened(path: str, mode: str) -> Iterator[int]:
    flags, _ = MODE_OPS[mode]
    fd = os.open(path, flags | os.O_CLOEXEC)
    try:
        if mode == "read_cold":
            # No readahead: each read should fetch its own block from the disk, not the one a
            # previous read already pulled in.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        yield fd
    finally:
        os.close(fd)


def _read_through(fd: int, file_bytes: int) -> None:
    offset = 0
    while offset < file_bytes:
        data = os.pread(fd, PREPARE_CHUNK_BYTES, offset)
        if not data:
            break
        offset += len(data)


def _measure(fd: int, p: Mapping[str, Any], emit: Emitter) -> dict[str, Layer]:
    block, operations, warmup = p["block_bytes"], p["operations"], p["warmup"]
    op = MODE_OPS[p["mode"]][1]
    # An anonymous map is page-aligned, as O_DIRECT needs; "misalign" starts the buffer one
    # byte in, to show the kernel's refusal. Private, like the malloc'd buffers of C programs
    # and fio (Python's mmap(-1) alone would be MAP_SHARED, shmem pages).
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    backing = mmap.mmap(-1, block + mmap.PAGESIZE, flags=flags)
    backing.write(bytes(range(256)) * (len(backing) // 256))
    start = 1 if p["misalign"] else 0
    buffer = memoryview(backing)[start : start + block]
    runners = {name: _runner(name, fd, op, buffer, block, p["file_bytes"]) for name in p["layers"]}
    layers = {name: Layer(name, warmup=warmup) for name in p["layers"]}
    total = warmup + operations
    batch_ops = max(1, math.ceil(operations / CHART_BATCHES))
    batches = ([warmup] if warmup else []) + [batch_ops] * math.ceil(operations / batch_ops)
    batches[-1] -= sum(batches) - total
    flusher = SampleFlusher(emit)
    emit.phase("measure")
    try:
        with gc_paused():
            for count in batches:
                for name, run_batch in runners.items():
                    layer = layers[name]
                    if layer.failure:
                        continue
                    latencies, failure = run_batch(layer.done, count)
                    if layer.done >= warmup:
                        _record(layer, latencies, flusher)
                    layer.done += len(latencies)
                    layer.failure = failure
                done = min(layer.done for layer in layers.values())
                if all(layer.failure for layer in layers.values()):
                    break
                flusher.maybe_flush(done / total, f"{done:,}/{total:,} operations")
    finally:
        buffer.release()
        backing.close()
    flusher.flush(1.0, "done")
    return layers


def _record(layer: Layer, latencies: array, flusher: SampleFlusher) -> None:
    if not latencies:
        return
    layer.latencies.add(latencies)
    for value in latencies:
        layer.histogram.add(value / NS_PER_US)
    ordered = sorted(latencies)
    x = layer.done - layer.warmup + len(latencies)  # operations measured so far
    flusher.add(f"{layer.name}_median", x, round(ordered[len(ordered) // 2] / NS_PER_US, 3))
    flusher.add(f"{layer.name}_max", x, round(ordered[-1] / NS_PER_US, 3))


Batch = Callable[[int, int], tuple[array, int]]


def _runner(layer: str, fd: int, op: str, buffer: memoryview, block: int, file_bytes: int) -> Batch:
    """``batch(first_op, count) -> (latencies in ns, failure)`` for one layer; failure is the
    errno that stopped the batch, -1 for a short transfer, 0 when all ran."""
    if layer == "native":
        # Imported here so the Python layer runs even without the built extension.
        from sysops.native import load

        run_ops = load("_fileio").run_ops

        def native_batch(first_op: int, count: int) -> tuple[array, int]:
            latencies = array("q", bytes(8 * count))
            done, failure = run_ops(fd, op, buffer, block, file_bytes, first_op, latencies)
            return latencies[:done], failure

        return native_batch

    slots = file_bytes // block
    transfer = _python_transfer(fd, op, buffer)
    perf_counter_ns = time.perf_counter_ns
    fadvise, dontneed = os.posix_fadvise, os.POSIX_FADV_DONTNEED
    cold = op == "read_cold"

    def python_batch(first_op: int, count: int) -> tuple[array, int]:
        latencies = array("q")
        append = latencies.append
        try:
            for i in range(first_op, first_op + count):
                offset = i % slots * block
                if cold:
                    fadvise(fd, offset, block, dontneed)
                start_ns = perf_counter_ns()
                moved = transfer(offset)
                elapsed_ns = perf_counter_ns() - start_ns
                if moved != block:
                    return latencies, -1
                append(elapsed_ns)
        except OSError as exc:
            return latencies, exc.errno or -1
        return latencies, 0

    return python_batch


def _python_transfer(fd: int, op: str, buffer: memoryview) -> Callable[[int], int]:
    """One operation at an offset in os calls, returning the bytes moved. preadv reads into
    the aligned buffer: os.pread would allocate a new bytes object every call."""
    pwrite, preadv, fsync, fdatasync = os.pwrite, os.preadv, os.fsync, os.fdatasync
    buffers = [buffer]
    if op in ("read", "read_cold"):
        return lambda offset: preadv(fd, buffers, offset)
    if op == "write":
        return lambda offset: pwrite(fd, buffer, offset)
    sync = fsync if op == "write_fsync" else fdatasync

    def write_and_sync(offset: int) -> int:
        moved = pwrite(fd, buffer, offset)
        sync(fd)
        return moved

    return write_and_sync


def _rows(layers: Mapping[str, Layer], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    label = MODE_LABELS[p["mode"]]
    block = p["block_bytes"]
    latency_rows: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for name, layer in layers.items():
        layer_label = LAYER_LABELS[name]
        if layer.failure:
            rows.append(_failure_row(layer, p))
        if not layer.latencies.count:
            continue
        dist = layer.latencies.distribution().scaled(1 / NS_PER_US)
        note = (
            f"{layer.latencies.count:,} operations of {block:,} bytes after "
            f"{min(p['warmup'], layer.done):,} warm-up, each timed alone "
            f"({_timing_note(name)}); {_mode_note(p['mode'])}"
        )
        latency_rows.append(
            dist_row(f"{label} latency ({layer_label})", dist, "µs", note, layer=name)
        )
        total_ns = sum(sum(run) for run in layer.latencies.runs)
        rows.append(
            row(
                f"throughput ({layer_label})",
                round(layer.latencies.count * block / total_ns * 1e3, 2),
                "MB/s",
                "bytes moved / time spent inside the timed operations (MB = 10^6 bytes)",
                layer=name,
            )
        )
    if latency_rows:
        # The table has no p99.9 column; the panel gives every percentile the runs support.
        latency_rows[0]["detail"] = {
            "panel": "file_io_latency",
            "layers": [
                {"layer": LAYER_LABELS[r["layer"]]}
                | {stat: r["dist"].get(stat) for stat in PANEL_STATS}
                for r in latency_rows
            ],
        }
    # Ratios between the latency rows only: a throughput over a latency means nothing.
    return [*with_ratios(latency_rows), *rows, row("seccomp filter", "on", "", SECCOMP_NOTE)]


def _timing_note(layer: str) -> str:
    if layer == "native":
        return "CLOCK_MONOTONIC around each call in a C loop, GIL released"
    return "time.perf_counter_ns around each os call in a Python loop: the interpreter's cost"


def _mode_note(mode: str) -> str:
    return {
        "buffered": "write(2) copies into the page cache and returns; the disk is written later.",
        "fsync": "each write then fsync(2): data and metadata reach stable storage.",
        "fdatasync": "each write then fdatasync(2): data, and only the metadata needed to read it.",
        "osync": "opened O_SYNC: each write returns once data and metadata are on the disk.",
        "odsync": "opened O_DSYNC: each write returns once its data is on the disk.",
        "odirect": "opened O_DIRECT: the page cache is bypassed (DMA from the aligned buffer); "
        "without a sync the disk's own cache may still hold the data.",
        "read_cached": "the file was read once first: each pread is a page-cache copy.",
        "read_cold": "each block dropped from the page cache (posix_fadvise DONTNEED, untimed) and "
        "readahead off (POSIX_FADV_RANDOM): each pread goes to the disk.",
    }[mode]


def _failure_row(layer: Layer, p: Mapping[str, Any]) -> dict[str, Any]:
    metric = f"{MODE_LABELS[p['mode']]} ({LAYER_LABELS[layer.name]})"
    if layer.failure == -1:
        return row(metric, "short transfer", "", f"stopped after {layer.done:,} operations")
    if layer.failure == errno.EINVAL and p["mode"] == "odirect":
        note = (
            "the kernel refused the O_DIRECT write: the buffer's address, the offset and the "
            "length must all be multiples of the device's logical block size."
        )
        if p["misalign"]:
            note += " This buffer starts one byte into a page, as asked (misalign)."
    elif layer.failure == errno.ENOSPC:
        note = "the scratch filesystem is full: its size is the run's cap."
    else:
        note = f"stopped after {layer.done:,} operations."
    return errno_row(metric, layer.failure, note, layer=layer.name)
