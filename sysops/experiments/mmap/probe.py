"""mmap: what a memory map costs, and where the cost lands: the mmap call, the first touch of
each page (a page fault), munmap; for a file map, msync and what reaches the file.

Sandbox side: standard library, ``sysops.native`` and the probe toolkit only. A variant is one
combination of layer (the C touch loop in ``_mem``, or Python's ``mmap`` module), sharing
(MAP_PRIVATE / MAP_SHARED), populate (none / MAP_POPULATE / MADV_WILLNEED) and huge-page advice.
Each repetition maps, advises, touches every page once, reads RSS and huge pages, (for a file)
reads the file back and msyncs, and unmaps; repetitions are interleaved across variants, so
drift hits all alike.
"""

from __future__ import annotations

import mmap
import os
import random
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import hostfacts
from sysops.worker.toolkit.memory import counting_faults, rss_bytes
from sysops.worker.toolkit.params import bounded_int, choice, flag, subset
from sysops.worker.toolkit.rows import dist_row, facts_rows, row
from sysops.worker.toolkit.stats import Distribution
from sysops.worker.toolkit.sweep import change_point, slope_row_fields, sweep
from sysops.worker.toolkit.timing import SampleFlusher, gc_paused

KINDS = ("anonymous", "file")
SHARINGS = ("private", "shared")
PATTERNS = ("sequential", "random", "page")
ACCESSES = ("write", "read")
POPULATES = ("none", "map_populate", "willneed")
THPS = ("default", "hugepage", "nohugepage")
LAYERS = ("native", "python")

LABELS = {
    "native": "C",
    "python": "Python mmap",
    "private": "MAP_PRIVATE",
    "shared": "MAP_SHARED",
    "none": "",
    "map_populate": "MAP_POPULATE",
    "willneed": "MADV_WILLNEED",
    "default": "",
    "hugepage": "MADV_HUGEPAGE",
    "nohugepage": "MADV_NOHUGEPAGE",
}
ADVICE = {
    "willneed": mmap.MADV_WILLNEED,
    "hugepage": mmap.MADV_HUGEPAGE,
    "nohugepage": mmap.MADV_NOHUGEPAGE,
}
# Defensive bounds, the web form's own: a probe must never run unbounded.
SIZE_KIB_MIN = 4
SIZE_KIB_MAX = 256 * 1024
REPETITIONS_MAX = 50
WARMUP_MAX = 5
MAX_VARIANTS = 12
FILE_PATH = "/tmp/mmap-experiment.bin"  # the sandbox's private tmpfs
FILL_BYTE = 0x66  # the file's content before each repetition; a write leaves TOUCH_BYTE
CHUNK_BYTES = 1 << 20
SEED = 20240601  # the random pattern's page order: the same in every repetition and layer


@dataclass(frozen=True)
class Variant:
    layer: str
    sharing: str
    populate: str
    thp: str

    @property
    def id(self) -> str:
        return f"{self.layer}-{self.sharing}-{self.populate}-{self.thp}"

    @property
    def label(self) -> str:
        parts = (LABELS[self.layer], LABELS[self.sharing], LABELS[self.populate], LABELS[self.thp])
        return " ".join(part for part in parts if part)


def variants(params: Mapping[str, Any]) -> list[Variant]:
    """Every combination the form asked for, layers varying fastest."""
    return [
        Variant(layer, sharing, populate, thp)
        for sharing, populate, thp, layer in product(
            params["sharing"], params["populate"], params["thp"], params["layers"]
        )
    ]


