"""Timing loops: warm-up, then repetitions interleaved across variants, the GC paused, samples
flushed to the page in bursts (as lmbench's benchmp does warm-up and repetitions for every
lat_* benchmark, so that each one says only what it does once).

A ``Measure`` does the work once (or a batch of it) and returns the value to record, usually
ns per operation; the caller decides what one repetition is.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from sysops.worker.emit import Emitter

FLUSH_INTERVAL_NS = 100_000_000  # samples go to the page in bursts at most this often

Measure = Callable[[], float]


@contextmanager
def gc_paused() -> Iterator[None]:
    """As timeit does: a collection landing inside a timed loop is noise, not syscall cost."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def elapsed_ns(work: Callable[[], object]) -> int:
    """Wall nanoseconds (perf_counter) of one call of ``work``."""
    start_ns = time.perf_counter_ns()
    work()
    return time.perf_counter_ns() - start_ns


class SampleFlusher:
    """Collects (series, x, y) and emits them, with a progress event, at most every
    ``FLUSH_INTERVAL_NS``: the emitter's JSON and write between repetitions would otherwise
    interleave thousands of events a second with the measurement."""

    def __init__(self, emit: Emitter, interval_ns: int = FLUSH_INTERVAL_NS) -> None:
        self.emit = emit
        self.interval_ns = interval_ns
        self.pending: list[tuple[str, float, float]] = []
        # The first call flushes at once: the first figures are the ones a person waits for.
        self.last_flush_ns = time.monotonic_ns() - interval_ns

    def add(self, series: str, x: float, y: float) -> None:
        self.pending.append((series, x, y))

    def maybe_flush(self, fraction: float, message: str, *, force: bool = False) -> None:
        now_ns = time.monotonic_ns()
        if force or now_ns - self.last_flush_ns >= self.interval_ns:
            self.flush(fraction, message)
            self.last_flush_ns = now_ns

    def flush(self, fraction: float, message: str) -> None:
        for series, x, y in self.pending:
            self.emit.sample(series=series, x=x, y=y)
        self.pending.clear()
        self.emit.progress(fraction, message)


def interleaved(
    measures: Mapping[str, Measure],
    repetitions: int,
    warmup: int,
    emit: Emitter,
    *,
    digits: int = 3,
) -> dict[str, list[float]]:
    """Runs every measure once per repetition, in turn (rep 0: a, b, c; rep 1: a, b, c …), so
    that drift (frequency, a noisy neighbour) hits every variant alike. The first ``warmup``
    repetitions are discarded. Each measured value is a chart sample of its variant's series
    (x = repetition). Returns the measured values per variant."""
    values: dict[str, list[float]] = {name: [] for name in measures}
    total = warmup + repetitions
    flusher = SampleFlusher(emit)
    if warmup:
        emit.phase("warm-up")
    with gc_paused():
        for rep in range(total):
            if rep == warmup:
                emit.phase("measure")
            for name, measure in measures.items():
                value = measure()
                if rep >= warmup:
                    values[name].append(value)
                    flusher.add(name, rep - warmup, round(value, digits))
            stage = (
                f"warm-up {rep + 1}/{warmup}"
                if rep < warmup
                else f"rep {rep - warmup + 1}/{repetitions}"
            )
            flusher.maybe_flush((rep + 1) / total, stage, force=rep == total - 1)
    return values


def repeated(
    measure: Measure, repetitions: int, warmup: int, emit: Emitter, series: str
) -> list[float]:
    """One variant: ``interleaved`` with a single measure."""
    return interleaved({series: measure}, repetitions, warmup, emit)[series]
