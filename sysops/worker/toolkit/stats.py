"""Distributions of measured values, reported no more precisely than the data allows.

- ``percentile``: nearest rank (the smallest value with at least that fraction at or below
  it), so every reported percentile is a value that was really measured;
- ``Distribution.of(values)``: n, min, median, mean, stdev and max, the quartiles (the spread
  that says whether a median alone misleads) from 4 values, and each tail percentile only where
  n supports it: a p99 needs at least 100 values (with 30, "p99" is the maximum under
  another name), a p99.9 at least 1,000;
- ``SortedRuns``: exact percentiles over millions of integer latencies, kept as sorted int64
  runs, 8 bytes a value;
- ``LogHistogram``: counts in log-spaced buckets, for a latency histogram chart;
- ``Reservoir``: a fixed-size uniform sample of a stream, to decimate a live chart honestly
  (never "every 100th sample" silently: the chart says how many it stands for).
"""

from __future__ import annotations

import math
import random
import statistics
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# The fewest values that make each tail percentile more than the maximum renamed.
TAIL_MIN_N = {0.9: 10, 0.99: 100, 0.999: 1_000}
# Quartiles of fewer values are the extremes or the median again.
QUARTILES_MIN_N = 4


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values sorted ascending (non-empty)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def supports(n: int, fraction: float) -> bool:
    """True when ``n`` values are enough to report the ``fraction`` percentile honestly."""
    return n >= TAIL_MIN_N.get(fraction, math.ceil(1 / (1 - fraction)))


@dataclass(frozen=True)
class Distribution:
    n: int
    min: float
    median: float
    max: float
    mean: float
    stdev: float | None  # None for a single value
    p90: float | None  # None where n is too small to tell it from the maximum
    p99: float | None
    p999: float | None
    q1: float | None = None  # quartiles (nearest rank), None below QUARTILES_MIN_N values
    q3: float | None = None

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        ordered = sorted(values)
        if not ordered:
            raise ValueError("a distribution needs at least one value")
        n = len(ordered)

        def tail(fraction: float) -> float | None:
            return percentile(ordered, fraction) if supports(n, fraction) else None

        return cls(
            n=n,
            min=ordered[0],
            median=statistics.median(ordered),
            max=ordered[-1],
            mean=statistics.fmean(ordered),
            stdev=statistics.stdev(ordered) if n > 1 else None,
            p90=tail(0.9),
            p99=tail(0.99),
            p999=tail(0.999),
            q1=percentile(ordered, 0.25) if n >= QUARTILES_MIN_N else None,
            q3=percentile(ordered, 0.75) if n >= QUARTILES_MIN_N else None,
        )

    def scaled(self, factor: float) -> Distribution:
        """The same distribution in another unit (ns → µs: 1e-3)."""
        return Distribution(
            **{
                name: (value * factor if isinstance(value, float | int) and name != "n" else value)
                for name, value in self.__dict__.items()
            }
        )

    def to_dist(self, digits: int = 2) -> dict[str, Any]:
        """The result row's ``dist``: ``{n, min, median, p99, max}`` (p99 None when n < 100),
        plus ``p90``/``p999``/``stdev``/``q1``/``q3`` where they exist."""
        dist: dict[str, Any] = {
            "n": self.n,
            "min": _round(self.min, digits),
            "median": _round(self.median, digits),
            "p99": _round(self.p99, digits),
            "max": _round(self.max, digits),
        }
        for name in ("p90", "p999", "stdev", "q1", "q3"):
            value = getattr(self, name)
            if value is not None:
                dist[name] = _round(value, digits)
        return dist


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class SortedRuns:
    """All values (integers, e.g. ns), kept as sorted runs (one per sample window) in int64
    arrays: exact nearest-rank percentiles over millions of values without a list of ints."""

    def __init__(self) -> None:
        self.runs: list[array] = []
        self.count = 0

    def add(self, values: Iterable[int]) -> None:
        run = sorted(values)
        if run:
            self.runs.append(array("q", run))
            self.count += len(run)

    def _count_at_most(self, value: int) -> int:
        return sum(bisect_right(run, value) for run in self.runs)

    def percentile(self, fraction: float) -> int:
        """By binary search over the value, counting each sorted run by bisection."""
        if not self.count:
            raise ValueError("percentile of no values")
        rank = max(1, math.ceil(fraction * self.count))
        low, high = self.min(), self.max()
        while low < high:
            middle = (low + high) // 2
            if self._count_at_most(middle) >= rank:
                high = middle
            else:
                low = middle + 1
        return low

    def min(self) -> int:
        return min(run[0] for run in self.runs)

    def max(self) -> int:
        return max(run[-1] for run in self.runs)

    def distribution(self) -> Distribution:
        total = sum(sum(run) for run in self.runs)
        mean = total / self.count
        variance = (
            sum(sum((v - mean) ** 2 for v in run) for run in self.runs) / (self.count - 1)
            if self.count > 1
            else None
        )

        def tail(fraction: float) -> float | None:
            return float(self.percentile(fraction)) if supports(self.count, fraction) else None

        return Distribution(
            n=self.count,
            min=float(self.min()),
            median=float(self.percentile(0.5)),
            max=float(self.max()),
            mean=mean,
            stdev=math.sqrt(variance) if variance is not None else None,
            p90=tail(0.9),
            p99=tail(0.99),
            p999=tail(0.999),
            q1=float(self.percentile(0.25)) if self.count >= QUARTILES_MIN_N else None,
            q3=float(self.percentile(0.75)) if self.count >= QUARTILES_MIN_N else None,
        )


class LogHistogram:
    """Counts of positive values in buckets ``buckets_per_decade`` to a power of ten."""

    def __init__(self, buckets_per_decade: int = 10) -> None:
        self.per_decade = buckets_per_decade
        self.counts: dict[int, int] = {}

    def add(self, value: float) -> None:
        index = math.floor(math.log10(max(value, 1e-12)) * self.per_decade)
        self.counts[index] = self.counts.get(index, 0) + 1

    def buckets(self) -> list[tuple[float, float, int]]:
        """(lower bound, upper bound, count) for each non-empty bucket, ascending."""
        return [
            (10 ** (i / self.per_decade), 10 ** ((i + 1) / self.per_decade), self.counts[i])
            for i in sorted(self.counts)
        ]


class Reservoir:
    """A uniform random sample of at most ``size`` items of a stream (Algorithm R), and how
    many items it stands for."""

    def __init__(self, size: int, seed: int | None = None) -> None:
        self.size = size
        self.seen = 0
        self.items: list[Any] = []
        self._random = random.Random(seed)

    def add(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item