@dataclass
class Samples:
    """One variant's measured repetitions."""

    touch_ns_per_page: list[float] = field(default_factory=list)
    faults_per_page: list[float] = field(default_factory=list)
    minor: list[int] = field(default_factory=list)
    major: list[int] = field(default_factory=list)
    map_us: list[float] = field(default_factory=list)
    munmap_us: list[float] = field(default_factory=list)
    msync_us: list[float] = field(default_factory=list)
    rss_growth_mib: list[float] = field(default_factory=list)
    huge_mib: list[float] = field(default_factory=list)
    changed_before_msync: list[int] = field(default_factory=list)
    changed_after: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Config:
    kind: str
    size_bytes: int
    pattern: str
    write: bool
    repetitions: int
    warmup: int
    page_bytes: int
    sweep: bool = False


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    config, chosen = _checked(params)
    if len(chosen) > MAX_VARIANTS:
        raise ValueError(f"{len(chosen)} variants: at most {MAX_VARIANTS}")
    fd = _open_file(config) if config.kind == "file" else -1
    try:
        emit.log(
            f"{config.kind} map of {config.size_bytes >> 10:,} KiB, {config.pattern} "
            f"{'writes' if config.write else 'reads'}, {len(chosen)} variants, "
            f"{config.warmup} warm-up + {config.repetitions} measured repetitions"
        )
        measured = _measure_all(config, chosen, fd, emit)
        swept = _sweep(config, chosen, fd, emit) if config.sweep else {}
    finally:
        if fd >= 0:
            os.close(fd)
            os.unlink(FILE_PATH)
    emit.result(_rows(config, chosen, measured) + _sweep_rows(chosen, swept))


def _checked(params: Mapping[str, Any]) -> tuple[Config, list[Variant]]:
    page_bytes = hostfacts.page_size()
    size_kib = bounded_int(params, "size_kib", SIZE_KIB_MIN, SIZE_KIB_MAX)
    if size_kib * 1024 % page_bytes:
        raise ValueError(f"size_kib must be a multiple of the page size ({page_bytes} bytes)")
    config = Config(
        kind=choice(params, "kind", KINDS),
        size_bytes=size_kib * 1024,
        pattern=choice(params, "pattern", PATTERNS),
        write=choice(params, "access", ACCESSES, "write") == "write",
        repetitions=bounded_int(params, "repetitions", 1, REPETITIONS_MAX),
        warmup=bounded_int(params, "warmup", 0, WARMUP_MAX, 1),
        page_bytes=page_bytes,
        sweep=flag(params, "sweep", False),
    )
    chosen = variants(
        {
            "sharing": subset(params, "sharing", SHARINGS),
            "populate": subset(params, "populate", POPULATES),
            "thp": subset(params, "thp", THPS),
            "layers": subset(params, "layers", LAYERS),
        }
    )
    return config, chosen


def _open_file(config: Config) -> int:
    return os.open(FILE_PATH, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)


def _fill(fd: int, size_bytes: int) -> None:
    """The file's known content before a repetition: every byte FILL_BYTE, in the page cache."""
    chunk = bytes([FILL_BYTE]) * CHUNK_BYTES
    for offset in range(0, size_bytes, CHUNK_BYTES):
        os.pwrite(fd, chunk[: min(CHUNK_BYTES, size_bytes - offset)], offset)


def _changed_pages(fd: int, config: Config) -> int:
    """Pages whose first byte (touched by every pattern) no longer holds the fill byte, read
    back with pread: what the file says, not what the map says."""
    changed = 0
    for offset in range(0, config.size_bytes, CHUNK_BYTES):
        firsts = os.pread(fd, CHUNK_BYTES, offset)[:: config.page_bytes]
        changed += len(firsts) - firsts.count(FILL_BYTE)
    return changed


def _measure_all(
    config: Config, chosen: list[Variant], fd: int, emit: Emitter
) -> dict[str, Samples]:
    measured = {v.id: Samples() for v in chosen}
    total = config.warmup + config.repetitions
    flusher = SampleFlusher(emit)
    offsets = _shuffled_offsets(config)
    if config.warmup:
        emit.phase("warm-up")
    with gc_paused():
        for rep in range(total):
            if rep == config.warmup:
                emit.phase("measure")
            for variant in chosen:
                if fd >= 0:
                    _fill(fd, config.size_bytes)
                one = _one_repetition(config, variant, fd, offsets)
                if rep >= config.warmup:
                    _record(measured[variant.id], one, config)
                    x = rep - config.warmup
                    flusher.add(variant.id, x, round(measured[variant.id].touch_ns_per_page[-1], 2))
                    flusher.add(
                        f"faults-{variant.id}",
                        x,
                        round(measured[variant.id].faults_per_page[-1], 4),
                    )
            stage = (
                f"warm-up {rep + 1}/{config.warmup}"
                if rep < config.warmup
                else f"rep {rep - config.warmup + 1}/{config.repetitions}"
            )
            flusher.maybe_flush((rep + 1) / total, stage, force=rep == total - 1)
    return measured


def sweep_points_kib(size_kib: int) -> list[int]:
    """4 KiB, ×4 each step, up to the size asked for (which is always the last point)."""
    points = []
    point = SIZE_KIB_MIN
    while point < size_kib:
        points.append(point)
        point *= 4
    return [*points, size_kib]


def _shuffled_offsets(config: Config) -> list[int]:
    offsets = list(range(0, config.size_bytes, config.page_bytes))
    random.Random(SEED).shuffle(offsets)
    return offsets


def _sweep(
    config: Config, chosen: list[Variant], fd: int, emit: Emitter
) -> dict[str, list[tuple[float, float, float]]]:
    """Each variant at each size (medians of the repetitions): variant id -> [(size KiB,
    ns/page, touch µs)]. The curves go to the sweep chart as they grow."""
    by_series = {f"sweep-{v.id}": v for v in chosen}
    swept: dict[str, list[tuple[float, float, float]]] = {v.id: [] for v in chosen}

    def measure(series: str, size_kib: float) -> float:
        variant = by_series[series]
        sized = replace(config, size_bytes=int(size_kib) * 1024)
        offsets = _shuffled_offsets(sized)
        touch_ns = []
        for rep in range(config.warmup + config.repetitions):
            if fd >= 0:
                _fill(fd, sized.size_bytes)
            one = _one_repetition(sized, variant, fd, offsets)
            if rep >= config.warmup:
                touch_ns.append(one.touch_ns)
        median_ns = statistics.median(touch_ns)
        ns_per_page = median_ns / (sized.size_bytes // config.page_bytes)
        swept[variant.id].append((size_kib, ns_per_page, median_ns / 1e3))
        return round(ns_per_page, 2)

    emit.phase("size sweep")
    with gc_paused():
        sweep(
            sweep_points_kib(config.size_bytes // 1024),
            list(by_series),
            measure,
            emit,
            label=lambda size_kib: f"{size_kib:,.0f} KiB",
        )
    return swept


def _sweep_rows(
    chosen: list[Variant], swept: Mapping[str, list[tuple[float, float, float]]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for variant in chosen:
        curve = swept.get(variant.id) or []
        if len(curve) < 2:
            continue
        fit = slope_row_fields([(size_kib / 1024, touch_us) for size_kib, _, touch_us in curve])
        rows.append(
            row(
                f"first-touch time per MiB (fitted over the sweep), {variant.label}",
                round(fit["slope"], 1),
                "µs/MiB",
                f"Least-squares slope of the whole pass's time against the map size, "
                f"{len(curve)} sizes from {curve[0][0]:,.0f} to {curve[-1][0]:,.0f} KiB "
                f"(intercept {fit['intercept']:g} µs, r² {fit['r2']}); 256 pages make a MiB.",
                layer=variant.layer,
            )
        )
        knee = change_point([c[0] for c in curve], [c[1] for c in curve], log_x=True)
        if knee is not None:
            rows.append(
                row(
                    f"ns/page changes behaviour after, {variant.label}",
                    knee,
                    "KiB",
                    "The size after which a two-segment fit of ns/page against log(size) "
                    "breaks (noise, where nothing changes). With MADV_HUGEPAGE, look for the "
                    "step around 2 MiB, the first size that holds a whole huge page.",
                    layer=variant.layer,
                )
            )
    return rows


@dataclass
class Repetition:
    map_ns: int
    touch_ns: int
    minor: int
    major: int
    munmap_ns: int
    rss_growth_bytes: int
    huge_bytes: int
    msync_ns: int | None = None
    changed_before_msync: int | None = None
    changed_after: int | None = None


def _record(samples: Samples, one: Repetition, config: Config) -> None:
    pages = config.size_bytes // config.page_bytes
    samples.touch_ns_per_page.append(one.touch_ns / pages)
    samples.faults_per_page.append((one.minor + one.major) / pages)
    samples.minor.append(one.minor)
    samples.major.append(one.major)
    samples.map_us.append(one.map_ns / 1e3)
    samples.munmap_us.append(one.munmap_ns / 1e3)
    samples.rss_growth_mib.append(one.rss_growth_bytes / (1 << 20))
    samples.huge_mib.append(one.huge_bytes / (1 << 20))
    if one.msync_ns is not None:
        samples.msync_us.append(one.msync_ns / 1e3)
        samples.changed_before_msync.append(one.changed_before_msync or 0)
        samples.changed_after.append(one.changed_after or 0)


def _huge_bytes() -> int:
    """Huge pages mapped now: anonymous THP, or tmpfs pages mapped by PMD."""
    totals = hostfacts.smaps_rollup()
    return totals.get("AnonHugePages", 0) + totals.get("ShmemPmdMapped", 0)


def _one_repetition(config: Config, variant: Variant, fd: int, offsets: list[int]) -> Repetition:
    mapper = _native_mapper if variant.layer == "native" else _python_mapper
    return mapper(config, variant, fd, offsets)


def _advice(variant: Variant) -> list[int]:
    return [ADVICE[name] for name in (variant.populate, variant.thp) if name in ADVICE]


def _native_mapper(config: Config, variant: Variant, fd: int, offsets: list[int]) -> Repetition:
    from sysops.native import load  # here, so that the Python layer runs without the build

    mem = load("_mem")
    rss_before = rss_bytes()
    handle, map_ns = mem.map(
        config.size_bytes,
        variant.sharing == "shared",
        fd=fd,
        populate=variant.populate == "map_populate",
    )
    try:
        for advice in _advice(variant):
            map_ns += mem.advise(handle, advice)
        touched = mem.touch(handle, config.pattern, config.write, seed=SEED)
        one = Repetition(
            map_ns=map_ns,
            touch_ns=touched["elapsed_ns"],
            minor=touched["minor_faults"],
            major=touched["major_faults"],
            munmap_ns=0,
            rss_growth_bytes=rss_bytes() - rss_before,
            huge_bytes=_huge_bytes(),
        )
        if fd >= 0:
            one.changed_before_msync = _changed_pages(fd, config)
            one.msync_ns = mem.msync(handle)
    finally:
        munmap_ns = mem.unmap(handle)
    one.munmap_ns = munmap_ns
    if fd >= 0:
        one.changed_after = _changed_pages(fd, config)
    return one


def _python_mapper(config: Config, variant: Variant, fd: int, offsets: list[int]) -> Repetition:
    flags = mmap.MAP_SHARED if variant.sharing == "shared" else mmap.MAP_PRIVATE
    if variant.populate == "map_populate":
        flags |= mmap.MAP_POPULATE
    rss_before = rss_bytes()
    start_ns = time.perf_counter_ns()
    # fileno -1: Python adds MAP_ANONYMOUS itself.
    mapped = mmap.mmap(fd, config.size_bytes, flags=flags)
    for advice in _advice(variant):
        mapped.madvise(advice)
    map_ns = time.perf_counter_ns() - start_ns
    try:
        touch = _python_touch(mapped, config, offsets)
        with counting_faults() as count:
            start_ns = time.perf_counter_ns()
            touch()
            touch_ns = time.perf_counter_ns() - start_ns
        one = Repetition(
            map_ns=map_ns,
            touch_ns=touch_ns,
            minor=count.faults.minor,
            major=count.faults.major,
            munmap_ns=0,
            rss_growth_bytes=rss_bytes() - rss_before,
            huge_bytes=_huge_bytes(),
        )
        if fd >= 0:
            one.changed_before_msync = _changed_pages(fd, config)
            start_ns = time.perf_counter_ns()
            mapped.flush()  # msync(MS_SYNC)
            one.msync_ns = time.perf_counter_ns() - start_ns
    finally:
        start_ns = time.perf_counter_ns()
        mapped.close()  # munmap
        munmap_ns = time.perf_counter_ns() - start_ns
    one.munmap_ns = munmap_ns
    if fd >= 0:
        one.changed_after = _changed_pages(fd, config)
    return one


def _python_touch(mapped: mmap.mmap, config: Config, offsets: list[int]) -> Callable[[], None]:
    """The Python layer's loop, with its locals bound up front: the interpreter's cost per page
    is part of this layer's figure, and the point of showing it."""
    page, size = config.page_bytes, config.size_bytes
    touch_byte = 0x5A
    if config.pattern == "sequential" and config.write:
        chunk = bytes([touch_byte]) * page

        def write_all() -> None:
            for offset in range(0, size, page):
                mapped[offset : offset + page] = chunk

        return write_all
    if config.pattern == "sequential":

        def read_all() -> None:
            for offset in range(0, size, page):
                mapped[offset : offset + page]  # noqa: B018 - the read is the point

        return read_all
    order = offsets if config.pattern == "random" else range(0, size, page)
    if config.write:

        def write_pages() -> None:
            for offset in order:
                mapped[offset] = touch_byte

        return write_pages

    def read_pages() -> None:
        for offset in order:
            mapped[offset]  # noqa: B018 - the read is the point

    return read_pages


def _rows(config: Config, chosen: list[Variant], measured: dict[str, Samples]) -> list[dict]:
    pages = config.size_bytes // config.page_bytes
    seccomp = (
        "Measured inside the sandbox, whose seccomp filter adds about 10–60 ns to every syscall "
        "(mmap, madvise, msync, munmap; a page fault is not a syscall and pays nothing)."
    )
    rows: list[dict[str, Any]] = []
    native_medians = {
        (v.sharing, v.populate, v.thp): Distribution.of(measured[v.id].touch_ns_per_page).median
        for v in chosen
        if v.layer == "native"
    }
    for variant in chosen:
        samples = measured[variant.id]
        touch = dist_row(
            f"first touch, {variant.label}",
            samples.touch_ns_per_page,
            "ns/page",
            f"{config.pattern} {'writes' if config.write else 'reads'} over {pages:,} pages "
            f"of {config.page_bytes} B, a fresh map each repetition, after {config.warmup} "
            f"warm-up; {_layer_note(variant)} Median faults per page "
            f"{Distribution.of(samples.faults_per_page).median:.3f} (minor {_median(samples.minor)}"
            f", major {_median(samples.major)} per pass). {seccomp}",
            layer=variant.layer,
        )
        base = native_medians.get((variant.sharing, variant.populate, variant.thp))
        if base:
            touch["ratio_to_native"] = round(touch["value"] / base, 3)
        rows.append(touch)
        rows.append(
            dist_row(
                f"faults per page, {variant.label}",
                samples.faults_per_page,
                "faults/page",
                "Minor + major faults (getrusage of this thread) around the touch loop only, over "
                f"the page count; 1 is one fault per {config.page_bytes} B page, "
                f"{config.page_bytes / (2 << 20):.4f} one per 2 MiB huge page.",
                layer=variant.layer,
                digits=4,
            )
        )
        rows.append(
            dist_row(
                f"map time, {variant.label}",
                samples.map_us,
                "µs",
                "mmap plus any madvise; MAP_POPULATE moves the faults' work here.",
                layer=variant.layer,
            )
        )
        rows.append(
            dist_row(
                f"munmap time, {variant.label}",
                samples.munmap_us,
                "µs",
                "Unmapping frees the pages (and for MAP_PRIVATE, the copies) and flushes the TLB.",
                layer=variant.layer,
            )
        )
        rows.append(
            dist_row(
                f"RSS growth, {variant.label}",
                samples.rss_growth_mib,
                "MiB",
                "Resident set after the touch minus before the map "
                f"({config.size_bytes / (1 << 20):g} MiB mapped); a read of an anonymous "
                "private map maps the shared zero page and grows it by little.",
                layer=variant.layer,
            )
        )
        rows.append(
            row(
                f"huge pages mapped, {variant.label}",
                round(max(samples.huge_mib), 2),
                "MiB",
                "AnonHugePages + ShmemPmdMapped from /proc/self/smaps_rollup after the touch "
                "(the most any repetition had): 0 means no transparent huge page was used.",
                layer=variant.layer,
            )
        )
        if config.kind == "file":
            rows.extend(_file_rows(config, variant, samples, pages))
    rows.extend(_host_rows(config))
    return rows


def _file_rows(config: Config, variant: Variant, samples: Samples, pages: int) -> list[dict]:
    written = "pages written" if config.write else "pages read (nothing written)"
    after = _median(samples.changed_after)
    before = _median(samples.changed_before_msync)
    if variant.sharing == "private":
        meaning = (
            "MAP_PRIVATE: each write made a private copy of its page (copy-on-write); the file "
            "never sees them."
        )
    else:
        meaning = (
            "MAP_SHARED: the writes are in the file's own page-cache pages, so read() sees them "
            "even before msync; msync is what would write them to a disk."
        )
    return [
        dist_row(
            f"msync time, {variant.label}",
            samples.msync_us,
            "µs",
            "msync(MS_SYNC) after the touch. The file is on the sandbox's /tmp, a tmpfs: its page "
            "cache is its only storage, so there is no disk I/O to wait for.",
            layer=variant.layer,
        ),
        row(
            f"file pages changed (read back), {variant.label}",
            after,
            "pages",
            f"Of {pages:,} {written}, read back with pread after msync and munmap (median "
            f"over repetitions); {before} before msync. {meaning}",
            layer=variant.layer,
        ),
    ]


def _layer_note(variant: Variant) -> str:
    if variant.layer == "native":
        return "touched by a C loop with the GIL released (volatile loads or stores)."
    return (
        "touched from a Python loop over the mmap object (interpreter cost included). Note: "
        "Python's mmap.mmap(-1, n) defaults to MAP_SHARED (shmem-backed, dearer to fault than "
        "MAP_PRIVATE); this variant passes the flags explicitly."
    )


def _median(values: list[int]) -> int | float:
    return Distribution.of(values).median if values else 0


def _host_rows(config: Config) -> list[dict]:
    thp = hostfacts.thp()
    if thp["enabled"]:
        enabled = f"{thp['enabled']} (/sys/kernel/mm/transparent_hugepage/enabled)"
    else:
        # The sandbox shows no /sys: what the kernel applies to this process says the same.
        inferred = hostfacts.thp_inferred()
        enabled = f"{inferred} (inferred from smaps THPeligible)" if inferred else "unknown"
    facts: dict[str, Any] = {
        "transparent huge pages": enabled,
        "THP defrag": thp["defrag"] or "unknown (no /sys in the sandbox)",
        "page size (bytes)": config.page_bytes,
        "kernel": hostfacts.kernel_release(),
    }
    if config.kind == "file":
        fs = hostfacts.filesystem(os.path.dirname(FILE_PATH))
        facts["file map's filesystem"] = (
            f"{fs['type']} at {fs['mount_point']}: page cache only, no disk I/O"
            if not fs["is_disk"]
            else f"{fs['type']} on {fs['device']}"
        )
    return facts_rows(facts)
